"""Training runs on a tiny dataset built from params/smoke.yaml: learning, exact resume,
determinism, the run folder contract and refusing to overwrite another run."""
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from cdcml_lib.data.dataset import open_dataset
from cdcml_lib.workflow.paths import repo_root
from cdcml_lib.runs.train import RunFolderError, load_trained, train_run
from cdcml_lib.workflow.params import section as config_section, variant_params  # configs inherit: read them merged

EPOCHS = 3


def run_params(data_dir, run_dir, variant="cdcml", **over) -> dict:
    # the variant's terms as the train section's w_* keys (params.variant_params), seed kept
    params = {**config_section("smoke", "train"), **variant_params("smoke", f"{variant}")}
    # the step schedule trains exactly EPOCHS epochs (the plateau rule: tests/test_schedule.py)
    params.update({"data_dir": str(data_dir), "run_dir": str(run_dir), "epochs": EPOCHS,
                   "num_threads": 1, "schedule": "step", **over})
    return params


@pytest.fixture(scope="session")
def finished_run(smoke_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "cdcml-s0"
    metrics = train_run(run_params(smoke_data, run_dir), progress=False)
    return run_dir, metrics


def test_run_folder_follows_the_contract(finished_run, smoke_data):
    run_dir, metrics = finished_run
    for name in ("params.json", "run.json", "checkpoint.pt", "best.pt", "curves.csv", "metrics.json",
                 "predictions_test.csv", "embeddings_test.npz"):
        assert (run_dir / name).is_file(), name
    assert metrics == json.loads((run_dir / "metrics.json").read_text())
    assert metrics["schema"] == 1 and 1 <= metrics["best_epoch"] <= EPOCHS
    keys = {"sim_mse", "sim_mae", "img_v_mse", "img_v_mae", "img_a_mse", "img_a_mae", "mus_v_mse",
            "mus_v_mae", "mus_a_mse", "mus_a_mae", "ndcg_at_10", "spearman", "corr_acc"}
    assert keys <= set(metrics["test"]) and keys <= set(metrics["val"])
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "finished" and run["epochs_done"] == EPOCHS and run["wall_s"] > 0
    curves = pd.read_csv(run_dir / "curves.csv")
    assert list(curves["epoch"]) == list(range(1, EPOCHS + 1))
    assert {"lr", "loss_total", "loss_sim_mse", "loss_cfr", "val_sim_mse"} <= set(curves.columns)
    folder = open_dataset(smoke_data)
    pred = pd.read_csv(run_dir / "predictions_test.csv", dtype={"music_id": str, "image_id": str})
    assert len(pred) == len(folder.pairs("test")) and pred["pred"].between(0, 1).all()
    # The test sim_mse is the mean squared error of the saved predictions.
    assert np.isclose(((pred["pred"] - pred["score"]) ** 2).mean(), metrics["test"]["sim_mse"])
    emb = np.load(run_dir / "embeddings_test.npz")
    test_items = folder.items[folder.items["split"] == "test"]
    assert emb["embedding"].shape == (len(test_items), 64)
    assert sorted(emb["ids"]) == sorted(test_items["id"].astype(str))


def test_tiny_run_loss_falls(finished_run):
    curves = pd.read_csv(finished_run[0] / "curves.csv")
    assert curves["loss_total"].iloc[-1] < curves["loss_total"].iloc[0]


def test_resume_after_interruption_gives_identical_metrics(finished_run, smoke_data, tmp_path):
    run_dir, full = finished_run
    params = run_params(smoke_data, tmp_path / "cdcml-s0")
    assert train_run(params, stop_after_epochs=1, progress=False) is None
    assert json.loads((tmp_path / "cdcml-s0" / "run.json").read_text())["status"] == "running"
    assert not (tmp_path / "cdcml-s0" / "metrics.json").exists()
    assert train_run(params, stop_after_epochs=2, progress=False) is None
    resumed = train_run(params, progress=False)
    assert resumed == full
    assert (pd.read_csv(tmp_path / "cdcml-s0" / "curves.csv")
            .equals(pd.read_csv(run_dir / "curves.csv")))


def test_same_seed_same_metrics_other_seed_other_metrics(finished_run, smoke_data, tmp_path):
    _, full = finished_run
    again = train_run(run_params(smoke_data, tmp_path / "a"), progress=False)
    assert again == full
    other = train_run(run_params(smoke_data, tmp_path / "b", seed=1), progress=False)
    assert other["test"] != full["test"]


def test_refuses_to_overwrite_a_run_with_other_params(finished_run, smoke_data):
    run_dir, _ = finished_run
    params = run_params(smoke_data, run_dir, lr=0.01, w_cfm=0.0)
    with pytest.raises(RunFolderError, match=r"lr: 0\.001 -> 0\.01.*w_cfm|new run_dir or delete"):
        train_run(params, progress=False)
    before = (run_dir / "metrics.json").read_text()
    # The same params return the finished metrics without training again.
    assert train_run(run_params(smoke_data, run_dir), progress=False) == json.loads(before)
    assert (run_dir / "metrics.json").read_text() == before


def test_load_trained_encodes_new_inputs(finished_run, smoke_data):
    run_dir, _ = finished_run
    trained = load_trained(run_dir)
    folder = open_dataset(smoke_data)
    images = np.asarray(folder.array("images")[:5])
    music = np.asarray(folder.array("music_features")[:7])
    f_img, f_mus = trained.encode_images(images), trained.encode_music(music)
    assert f_img.shape == (5, 64) and f_mus.shape == (7, 64)
    s = trained.similarity(f_img[:5], f_mus[:5])
    assert s.shape == (5,) and ((s >= 0) & (s <= 1)).all()
    va = trained.predict_va(f_mus)
    assert va.shape == (7, 2) and ((va >= 0) & (va <= 1)).all()


@pytest.mark.parametrize("variant", ["sim", "sim_cfr", "sim_cfr_cfm", "sim_va", "sp_net", "l3_net",
                                     "acp_net", "contrastive"])
def test_every_variant_trains_and_reports(variant, smoke_data, tmp_path):
    metrics = train_run(run_params(smoke_data, tmp_path / variant, variant=variant, epochs=1),
                        progress=False)
    assert np.isfinite(list(metrics["test"].values())).all()
    run = json.loads((tmp_path / variant / "run.json").read_text())
    if variant == "acp_net":
        assert "random-init" in run["acp_image_features"]


def test_every_run_reports_recall_at_k_and_mrr_in_both_directions(finished_run):
    import json
    run_dir, _ = finished_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for split in ("val", "test"):
        for tag in ("i2m", "m2i"):
            for key in ("recall_at_1", "recall_at_5", "recall_at_10", "mrr"):
                value = metrics[split][f"{tag}_{key}"]
                assert 0.0 <= value <= 1.0, (split, tag, key, value)
            assert metrics[split][f"{tag}_recall_at_1"] <= metrics[split][f"{tag}_recall_at_5"]


def test_a_crashed_run_says_failed_and_a_fixed_rerun_proceeds(smoke_data, tmp_path, monkeypatch):
    """A run that stops on an error records it in run.json ("failed", never "running"); run again
    after the fix, it starts anew without the user deleting anything, the failed folder kept aside."""
    from cdcml_lib.runs import train as T

    run_dir = tmp_path / "cdcml-s0"
    real_epoch = T.train_epoch

    def crash(*args, **kwargs):
        raise FloatingPointError("the loss became NaN")

    monkeypatch.setattr(T, "train_epoch", crash)
    with pytest.raises(FloatingPointError):
        train_run(run_params(smoke_data, run_dir, epochs=1, lr=10.0), progress=False)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "failed" and "the loss became NaN" in info["error"]

    monkeypatch.setattr(T, "train_epoch", real_epoch)
    metrics = train_run(run_params(smoke_data, run_dir, epochs=1), progress=False)   # lr fixed
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    assert metrics["best_epoch"] == 1
    kept = list((tmp_path / ".superseded").iterdir())
    assert len(kept) == 1 and json.loads((kept[0] / "run.json").read_text())["status"] == "failed"
