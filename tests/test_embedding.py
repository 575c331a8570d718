"""The numbers of the shared space against hand-computed values; the artifacts' readers."""
import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr

from cdcml_lib.explore import embedding as E


# --- modality gap -----------------------------------------------------------------------------

def test_modality_gap_by_hand():
    # images at (0,0), (2,0): centre (1,0), RMS radius 1; music at (1,3), (1,5): centre (1,4),
    # RMS radius 1. Centres 4 apart, pooled spread 1 -> gap 4.
    emb = np.array([[0, 0], [2, 0], [1, 3], [1, 5]], dtype=float)
    gap = E.modality_gap(emb, ["image", "image", "music", "music"])
    assert gap["centre_distance"] == pytest.approx(4.0)
    assert gap["spread_image"] == pytest.approx(1.0)
    assert gap["spread_music"] == pytest.approx(1.0)
    assert gap["gap"] == pytest.approx(4.0)


def test_modality_gap_pools_unequal_spreads():
    # image radius 1, music radius sqrt(7) (points at distance sqrt(7) each side):
    # pooled = sqrt((1 + 7) / 2) = 2; centres 6 apart -> gap 3.
    s7 = np.sqrt(7.0)
    emb = np.array([[-1, 0], [1, 0], [6 - s7, 0], [6 + s7, 0]], dtype=float)
    gap = E.modality_gap(emb, ["image", "image", "music", "music"])
    assert gap["spread_music"] == pytest.approx(s7)
    assert gap["gap"] == pytest.approx(3.0)


def test_modality_gap_is_zero_for_one_shared_cloud():
    emb = np.array([[0, 0], [2, 0], [0, 0], [2, 0]], dtype=float)
    assert E.modality_gap(emb, ["image", "image", "music", "music"])["gap"] == pytest.approx(0.0)


def test_modality_gap_needs_both_modalities():
    with pytest.raises(ValueError, match="no music embeddings"):
        E.modality_gap(np.zeros((3, 2)), ["image"] * 3)


# --- distance correlations --------------------------------------------------------------------

def _toy_space():
    # images: 1-D embeddings at 0, 1, 3 -> pair distances (01, 02, 12) = (1, 3, 2);
    # their valences 0.5, 0.6, 0.3 -> label distances (0.1, 0.2, 0.3).
    # Ranks (1, 3, 2) vs (1, 2, 3): sum d^2 = 2 -> Spearman 1 - 6*2/(3*8) = 0.5; Pearson 0.5 too.
    # music: embeddings 0, 2, 6 and valences 0, 0.1, 0.3 -> distances exactly proportional.
    emb = np.array([[0.0], [1.0], [3.0], [0.0], [2.0], [6.0]])
    va = np.array([[0.5, 0.5], [0.6, 0.5], [0.3, 0.5], [0.0, 0.2], [0.1, 0.2], [0.3, 0.2]])
    modality = ["image"] * 3 + ["music"] * 3
    return emb, va, modality


def test_distance_correlations_within_modalities_by_hand():
    table = E.distance_correlations(*_toy_space()).set_index("pairs")
    assert table.loc["image-image", "n_pairs"] == 3
    assert table.loc["image-image", "spearman"] == pytest.approx(0.5)
    assert table.loc["image-image", "pearson"] == pytest.approx(0.5)
    assert table.loc["music-music", "spearman"] == pytest.approx(1.0)
    assert table.loc["music-music", "pearson"] == pytest.approx(1.0)


def test_distance_correlations_across_modalities_match_a_loop():
    emb, va, modality = _toy_space()
    d_emb, d_va = [], []
    for i, j in itertools.product(range(3), range(3, 6)):  # every image with every clip
        d_emb.append(abs(emb[i, 0] - emb[j, 0]))
        d_va.append(np.hypot(*(va[i] - va[j])))
    row = E.distance_correlations(emb, va, modality).set_index("pairs").loc["image-music"]
    assert row["n_pairs"] == 9
    assert row["spearman"] == pytest.approx(spearmanr(d_emb, d_va)[0])
    assert row["pearson"] == pytest.approx(pearsonr(d_emb, d_va)[0])


def test_distance_correlations_flip_sign_when_the_space_inverts_labels():
    rng = np.random.default_rng(0)
    va = rng.random((30, 2))
    modality = ["image"] * 15 + ["music"] * 15
    good = E.distance_correlations(va * 3.0, va, modality)
    assert np.allclose(good[["spearman", "pearson"]].to_numpy(), 1.0)
    # an unrelated space: correlations near 0, well below the faithful one
    noise = E.distance_correlations(rng.normal(size=(30, 8)), va, modality)
    assert (noise["spearman"].abs() < 0.5).all()


def test_distance_correlations_reject_misaligned_inputs():
    with pytest.raises(ValueError, match="same items"):
        E.distance_correlations(np.zeros((4, 2)), np.zeros((3, 2)), ["image"] * 4)


# --- trustworthiness --------------------------------------------------------------------------

def test_trustworthiness_of_an_isometric_map_is_one_and_of_a_shuffled_map_lower():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(40, 2))
    assert E.umap_trustworthiness(emb, emb * 2.0 + 1.0, n_neighbors=5) == pytest.approx(1.0)
    shuffled = emb[rng.permutation(40)]
    assert E.umap_trustworthiness(emb, shuffled, n_neighbors=5) < 0.8


def test_trustworthiness_checks_neighbourhood_size():
    with pytest.raises(ValueError, match="N/2"):
        E.umap_trustworthiness(np.zeros((8, 3)), np.zeros((8, 2)), n_neighbors=4)


def test_fit_umap_checks_its_inputs_before_importing_umap():
    with pytest.raises(ValueError, match="n_neighbors=10"):
        E.fit_umap(np.zeros((5, 4)), n_neighbors=10)
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        E.fit_umap(np.zeros(5), n_neighbors=2)


# --- run folders and coordinate files ---------------------------------------------------------

def write_fake_run(run_dir, n_img=12, n_mus=8, dim=6, seed=0, **override):
    """A run folder's embeddings_test.npz as cdcml_lib.runs.train writes it (ARCHITECTURE.md)."""
    rng = np.random.default_rng(seed)
    n = n_img + n_mus
    fields = dict(ids=np.array([f"img{i}" for i in range(n_img)] + [f"2009-{i}" for i in range(n_mus)]),
                  modality=np.array(["image"] * n_img + ["music"] * n_mus),
                  valence=rng.random(n), arousal=rng.random(n),
                  pred_valence=rng.random(n), pred_arousal=rng.random(n),
                  embedding=rng.normal(size=(n, dim)).astype(np.float32))
    fields.update(override)
    fields = {k: v for k, v in fields.items() if v is not None}
    run_dir.mkdir(parents=True, exist_ok=True)
    np.savez(run_dir / "embeddings_test.npz", **fields)
    return run_dir


def test_load_run_embeddings_reads_the_contract(tmp_path):
    run = E.load_run_embeddings(write_fake_run(tmp_path / "cdcml-s0"))
    assert len(run.items) == 20 and run.embedding.shape == (20, 6)
    assert list(run.items.columns) == ["id", "modality", "valence", "arousal",
                                       "pred_valence", "pred_arousal"]
    assert run.va.shape == (20, 2)


def test_load_run_embeddings_names_the_missing_field(tmp_path):
    write_fake_run(tmp_path / "r", pred_arousal=None)
    with pytest.raises(ValueError, match=r"embeddings_test.npz: missing field\(s\) \['pred_arousal'\]"):
        E.load_run_embeddings(tmp_path / "r")


def test_load_run_embeddings_names_the_bad_row(tmp_path):
    modality = np.array(["image"] * 12 + ["music"] * 7 + ["video"])
    write_fake_run(tmp_path / "r", modality=modality)
    with pytest.raises(ValueError, match="row 19 .*'video'"):
        E.load_run_embeddings(tmp_path / "r")


def test_load_run_embeddings_missing_file_says_how_to_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="train the run first"):
        E.load_run_embeddings(tmp_path / "nothing")


def test_coords_round_trip(tmp_path):
    run = E.load_run_embeddings(write_fake_run(tmp_path / "r"))
    coords = np.random.default_rng(0).normal(size=(20, 2))
    path = E.save_coords(E.coords_frame(run, coords), tmp_path / "out" / "coords.csv")
    back = E.load_coords(path)
    assert back["id"].tolist() == run.items["id"].tolist()
    np.testing.assert_allclose(back[["umap_x", "umap_y"]].to_numpy(), coords, rtol=1e-5)


def test_load_coords_names_row_and_column(tmp_path):
    frame = pd.DataFrame({"id": ["a", "b"], "modality": ["image", "music"], "valence": [0.1, 0.2],
                          "arousal": [0.3, 0.4], "umap_x": [1.0, 2.0], "umap_y": [0.5, "oops"]})
    frame.to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(ValueError, match=r"c.csv: row 3 \(id b\), column 'umap_y'"):
        E.load_coords(tmp_path / "c.csv")


def test_space_numbers_and_written_tables(tmp_path):
    run = E.load_run_embeddings(write_fake_run(tmp_path / "r"))
    numbers = E.space_numbers(run, run.embedding[:, :2], n_neighbors=3)
    for key in ("spearman_image-image", "pearson_image-music", "trustworthiness", "modality_gap"):
        assert np.isfinite(numbers[key]), key
    table = E.write_numbers({"cdcml-s0": numbers, "sim-s0": numbers}, tmp_path / "emb")
    assert list(table.columns) == ["cdcml-s0", "sim-s0"]
    assert (tmp_path / "emb" / "numbers.json").is_file()
    assert pd.read_csv(tmp_path / "emb" / "numbers.csv").shape == (len(numbers), 3)


# --- best_matches with a real, randomly initialised CDCML --------------------------------------

@pytest.fixture(scope="module")
def tiny_trained():
    """A real TrainedModel around an untrained tiny CDCML (weights random, seeded)."""
    torch = pytest.importorskip("torch")
    train = pytest.importorskip("cdcml_lib.runs.train", reason="cdcml_lib.runs.train has not landed yet")
    from cdcml_lib.runs.loader import RowStandardiser
    from cdcml_lib.nets import build_model

    params = {"model": "cdcml", "image_backbone": "tiny_cnn", "music_backbone": "tiny_cnn",
              "embed_dim": 16, "pretrained": False, "image_size": 32}
    torch.manual_seed(0)
    model = build_model(params)
    standardiser = RowStandardiser(np.zeros(193), np.ones(193))
    return train.TrainedModel(params, model, standardiser, torch.device("cpu"))


@pytest.fixture(scope="module")
def collections():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    music = rng.normal(size=(6, 193, 87)).astype(np.float32)
    return images, music


def test_best_matches_finds_a_known_image_first(tiny_trained, collections, tmp_path):
    from PIL import Image

    images, _ = collections
    ids = [f"img{i}" for i in range(10)]
    found = E.best_matches(tiny_trained, images[4], images, k=3, modality="same", ids=ids)
    assert found["id"].tolist()[0] == "img4"
    assert found["distance"].iloc[0] == pytest.approx(0.0, abs=1e-5)
    assert found["distance"].is_monotonic_increasing and len(found) == 3
    # the same through a file: PNG is lossless, so the query is the same image
    Image.fromarray(images[7]).save(tmp_path / "query.png")
    found = E.best_matches(tiny_trained, tmp_path / "query.png", images, k=2, modality="same", ids=ids)
    assert found["id"].iloc[0] == "img7"


def test_best_matches_finds_a_known_clip_first(tiny_trained, collections):
    _, music = collections
    found = E.best_matches(tiny_trained, music[2], music, k=6, modality="same")
    assert found["id"].iloc[0] == "2"
    assert found["modality"].eq("music").all()


def test_best_matches_across_modalities_ranks_by_the_similarity_predictor(tiny_trained, collections):
    images, music = collections
    va = np.linspace(0, 1, 12).reshape(6, 2)
    found = E.best_matches(tiny_trained, images[0], music, k=4, va=va)
    assert found["modality"].eq("music").all() and len(found) == 4
    assert found["score"].is_monotonic_decreasing
    # the scores are the predictor's s_hat of (this image, that clip), computed directly
    f_img = tiny_trained.encode_images(images[:1])
    f_mus = tiny_trained.encode_music(music)
    s_hat = tiny_trained.similarity(np.repeat(f_img, 6, axis=0), f_mus)
    np.testing.assert_allclose(found["score"], np.sort(s_hat)[::-1][:4], rtol=1e-5)
    best = int(found["id"].iloc[0])
    assert found[["valence", "arousal"]].iloc[0].tolist() == pytest.approx(va[best].tolist())


def test_best_matches_of_an_audio_file(tiny_trained, collections, tmp_path):
    import soundfile as sf

    images, _ = collections
    t = np.arange(3 * 22050) / 22050
    sf.write(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * 440 * t), 22050)
    found = E.best_matches(tiny_trained, tmp_path / "tone.wav", images, k=5)
    assert found["modality"].eq("image").all() and len(found) == 5
    assert found["score"].between(0, 1).all()


def test_best_matches_rejects_an_unknown_file(tiny_trained, collections, tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="notes.txt: unknown suffix '.txt'"):
        E.best_matches(tiny_trained, tmp_path / "notes.txt", collections[0])


# --- modality mixing on the map -------------------------------------------------------------

def test_modality_mixing_of_separate_and_of_mixed_clouds():
    rng = np.random.default_rng(0)
    modality = np.array(["image"] * 40 + ["music"] * 20)
    apart = np.concatenate([rng.normal(0, 1, (40, 2)), rng.normal(50, 1, (20, 2))])
    out = E.modality_mixing(apart, modality, k=5)
    assert out["same_modality_share"] == 1.0 and out["same_modality_share_music"] == 1.0
    assert out["chance_share"] == pytest.approx((40 * 39 + 20 * 19) / (60 * 59))
    mixed = rng.normal(0, 1, (60, 2))                    # one cloud, labels independent of position
    share = E.modality_mixing(mixed, modality, k=10)["same_modality_share"]
    assert abs(share - out["chance_share"]) < 0.1
    with pytest.raises(ValueError, match="k=60 must be in"):
        E.modality_mixing(mixed, modality, k=60)
