"""ACP-Net's own study: the correspondence models (shared parts start equal), the BCE loss, the
emotion probe, a smoke run of each model, and the paired verdicts (cdcml_lib.results.acp)."""
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from cdcml_lib import nets
from cdcml_lib.data import imac
from cdcml_lib.losses import CorrespondenceLoss, correspondence_bce_loss
from cdcml_lib.results import acp
from cdcml_lib.runs import correspondence as C
from cdcml_lib.workflow.paths import repo_root
from cdcml_lib.workflow.params import section as config_section  # configs inherit: read them merged

SIZES = dict(image_backbone="tiny_cnn", music_backbone="tiny_cnn", embed_dim=16, acp_head=[32, 8],
             l3_head=[8])


def test_shared_parts_start_from_the_same_weights():
    acp_net = nets.build_correspondence_model("acp_net", 3, **SIZES)
    spec = nets.build_correspondence_model("spectrogram_acp", 3, **SIZES)
    l3 = nets.build_correspondence_model("l3_net", 3, **SIZES)
    other_seed = nets.build_correspondence_model("acp_net", 4, **SIZES)

    def same(a, b):
        sa, sb = a.state_dict(), b.state_dict()
        return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)

    assert same(acp_net.image_branch, spec.image_branch) and same(acp_net.head, spec.head)
    assert same(spec.music_branch, l3.music_branch)
    assert not same(acp_net.head, other_seed.head)
    out = acp_net(torch.randn(4, 3, 32, 32), torch.randn(4, 193, 87))
    assert out["logit"].shape == (4,) and out["f_img"].shape == (4, 16)


def test_frozen_image_features_of_acp_do_not_train():
    model = nets.build_correspondence_model("acp_net", 0, **SIZES)
    frozen = [p for p in model.image_branch.features.parameters()]
    assert frozen and not any(p.requires_grad for p in frozen)


def test_bce_is_the_binary_cross_entropy():
    logit, label = torch.tensor([2.0, -1.0, 0.0]), torch.tensor([1.0, 0.0, 1.0])
    p = torch.sigmoid(logit)
    manual = -(label * torch.log(p) + (1 - label) * torch.log(1 - p)).mean()
    assert correspondence_bce_loss(logit, label).item() == pytest.approx(manual.item(), rel=1e-6)
    total, terms = CorrespondenceLoss()({"logit": logit}, {"score": label})
    assert set(terms) == {"bce"} and total.item() == pytest.approx(manual.item(), rel=1e-6)


def test_probe_learns_a_linear_code_and_not_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = rng.normal(size=(300, 5)) + 4 * np.eye(3, 5)[y]        # classes apart along three axes
    assert C.probe_accuracy(x[:200], y[:200], x[200:], y[200:]) > 0.95
    noise = rng.normal(size=(300, 5))
    assert C.probe_accuracy(noise[:200], y[:200], noise[200:], y[200:]) < 0.55
    assert C.chance_accuracy(np.array([1, 1, 0, 2])) == 0.5
    assert C.train_majority_accuracy(np.array([0, 0, 2]), np.array([1, 1, 0, 2])) == 0.25
    with pytest.raises(ValueError, match="single emotion class"):
        C.probe_accuracy(x[:10], np.zeros(10, int), x[10:20], y[10:20])


@pytest.fixture(scope="module")
def study(smoke_data, tmp_path_factory):
    data = tmp_path_factory.mktemp("acp") / "smoke"
    shutil.copytree(smoke_data, data)
    p = config_section("smoke", "acp_net")
    p.update({"config": "smoke", "data_dir": str(data), "runs_dir": str(data.parent / "runs"),
              "reports_dir": str(data.parent / "reports"), "seeds": [0, 1], "epochs": 1, "n_jobs": 1,
              "num_threads": 1})
    return p, C.run_study(p, progress=False)


def test_a_smoke_run_of_each_model(study):
    p, per_seed = study
    assert sorted(per_seed["model"].unique()) == sorted(nets.CORRESPONDENCE_MODELS)
    assert len(per_seed) == 2 * len(nets.CORRESPONDENCE_MODELS)
    for column in ("acc_test", "probe_img", "probe_mus", "probe_img_init", "i2m_mrr", "m2i_recall_at_1"):
        values = per_seed[column].to_numpy(float)
        assert np.isfinite(values).all() and ((0 <= values) & (values <= 1)).all(), column
    assert np.isfinite(per_seed["loss_last"]).all()


def test_a_saved_result_is_reused_and_identical(study):
    p, per_seed = study
    again = C.run_study(p, progress=False)   # every record read back, nothing retrained
    pd.testing.assert_frame_equal(per_seed, again)
    record = C.train_correspondence("acp_net", 0, p)   # retrained: bit-identical on the CPU
    row = per_seed[(per_seed["model"] == "acp_net") & (per_seed["seed"] == 0)].iloc[0]
    assert record["acc_test"] == row["acc_test"] and record["probe_img"] == row["probe_img"]


def test_report_tables_and_claims_are_written(study, tmp_path):
    p, per_seed = study
    raw = C.raw_input_probes(p)
    assert 0 <= raw["image_chance"] <= 1 and 0 <= raw["image_pixels"] <= 1
    paths = acp.write_acp_report(per_seed, raw, C.compare_kit_runs(p), p["models"], tmp_path)
    text = paths["summary.md"].read_text()
    for number in ("61.67", "57.17", "55.84"):
        assert number in text
    assert acp.report_section(tmp_path)[0].startswith("## ACP-Net")


def test_t_interval_and_paired_verdicts():
    m, lo, hi, n = acp.t_interval([1.0, 2.0, 3.0])
    assert (m, n) == (2.0, 3) and hi - m == pytest.approx(4.302653 * 1 / math.sqrt(3), rel=1e-5)
    seeds = range(10)
    rng = np.random.default_rng(0)
    base = rng.normal(0.6, 0.05, 10)
    rows = [{"model": "acp_net", "seed": s, "acc_test": base[s] + 0.05, "probe_img": 0.7, "probe_mus": 0.3,
             "probe_img_init": 0.7, "probe_mus_init": 0.3} for s in seeds]
    rows += [{"model": "l3_net", "seed": s, "acc_test": base[s] + 0.0 + 0.001 * rng.normal()} for s in seeds]
    rows += [{"model": "spectrogram_acp", "seed": s, "acc_test": base[s] + 0.02} for s in seeds]
    claims = {c["claim"]: c for c in acp.check_acp_claims(pd.DataFrame(rows),
                                                          {"image_chance": 0.4, "music_chance": 0.4})}
    a1 = claims["A1"]
    assert [k.outcome for k in a1["checks"]] == ["supports", "contradicts"]  # paired: seed noise cancels
    assert a1["verdict"] == "does not hold"
    assert [k.outcome for k in claims["A2"]["checks"]] == ["supports", "contradicts"]
    assert claims["A3"]["verdict"] == "not decided"  # no difference at all (an interval of width 0 at 0)


@pytest.mark.parametrize("config", ["default", "smoke", "paper", "imemnet"])
def test_acp_net_section_matches_the_notebook(config):
    from cdcml_lib.workflow import params as P

    nb = repo_root() / "notebooks" / "05_acp_net.ipynb"
    defaults = P.notebook_defaults(nb)
    assert set(defaults) == set(C.STUDY_KEYS)
    given = {**P.section(config, "acp_net"), "config": config, "runs_dir": f"runs/{config}",
             "data_dir": P.section(config, "dataset")["out_dir"], "reports_dir": f"reports/{config}"}
    full = P.check_params(given, defaults, f"params/{config}.yaml")
    C.check_study_params(full)
    if config == "default":
        assert len(full["seeds"]) >= 10


def test_a_kit_run_is_read_on_acp_nets_task(study, tmp_path):
    from cdcml_lib.runs.train import load_trained, train_run

    p, _ = study
    params = config_section("smoke", "train")
    params.update({"data_dir": p["data_dir"], "run_dir": str(tmp_path / "cdcml-s0"), "epochs": 1,
                   "num_threads": 1})
    train_run(params, progress=False)
    got = C.embedding_correspondence(tmp_path / "cdcml-s0", p["data_dir"])
    for key in ("acc_dist", "acc_dist_val", "acc_score", "acc_score_val"):
        assert 0 <= got[key] <= 1, key
    # The validation embeddings come from load_trained: it must reproduce the saved test ones.
    npz = np.load(tmp_path / "cdcml-s0" / "embeddings_test.npz")
    trained = load_trained(tmp_path / "cdcml-s0")
    folder = imac.read_imac_classes(p["data_dir"])
    from cdcml_lib.data.dataset import open_dataset
    data = open_dataset(p["data_dir"])
    items = data.items.assign(id=data.items["id"].astype(str)).set_index("id")
    ids = npz["ids"][npz["modality"] == "image"].astype(str)
    again = trained.encode_images(np.asarray(data.array("images")[items.loc[ids, "row"].to_numpy()]))
    np.testing.assert_allclose(again, npz["embedding"][npz["modality"] == "image"], atol=1e-5)
    assert len(folder)
