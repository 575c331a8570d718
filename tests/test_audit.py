"""The pair-list audit (cdcml_lib.data.audit) on the published validation list and on made-up lists."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cdcml_lib.data.audit import (TRUSTED_IMAGE_IDS, _table1_check, audit_pairs,
                                  format_audit, main, song_of)
from cdcml_lib.data.corpora import CorpusError
from cdcml_lib.matching import IMEMNET_TABLE1
from cdcml_lib.data.corpora import read_pairs, write_pairs
from cdcml_lib.workflow.paths import repo_root

REFERENCE = repo_root().parent / "shared" / "reference"
VAL = REFERENCE / "imemnet" / "val_matching.txt"
IMAGE_VA = REFERENCE / "imemnet" / "image_va.csv"
needs_reference = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason=f"real reference files not found at {REFERENCE} "
                                   "(../shared/reference beside the repository)")
IAPS_IDS = r"\d+(\.\d+)?"


def test_song_of_takes_the_prefix_before_the_last_dash():
    assert song_of("2009-114") == "2009" and song_of("a-b-3") == "a-b"


@needs_reference
def test_counts_of_the_published_validation_list():
    f = audit_pairs([VAL])["files"][str(VAL)]
    assert (f["pairs"], f["clips"], f["songs"], f["images"]) == (8795, 1750, 90, 1278)
    assert 0.029 < f["score_min"] < 0.030 and 0.997 < f["score_max"] < 0.998
    ppc = f["pairs_per_clip"]
    assert ppc["min"] >= 1 and ppc["mean"] == pytest.approx(8795 / 1750)


@needs_reference
def test_eq1_with_clip_va_fitted_to_iaps_images_gives_sigma_038():
    with pytest.warns(UserWarning, match="conflicting"):
        report = audit_pairs([VAL], image_va=IMAGE_VA, images_like=IAPS_IDS,
                             forms=("exp", "exp_squared"))
    assert report["image_va"]["conflicting_ids"] == ["2345", "2352", "2745", "2900", "3550",
                                                     "4664", "6250", "6570"]
    eq1 = report["eq1"]
    assert eq1["mean_neg_log_score"] == pytest.approx(1.01, abs=0.01)
    fitted = eq1["fitted_clip_va"]
    assert fitted["clips"] >= 5 and fitted["pairs"] >= 15
    assert fitted["exp"]["sigma"] == pytest.approx(0.38, abs=0.02)
    assert fitted["exp"]["rms"] < 0.008                      # README: about 0.004
    assert fitted["exp_squared"]["rms"] > 2.5 * fitted["exp"]["rms"]
    assert "sigma 0.38" in format_audit(report)


def _known_va_files(tmp_path, sigma=0.4, n_clips=12, n_images=30, seed=0):
    rng = np.random.default_rng(seed)
    y_mus, y_img = rng.random((n_clips, 2)), rng.random((n_images, 2))
    clips = [f"{100 + k // 3}-{k % 3 + 9}" for k in range(n_clips)]
    images = [f"img{j}" for j in range(n_images)]
    rows = [(clips[k], images[j], float(np.exp(-np.linalg.norm(y_img[j] - y_mus[k]) / sigma)))
            for k in range(n_clips) for j in rng.choice(n_images, 6, replace=False)]
    pairs = pd.DataFrame(rows, columns=["music_id", "image_id", "score"])
    pd.DataFrame({"img": images, "valence": y_img[:, 0], "arousal": y_img[:, 1]}).to_csv(
        tmp_path / "image_va.csv")
    pd.DataFrame({"id": clips, "modality": "music", "valence": y_mus[:, 0],
                  "arousal": y_mus[:, 1]}).to_csv(tmp_path / "items.csv", index=False)
    return pairs


def test_known_va_recovers_the_sigma_that_made_the_scores(tmp_path):
    pairs = _known_va_files(tmp_path, sigma=0.4)
    write_pairs(pairs, tmp_path / "pairs.txt")
    report = audit_pairs([tmp_path / "pairs.txt"], image_va=tmp_path / "image_va.csv",
                         music_va=tmp_path / "items.csv")
    known = report["eq1"]["known_va"]
    assert known["pairs"] == len(pairs)
    assert known["exp"]["sigma"] == pytest.approx(0.4, abs=1e-3) and known["exp"]["rms"] < 1e-6
    assert known["linear"]["rms"] > 100 * known["exp"]["rms"] + 1e-4


def test_fitted_clip_va_recovers_sigma_without_music_labels(tmp_path):
    pairs = _known_va_files(tmp_path, sigma=0.35, n_clips=6)
    write_pairs(pairs, tmp_path / "pairs.txt")
    fitted = audit_pairs([tmp_path / "pairs.txt"], image_va=tmp_path / "image_va.csv",
                         images_like="all", forms=("exp",))["eq1"]["fitted_clip_va"]
    assert fitted["clips"] == 6 and fitted["exp"]["sigma"] == pytest.approx(0.35, abs=0.01)
    assert fitted["exp"]["rms"] < 1e-3


def test_overlaps_and_duplicates_between_files(tmp_path):
    pairs = _known_va_files(tmp_path)
    songs = pairs.music_id.map(song_of)
    a, b = pairs[songs.isin(["100", "101"])], pairs[~songs.isin(["100", "101"])]
    leaked = pd.concat([b, a.iloc[:2], a.iloc[:1]])           # 2 pairs of split a, one twice
    write_pairs(a, tmp_path / "a.txt")
    write_pairs(leaked, tmp_path / "b.txt")
    report = audit_pairs([tmp_path / "a.txt", tmp_path / "b.txt"])
    fb = report["files"][str(tmp_path / "b.txt")]
    assert fb["duplicate_pairs"] == 1 and fb["conflicting_duplicates"] == 0
    assert fb["songs"] == 3
    overlap = report["overlaps"][0]
    assert overlap["songs"] == 1 and overlap["pairs"] == 2
    assert overlap["clips"] == a.iloc[:2].music_id.nunique()
    assert overlap["images"] == len(set(a.image_id) & set(leaked.image_id))
    text = format_audit(report)
    assert text.startswith("VERDICT\n  splits disjoint: NO")
    assert "[violation] a.txt and b.txt share 1 songs (50% of a.txt's, 33% of b.txt's)" in text


def test_command_line_writes_json_and_summary(tmp_path, capsys):
    pairs = _known_va_files(tmp_path)
    write_pairs(pairs, tmp_path / "pairs.txt")
    out = tmp_path / "audit.json"
    assert main([str(tmp_path / "pairs.txt"), "--json", str(out)]) == 0
    summary = capsys.readouterr().out
    assert f"pairs {len(pairs)}" in summary and "mean -log(s)" in summary
    report = json.loads(out.read_text())
    assert report["files"][str(tmp_path / "pairs.txt")]["pairs"] == len(read_pairs(tmp_path / "pairs.txt"))
    assert main([str(tmp_path / "missing.txt")]) == 1      # an input that failed: status 1
    assert "missing.txt does not exist" in capsys.readouterr().err


def test_music_va_with_conflicting_labels_leaves_the_id_out_and_warns(tmp_path):
    from cdcml_lib.data.audit import read_music_va

    path = tmp_path / "music_va.csv"
    path.write_text("id,valence,arousal\ns1-1,0.2,0.3\ns1-1,0.9,0.3\ns1-2,0.5,0.5\ns1-2,0.5,0.5\n")
    with pytest.warns(UserWarning, match=r"music_va\.csv: 1 music ids .*s1-1"):
        labels = read_music_va(path)
    assert list(labels.index) == ["s1-2"]


# --- the verdict: overlaps, duplicates, Table 1, --strict, empty lists --------------------------

def test_verdict_flags_overlap_and_duplicates_and_strict_fails(tmp_path, capsys):
    pairs = _known_va_files(tmp_path)
    songs = pairs.music_id.map(song_of)
    val = pairs[songs == "100"]
    test = pd.concat([pairs[songs != "100"], val.iloc[:3], val.iloc[:1]])   # leak + 1 duplicate
    write_pairs(val, tmp_path / "val_matching.txt")
    write_pairs(test, tmp_path / "test_matching.txt")
    files = [str(tmp_path / "val_matching.txt"), str(tmp_path / "test_matching.txt")]
    report = audit_pairs(files)
    assert list(report)[0] == "verdict"
    v = report["verdict"]
    assert v["splits_disjoint"] is False and v["violations"] == 2
    overlap = next(f for f in v["flags"] if f["flag"] == "split_overlap")
    assert overlap["shared"]["songs"] == 1 and overlap["fraction_of_a"]["songs"] == 1.0
    assert overlap["shared"]["pairs"] == 3 and overlap["fraction_of_a"]["pairs"] == 3 / len(val)
    dup = next(f for f in v["flags"] if f["flag"] == "duplicate_pairs")
    assert dup["file"] == files[1] and dup["count"] == 1
    kinds = {f["flag"] for f in v["flags"]}
    assert "table1_mismatch" in kinds                     # tiny lists are far from Table 1
    assert main(files + ["--json", str(tmp_path / "a.json")]) == 0
    assert json.loads((tmp_path / "a.json").read_text())["verdict"]["violations"] == 2
    out = capsys.readouterr().out
    assert out.startswith("VERDICT") and "all of val_matching.txt's" in out
    assert main(files + ["--strict", "--json", str(tmp_path / "a.json")]) == 1
    disjoint = pairs[(songs != "100") & ~pairs.image_id.isin(val.image_id)]
    write_pairs(disjoint, tmp_path / "test_matching.txt")
    assert main(files + ["--strict", "--json", str(tmp_path / "a.json")]) == 0


def test_table1_difference_explained_by_the_songs_shared_with_val():
    counts = {"songs": 360, "clips": 6760, "images": 4937, "pairs": 26115}
    shared = {"songs": 90, "clips": 1598, "images": 1175, "pairs": 4110}
    check = _table1_check("test_matching.txt", counts, "test", [("val_matching.txt", shared)])
    assert check["counts"]["songs"] == {"list": 360, "paper": 270, "difference": 90}
    assert not check["matches"]
    assert any(r.startswith("songs: 360 = 270 + 90, exactly the songs this list shares with "
                            "val_matching.txt") for r in check["likely_explanation"])
    assert any(r.startswith("clips: +1,537 against Table 1, and 1,598") for r in check["likely_explanation"])
    assert IMEMNET_TABLE1["test"] == {"songs": 270, "clips": 5223, "images": 3843, "pairs": 26115}


def test_empty_pair_list_is_an_error_not_nan(tmp_path, capsys):
    (tmp_path / "val.txt").write_text("")
    with pytest.raises(CorpusError, match=r"val\.txt holds no pairs"):
        audit_pairs([tmp_path / "val.txt"])
    assert main([str(tmp_path / "val.txt")]) == 1
    captured = capsys.readouterr()
    assert "holds no pairs" in captured.err and "nan" not in captured.out + captured.err


@needs_reference
def test_published_val_list_verdict_and_default_trusted_images():
    with pytest.warns(UserWarning, match="conflicting"):
        report = audit_pairs([VAL], image_va=IMAGE_VA, forms=("exp",))
    v = report["verdict"]
    assert v["splits_disjoint"] is True
    assert next(f for f in v["flags"] if f["flag"] == "duplicate_pairs")["count"] == 7
    t1 = next(f for f in v["flags"] if f["flag"] == "table1_mismatch")
    assert t1["split"] == "val" and t1["counts"]["clips"] == {"list": 1750, "paper": 1759,
                                                              "difference": -9}
    fitted = report["eq1"]["fitted_clip_va"]
    assert fitted["images_like"] == TRUSTED_IMAGE_IDS           # the default: IAPS ids only
    assert fitted["exp"]["sigma"] == pytest.approx(0.38, abs=0.02) and fitted["exp"]["rms"] < 0.008
    assert "images: ids like" in format_audit(report)


@needs_reference
def test_emotic_labels_of_image_va_fit_the_published_scores_far_worse():
    """Why the default fit leaves the EMOTIC images out (TRUSTED_IMAGE_IDS' docstring)."""
    with pytest.warns(UserWarning, match="conflicting"):
        emotic = audit_pairs([VAL], image_va=IMAGE_VA, images_like=r"(COCO_|frame_).*",
                             forms=("exp",))["eq1"]["fitted_clip_va"]
    assert emotic["clips"] > 1000 and emotic["exp"]["rms"] > 0.05      # IAPS: < 0.008


def test_exit_contract_one_bad_list_is_named_and_the_others_audited(tmp_path, capsys):
    pairs = _known_va_files(tmp_path)
    write_pairs(pairs, tmp_path / "good.txt")
    (tmp_path / "broken.txt").write_text("a-1 b\n")
    out = tmp_path / "a.json"
    assert main([str(tmp_path / "good.txt"), str(tmp_path / "broken.txt"), "--json", str(out)]) == 1
    captured = capsys.readouterr()
    assert "broken.txt, line 1: expected 3 fields" in captured.err
    assert list(json.loads(out.read_text())["files"]) == [str(tmp_path / "good.txt")]
    # a label file that cannot be read is a configuration error: 2, nothing audited
    assert main([str(tmp_path / "good.txt"), "--image-va", str(tmp_path / "none.csv")]) == 2
    with pytest.raises(SystemExit) as usage:
        main(["--help"])
    assert usage.value.code == 0
    assert "1  some pair lists could not be read" in capsys.readouterr().out


@needs_reference
def test_a_byte_order_mark_does_not_add_a_song_to_the_published_list(tmp_path):
    (tmp_path / "val_bom.txt").write_bytes(b"\xef\xbb\xbf" + VAL.read_bytes())
    report = audit_pairs([tmp_path / "val_bom.txt"], fit=False)
    counts = report["files"][str(tmp_path / "val_bom.txt")]
    assert (counts["songs"], counts["clips"]) == (90, 1750)


@needs_reference
def test_the_default_fit_says_how_little_it_rests_on():
    report = audit_pairs([VAL], image_va=IMAGE_VA, forms=("exp",))
    fitted = report["eq1"]["fitted_clip_va"]
    support = fitted["support"]
    assert (support["pairs"], support["clips"]) == (21, 7) and support["thin"]
    lo, hi = support["sigma_leave_one_clip_out"]
    assert lo <= fitted["exp"]["sigma"] <= hi
    assert "rests on only 21 pairs of 7 clips" in format_audit(report)


def test_a_fit_on_many_clips_is_not_called_thin():
    from cdcml_lib.data.audit import ClipGroups, fit_support
    rng = np.random.default_rng(0)
    groups = ClipGroups.from_pairs([(rng.random((5, 2)), rng.random(5)) for _ in range(40)])
    support = fit_support(groups)
    assert support == {"pairs": 200, "clips": 40, "residual_dof": 119, "thin": False}
