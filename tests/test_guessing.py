"""The guess of the training split's mean: scored like a run, set against the variants paired by
seed, and shown in REPORT.md and the README where a variant does not beat it."""
import json

import numpy as np
import pandas as pd
import pytest

from cdcml_lib.results import guessing as G
from cdcml_lib.results import report as R
from cdcml_lib.results import tables as T
from cdcml_lib.results.tables import PAPER_METRICS
from test_report import STUDY, fabricate, write_tables_and_claims


def items_and_pairs():
    items = pd.DataFrame([
        # id, modality, split, valence, arousal
        ("i0", "image", "train", 0.2, 0.4), ("i1", "image", "train", 0.4, 0.8),
        ("i2", "image", "test", 0.5, 0.6), ("i3", "image", "val", 0.9, 0.9),
        ("m0", "music", "train", 0.1, 0.1), ("m1", "music", "train", 0.3, 0.3), ("m2", "music", "train", 0.5, 0.2),
        ("m3", "music", "test", 0.3, 0.4), ("m4", "music", "test", 0.1, 0.2),
    ], columns=["id", "modality", "split", "valence", "arousal"])
    train = pd.DataFrame({"music_id": ["m0", "m1"], "image_id": ["i0", "i1"], "score": [0.2, 0.6]})
    test = pd.DataFrame({"music_id": ["m3", "m4"], "image_id": ["i2", "i2"], "score": [0.4, 0.9]})
    return items, train, test


def test_the_guess_is_scored_by_hand():
    m = G.guess_metrics(*items_and_pairs())
    # similarity: every test pair guessed 0.4 (the training pairs' mean): errors 0 and 0.5
    assert m["sim_mse"] == pytest.approx(0.125) and m["sim_mae"] == pytest.approx(0.25)
    # the one test image guessed (0.3, 0.6): valence off by 0.2, arousal exact; validation items unused
    assert m["img_v_mse"] == pytest.approx(0.04) and m["img_v_mae"] == pytest.approx(0.2)
    assert m["img_a_mse"] == pytest.approx(0.0) and m["img_a_mae"] == pytest.approx(0.0)
    # the two test clips guessed (0.3, 0.2): valence errors 0 and 0.2, arousal 0.2 and 0
    assert m["mus_v_mse"] == pytest.approx(0.02) and m["mus_v_mae"] == pytest.approx(0.1)
    assert m["mus_a_mse"] == pytest.approx(0.02) and m["mus_a_mae"] == pytest.approx(0.1)


def test_a_split_without_items_is_named():
    items, train, test = items_and_pairs()
    with pytest.raises(ValueError, match="no music items in the test split"):
        G.guess_metrics(items[~((items["modality"] == "music") & (items["split"] == "test"))], train, test)


def three_variants():
    """A beats the guess, B is the guess plus noise, C is worse, on every metric of 8 seeds."""
    rng = np.random.default_rng(0)
    seeds = list(range(8))
    guesses = pd.DataFrame([{"seed": s, **{m: 0.5 + 0.01 * s for m in PAPER_METRICS}} for s in seeds])
    rows = []
    for variant, offset in (("A", -0.2), ("B", 0.0), ("C", +0.2)):
        for s in seeds:
            noise = rng.normal(0, 0.05) if variant == "B" else 0.0
            rows.append({"variant": variant, "seed": s,
                         **{m: 0.5 + 0.01 * s + offset + noise for m in PAPER_METRICS}})
    return pd.DataFrame(rows), guesses


def test_variants_are_set_against_the_guess_of_their_own_seeds():
    per_seed, guesses = three_variants()
    table = G.guessing_table(per_seed, guesses, ["A", "B", "C"]).set_index("variant")
    assert table.loc[G.GUESS, "sim_mse_mean"] == pytest.approx(0.535)
    assert table.loc["A", "sim_mse_outcome"] == G.BEATS and table.loc["A", "sim_mse_worse"] == 0
    assert table.loc["A", "sim_mse_share"] == pytest.approx(0.335 / 0.535)
    assert table.loc["B", "sim_mse_outcome"] == G.NO_BETTER
    assert table.loc["C", "sim_mse_outcome"] == G.WORSE and table.loc["C", "sim_mse_worse"] == 8
    md = G.to_markdown(table.reset_index())
    assert "| A | 8 | 0.63 (0) |" in md and "| C | 8 | **1.37 (8)** |" in md
    words = G.not_beating_words(table.reset_index())
    assert "on sim_mse, B (1.0" in words and "C (1.37x, worse than guessing)" in words
    assert "A (" not in words
    assert "every variant" not in words
    b_and_c = G.not_beating_words(G.guessing_table(per_seed, guesses, ["B", "C"]))
    assert "on sim_mse, every variant (1.0" in b_and_c and "to 1.37x)" in b_and_c
    only_a = G.guessing_table(per_seed[per_seed["variant"] == "A"], guesses, ["A"])
    assert G.not_beating_words(only_a) is None


def test_a_seed_without_a_guess_is_refused():
    per_seed, guesses = three_variants()
    with pytest.raises(ValueError, match=r"no guess for seeds \[7\] of A"):
        G.guessing_table(per_seed, guesses[guesses["seed"] != 7], ["A"])


def test_runs_of_one_seed_on_different_draws_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("CDCML_ROOT", str(tmp_path))
    for variant, draw in (("A", "data/x/draws/s0"), ("B", "data/x/draws/s1")):
        (tmp_path / "runs" / f"{variant}-s0").mkdir(parents=True)
        (tmp_path / "runs" / f"{variant}-s0" / "params.json").write_text(json.dumps({"data_dir": draw}))
    with pytest.raises(ValueError, match=r"B-s0 was tested on .*draws/s1, but .*A-s0 on .*draws/s0"):
        G.gather_guesses(tmp_path / "runs", ["A", "B"], [0])


def test_report_and_readme_say_which_variants_do_not_beat_guessing(tmp_path, monkeypatch):
    d = fabricate(tmp_path)
    write_tables_and_claims(d)          # every fabricated error is below the guess of 0.5
    stats = json.loads((d["data"] / "stats.json").read_text())
    stats["splits"]["val"]["songs"] = 12                                      # no other caveat
    (d["data"] / "stats.json").write_text(json.dumps(stats))
    text = R.render_report("smoke", d["reports"], d["runs"], d["data"], study=STUDY)
    assert "### Against guessing" in text and "No better than guessing" not in text
    assert "every variant beats guessing on every error metric" in \
        "\n".join(R._section_caveats(STUDY, d["runs"], d["data"], d["reports"]))

    per_seed = pd.read_csv(d["reports"] / "tables" / "guessing.csv")  # as written: now make sim guess-like
    per_seed.loc[per_seed["variant"] == "sim", ["mus_v_mse_outcome", "mus_v_mse_worse"]] = [G.NO_BETTER, 1]
    per_seed.to_csv(d["reports"] / "tables" / "guessing.csv", index=False)
    text = R.render_report("smoke", d["reports"], d["runs"], d["data"], study=STUDY)
    assert "- **No better than guessing** (section \"Against guessing\"): these variants are not shown to " \
           "beat always answering the training split's mean" in text
    assert "on mus_v_mse, sim (" in text

    monkeypatch.setenv("CDCML_ROOT", str(tmp_path))
    readme = tmp_path / "README.md"
    readme.write_text(f"{R.README_BEGIN}\n{R.README_END}\n")
    R.update_readme("smoke", d["reports"], readme)
    assert "**Against guessing**: some variants are not shown to beat" in readme.read_text()


def test_claims_mark_the_checks_on_a_metric_a_variant_has_not_learned(tmp_path):
    from cdcml_lib.results import claims as C

    d = fabricate(tmp_path)
    write_tables_and_claims(d)
    per_seed = T.gather_runs(d["runs"], STUDY["comparison"] + STUDY["ablation"], STUDY["seeds"])
    not_learned = frozenset({("sim", "mus_v_mse"), ("sim_va", "mus_v_mse"), ("sim", "sim_mse")})
    claims = C.check_claims(per_seed, not_learned=not_learned)
    C.write_claims(claims, d["reports"], not_learned=not_learned)
    md = (d["reports"] / "claims.md").read_text()
    assert "| mus_v_mse | sim_va better than sim |" in md
    row = next(line for line in md.splitlines() if line.startswith("| mus_v_mse | sim_va better than sim |"))
    assert row.endswith("| not testable (two guesses) |")              # neither variant learned it
    row = next(line for line in md.splitlines() if line.startswith("| sim_mse | sim_va better than sim |"))
    assert row.endswith("; sim does not beat guessing |")                 # one of the two did not
    assert C.GUESS_NOTE in md
    record = json.loads((d["reports"] / "claims.json").read_text())
    assert ["sim", "mus_v_mse"] in record["not_learned"]
    text = R.render_report("smoke", d["reports"], d["runs"], d["data"], study=STUDY)
    claim6 = next(line for line in text.splitlines() if line.startswith("| 6 |"))
    assert "1 check not testable (two guesses)." in claim6
    C.write_claims(C.check_claims(per_seed), d["reports"])                # nothing marked without them
    assert "two guesses" not in (d["reports"] / "claims.md").read_text()
