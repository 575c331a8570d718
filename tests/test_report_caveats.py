"""REPORT.md flags what a reader could misread: best epoch = last epoch, a tiny validation split,
links to files git does not keep (with what to run), and the measured modality mixing."""
import json

from cdcml_lib.results import report as R
from test_report import STUDY, fabricate, write_tables_and_claims


def test_caveats_links_and_mixing(tmp_path):
    d = fabricate(tmp_path)                       # best_epoch 1 everywhere, 1 validation song
    write_tables_and_claims(d)
    last = d["runs"] / "cdcml-s0"
    info = json.loads((last / "run.json").read_text())
    (last / "run.json").write_text(json.dumps({**info, "epochs_done": 1}))   # best = last here
    other = d["runs"] / "sim-s0"
    (other / "run.json").write_text(json.dumps({**info, "epochs_done": 6}))  # best 1 of 6
    text = R.render_report("smoke", d["reports"], d["runs"], d["data"], study=STUDY)
    assert "**Best epoch = last epoch** in 1 of 2 runs (cdcml-s0)" in text
    assert "**Tiny validation set**: 1 songs (5 clips, 20 images, 50 pairs)" in text
    assert "`embeddings/map.html` (the interactive map of the CDCML run's space): not there yet; " \
           "run `make embeddings CONFIG=smoke`" in text
    assert "`notebooks/*.html` (the executed notebooks, readable offline): not there yet; " \
           "run `make reproduce CONFIG=smoke`" in text
    assert "Modality mixing" not in text                    # not measured: not claimed

    emb = d["reports"] / "embeddings"
    (emb / "map.html").write_text("<html></html>")
    (d["reports"] / "notebooks").mkdir()
    (d["reports"] / "notebooks" / "04_embeddings.html").write_text("<html></html>")
    (emb / "numbers.json").write_text(json.dumps({
        "cdcml-s0": {"same_modality_share": 0.707, "chance_share": 0.5},
        "sim-s0": {"same_modality_share": 1.0, "chance_share": 0.5}}))
    text = R.render_report("smoke", d["reports"], d["runs"], d["data"], study=STUDY)
    assert "- [embeddings/map.html](embeddings/map.html): the interactive map" in text
    assert "- [notebooks/04_embeddings.html](notebooks/04_embeddings.html)" in text
    assert "71% for `cdcml-s0`, 100% for `sim-s0` share its modality (50% if images and clips " \
           "were mixed at random" in text


def test_no_caveat_when_there_is_none(tmp_path):
    d = fabricate(tmp_path)
    stats = json.loads((d["data"] / "stats.json").read_text())
    stats["splits"]["val"]["songs"] = 12
    (d["data"] / "stats.json").write_text(json.dumps(stats))
    assert R._section_caveats(STUDY, d["runs"], d["data"], d["reports"])[-1].startswith("None flagged")


def test_epochs_kept_per_variant_flag_the_first_and_the_last(tmp_path):
    d = fabricate(tmp_path)                       # best_epoch 1 everywhere
    write_tables_and_claims(d)
    info = json.loads((d["runs"] / "cdcml-s0" / "run.json").read_text())
    (d["runs"] / "cdcml-s0" / "run.json").write_text(json.dumps({**info, "epochs_done": 1}))
    (d["runs"] / "sim-s0" / "run.json").write_text(json.dumps({**info, "epochs_done": 6}))
    metrics = json.loads((d["runs"] / "sim-s0" / "metrics.json").read_text())
    (d["runs"] / "sim-s0" / "metrics.json").write_text(json.dumps({**metrics, "ended": "cap"}))
    lines = R._section_epochs_kept(STUDY, d["runs"])
    assert "| cdcml | 1 | 1 | **1** | **1** | 0 |" in lines   # kept epoch 1 of 1: first and last
    assert "| sim | 1 | 6 | **1** | 0 | **1** |" in lines     # kept 1 of 6, at the epoch cap
    caveats = "\n".join(R._section_caveats(STUDY, d["runs"], d["data"], d["reports"]))
    assert "Epoch cap reached** in 1 of" in caveats and "sim-s0" in caveats


def test_the_reference_comparison_is_in_the_report(tmp_path):
    d = fabricate(tmp_path)
    write_tables_and_claims(d)
    assert "Not compared yet" in "\n".join(R._section_reference(d["reports"]))
    (d["reports"] / "reference_comparison.md").write_text("# Comparison\n\n**WARNING: this reproduction DIFFERS**\n")
    text = R.render_report("smoke", d["reports"], d["runs"], d["data"], study=STUDY)
    assert "## Against the committed reference\n\n**WARNING: this reproduction DIFFERS**" in text


def test_shared_items_between_splits_are_said_plainly(tmp_path):
    d = fabricate(tmp_path)
    stats = json.loads((d["data"] / "stats.json").read_text())
    stats["split_overlap"] = [{"a": "val", "b": "test", "shared": {"songs": 90, "clips": 1598, "images": 1175, "pairs": 4110}}]
    (d["data"] / "stats.json").write_text(json.dumps(stats))
    text = "\n".join(R._section_caveats(STUDY, d["runs"], d["data"], d["reports"]))
    assert "**The val and test splits share items**" in text and "4110 pairs" in text
    assert "Test results include pairs shared with validation" in text
