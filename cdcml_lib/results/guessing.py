"""The floor under the error metrics: what always answering the training split's mean scores.

A model whose valence, arousal or similarity errors are no lower than those of a constant answer
has learned nothing on that metric, however it ranks against the other models; a claim that one
variant "improves music valence" over another then compares two guesses. Tables 3 and 4 cannot
show this on their own, so for every seed's split draw this module scores the constant answer:

- the similarity of every test pair guessed as the mean score of the training pairs;
- the valence and the arousal of every test image (clip) guessed as the mean over the training
  images (clips),

with the function the runs use (:func:`cdcml_lib.metrics.paper_metrics`, Eqs. M1 and M2 of
docs/METHOD.md), so guess and model are scored alike: pairs for the similarity, distinct items for
VA. Each variant's test errors are then set against the guess of its own seed's draw.

Outputs: ``<reports>/tables/guessing.{csv,md}`` (:func:`write_guessing`), read by REPORT.md's
section "Against guessing" and its caveats, and by the README's results section.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cdcml_lib.data.dataset import open_dataset
from cdcml_lib.data.evidence import md_comment, with_column
from cdcml_lib.matching import matching_score
from cdcml_lib.metrics import paper_metrics
from cdcml_lib.results.claims import t_interval
from cdcml_lib.results.tables import PAPER_METRICS
from cdcml_lib.runs.folder import read_params, run_folder
from cdcml_lib.workflow.paths import atomic_write_text, resolve

#: the row of the guess in the table (not a variant: no run made it)
GUESS = "guess: the training mean"
#: the row of Eq. 1 applied to the items' true VA: what a perfect VA predictor (SP-Net's route) scores
ORACLE = "Eq. 1 on the true VA"
#: the metrics the oracle row has (its VA "predictions" are the labels themselves)
ORACLE_METRICS = ("sim_mse", "sim_mae")
#: a variant's outcome against the guess on one metric, from the paired interval of guess - model
BEATS, NO_BETTER, WORSE = "beats guessing", "no better than guessing", "worse than guessing"


def guess_metrics(items: pd.DataFrame, train_pairs: pd.DataFrame, test_pairs: pd.DataFrame) -> dict[str, float]:
    """The ten error metrics of always answering the training split's mean, on the test split.

    ``items``: a dataset folder's ``items.csv`` (``id, modality, split, valence, arousal``);
    ``train_pairs``, ``test_pairs``: its pair lists (``score`` per pair). The guess of a test image's
    (clip's) valence and arousal is the mean over the training images (clips); the guess of a test
    pair's similarity is the mean score of the training pairs.
    """
    answers, targets = {}, {}
    for modality in ("image", "music"):
        rows = items[items["modality"] == modality]
        train, test = rows[rows["split"] == "train"], rows[rows["split"] == "test"]
        if train.empty or test.empty:
            raise ValueError(f"items.csv: no {modality} items in the "
                             f"{'train' if train.empty else 'test'} split, so guessing cannot be scored; "
                             "rebuild the dataset (`make data CONFIG=<config>`)")
        y = test[["valence", "arousal"]].to_numpy(float)
        targets[modality] = y
        answers[modality] = np.broadcast_to(train[["valence", "arousal"]].to_numpy(float).mean(axis=0), y.shape)
    if train_pairs.empty or test_pairs.empty:
        raise ValueError("a pair list of the train or test split is empty, so guessing cannot be scored; "
                         "rebuild the dataset (`make data CONFIG=<config>`)")
    score = test_pairs["score"].to_numpy(float)
    guess = np.full_like(score, float(train_pairs["score"].mean()))
    return paper_metrics(score, guess, targets["image"], answers["image"], targets["music"], answers["music"])


def oracle_similarity(items: pd.DataFrame, test_pairs: pd.DataFrame, sigma: float) -> dict[str, float]:
    """Similarity errors of Eq. 1 applied to the test items' true valence and arousal.

    On a corpus whose pair scores are Eq. 1 of the items' labels (the embedded benchmark, and
    IMEMNet by its recipe), this is the score of a model that predicts every item's VA exactly and
    then applies Eq. 1, which is SP-Net's route (docs/METHOD.md, section "SP-Net"): the benchmark
    hands that baseline its own scoring function, and this number says how far that goes.
    """
    va = items.set_index("id")[["valence", "arousal"]]
    y_img = va.loc[test_pairs["image_id"]].to_numpy(float)
    y_mus = va.loc[test_pairs["music_id"]].to_numpy(float)
    err = matching_score(y_img, y_mus, sigma) - test_pairs["score"].to_numpy(float)
    return {"sim_mse": float(np.mean(err ** 2)), "sim_mae": float(np.mean(np.abs(err)))}


def draw_of_run(runs_dir: str | Path, variant: str, seed: int) -> Path:
    """The dataset folder (the seed's split draw) that run ``<variant>-s<seed>`` trained and was tested on."""
    return resolve(read_params(run_folder(runs_dir, variant, seed))["data_dir"])


def gather_guesses(runs_dir: str | Path, variants: list[str], seeds: list[int]) -> pd.DataFrame:
    """One row per seed: ``seed``, ``data_dir`` and the guess's ten error metrics on that seed's draw.

    Every variant's run of a seed must have used the same draw (that is what pairs variants by
    seed); a run that used another is an error naming both folders.
    """
    rows = []
    for seed in seeds:
        draws = {variant: draw_of_run(runs_dir, variant, seed) for variant in dict.fromkeys(variants)}
        first, *others = draws.items()
        for variant, folder in others:
            if folder != first[1]:
                raise ValueError(f"{run_folder(runs_dir, variant, seed)} was tested on {folder}, but "
                                 f"{run_folder(runs_dir, first[0], seed)} on {first[1]}: runs of one seed "
                                 "must share their draw to be compared. Re-run the study (`make reproduce`).")
        dataset = open_dataset(first[1])
        try:
            guess = guess_metrics(dataset.items, dataset.pairs("train"), dataset.pairs("test"))
        except ValueError as err:
            raise ValueError(f"{first[1]}: {err}") from err   # name the draw folder
        oracle = oracle_similarity(dataset.items, dataset.pairs("test"), float(dataset.stats["sigma"]))
        rows.append({"seed": int(seed), "data_dir": str(first[1]), **guess,
                     **{f"oracle_{m}": v for m, v in oracle.items()}})
    return pd.DataFrame(rows)


def guessing_table(per_seed: pd.DataFrame, guesses: pd.DataFrame, variants: list[str],
                   confidence: float = 0.95) -> pd.DataFrame:
    """Each variant's error metrics set against the guess of the same seeds' draws.

    ``per_seed``: the runs' test metrics (``results.tables.gather_runs``); ``guesses``:
    :func:`gather_guesses`. One row for the guess (``<m>_mean``, ``<m>_std`` over seeds), then one
    per variant with, for each of the ten error metrics:

    - ``<m>_share``: the variant's mean error over the guess's mean error on the same seeds (below 1:
      lower than guessing on average);
    - ``<m>_worse``: the seeds where the run's error is not below its draw's guess;
    - ``<m>_low``, ``<m>_high``: the two-sided ``confidence`` t-interval of the paired advantage
      guess - model over seeds, and ``<m>_outcome``: :data:`BEATS` when it lies above 0,
      :data:`WORSE` below 0, :data:`NO_BETTER` when it holds 0 (the claims' paired rule).
    """
    guess = guesses.set_index("seed")
    row = {"variant": GUESS, "seeds": len(guess)}
    for m in PAPER_METRICS:
        row[f"{m}_mean"] = float(guess[m].mean())
        row[f"{m}_std"] = float(guess[m].std(ddof=1)) if len(guess) > 1 else float("nan")
    rows = [row]
    if all(f"oracle_{m}" in guess for m in ORACLE_METRICS):
        rows.append({"variant": ORACLE, "seeds": len(guess),
                     **{f"{m}_mean": float(guess[f"oracle_{m}"].mean()) for m in ORACLE_METRICS}})
    for variant in variants:
        runs = per_seed[per_seed["variant"] == variant].set_index("seed")
        missing = sorted(set(runs.index) - set(guess.index))
        if missing:
            raise ValueError(f"no guess for seeds {missing} of {variant}; gather the guesses over "
                             "the study's seeds")
        seeds = list(runs.index)
        row = {"variant": variant, "seeds": len(seeds)}
        for m in PAPER_METRICS:
            model, floor = runs.loc[seeds, m].to_numpy(float), guess.loc[seeds, m].to_numpy(float)
            mean, _, half = t_interval(floor - model, confidence)
            row[f"{m}_share"] = float(model.mean() / floor.mean())
            row[f"{m}_worse"] = int((model >= floor).sum())
            row[f"{m}_low"], row[f"{m}_high"] = mean - half, mean + half
            row[f"{m}_outcome"] = (BEATS if mean - half > 0 else WORSE if mean + half < 0 else NO_BETTER)
        rows.append(row)
    return pd.DataFrame(rows)


def not_beating_guessing(table: pd.DataFrame) -> dict[str, list[dict]]:
    """Per error metric, the variants whose paired interval does not show them beating the guess
    (outcome :data:`NO_BETTER` or :data:`WORSE`), each as ``variant, outcome, share, worse, seeds``;
    metrics where every variant beats it are left out."""
    out: dict[str, list[dict]] = {}
    for _, row in table[~table["variant"].isin([GUESS, ORACLE])].iterrows():
        for m in PAPER_METRICS:
            if row[f"{m}_outcome"] != BEATS:
                out.setdefault(m, []).append({"variant": row["variant"], "outcome": row[f"{m}_outcome"],
                                              "share": float(row[f"{m}_share"]),
                                              "worse": int(row[f"{m}_worse"]), "seeds": int(row["seeds"])})
    return out


def not_learned_pairs(table: pd.DataFrame) -> frozenset[tuple[str, str]]:
    """The (variant, metric) pairs of :func:`not_beating_guessing`: what the claims checklist marks."""
    return frozenset((h["variant"], m) for m, hits in not_beating_guessing(table).items() for h in hits)


def not_beating_words(table: pd.DataFrame) -> str | None:
    """One sentence naming, per metric, the variants not shown to beat guessing, each with its mean
    error as a multiple of the guess's (None when every variant beats it on every error metric)."""
    weak = not_beating_guessing(table)
    if not weak:
        return None
    n_variants = int((~table["variant"].isin([GUESS, ORACLE])).sum())
    parts = []
    for m, hits in weak.items():
        if len(hits) == n_variants > 1:
            shares = [h["share"] for h in hits]
            parts.append(f"on {m}, every variant ({min(shares):.2f}x to {max(shares):.2f}x)")
        else:
            parts.append(f"on {m}, " + ", ".join(
                f"{h['variant']} ({h['share']:.2f}x{', worse than guessing' if h['outcome'] == WORSE else ''})"
                for h in hits))
    return ("are not shown to beat always answering the training split's mean (paired interval over "
            "seeds; in parentheses the mean error as a multiple of the guess's): " + "; ".join(parts)
            + ". A claim about these metrics compares models that have not learned them.")


def words_from_reports(reports_dir: str | Path) -> tuple[bool, str | None]:
    """Whether ``<reports>/tables/guessing.csv`` exists, and its :func:`not_beating_words`."""
    table = read_guessing(reports_dir)
    return table is not None, (not_beating_words(table) if table is not None else None)


def _fmt(x: float) -> str:
    return "–" if x != x else f"{x:.3f}"


def to_markdown(table: pd.DataFrame) -> str:
    """The guessing table as Markdown: the guess's mean ± sd, then per variant its mean error as a
    share of the guess's and, in parentheses, the seeds where it did not beat the guess; in bold
    where the paired interval does not show the variant beating the guess."""
    head = "| | seeds | " + " | ".join(f"{m} ↓" for m in PAPER_METRICS) + " |"
    lines = [head, "|---|---|" + "---:|" * len(PAPER_METRICS)]
    for _, row in table.iterrows():
        if row["variant"] == GUESS:
            cells = [f"{_fmt(row[f'{m}_mean'])} ± {_fmt(row[f'{m}_std'])}" for m in PAPER_METRICS]
        elif row["variant"] == ORACLE:
            cells = [f"{row[f'{m}_mean']:.2g}" if m in ORACLE_METRICS else "–" for m in PAPER_METRICS]
        else:
            cells = [f"{row[f'{m}_share']:.2f} ({int(row[f'{m}_worse'])})" for m in PAPER_METRICS]
            cells = [c if row[f"{m}_outcome"] == BEATS else f"**{c}**" for c, m in zip(cells, PAPER_METRICS)]
        lines.append(f"| {row['variant']} | {int(row['seeds'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: what the table's cells mean, for every place that shows it
HOW_TO_READ = ("First row: the errors of always answering the training split's mean (the similarity of a "
               "test pair: the mean score of the training pairs; an item's valence and arousal: the means "
               "over its modality's training items), mean ± sd over the seeds' draws. Below it, per "
               "variant: its mean error as a share of that guess's (below 1: lower on average) and, in "
               "parentheses, the seeds where its run did not beat the guess of its own draw. **Bold**: the "
               "paired interval of the two errors over seeds does not show the variant beating the guess. "
               "Second row: the similarity errors of Eq. 1 applied to the test items' true valence and "
               "arousal, the route of SP-Net with perfect VA predictors; near 0 where the benchmark's "
               "scores are Eq. 1 of its labels.")


def write_guessing(table: pd.DataFrame, reports_dir: str | Path, evidence: dict | None = None) -> dict[str, Path]:
    """Write ``<reports>/tables/guessing.{csv,md}`` (atomically), with ``evidence`` as a CSV column
    and a Markdown comment; returns the paths."""
    out = resolve(reports_dir) / "tables"
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "guessing.csv", "md": out / "guessing.md"}
    csv = with_column(table, evidence) if evidence else table
    atomic_write_text(paths["csv"], csv.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(paths["md"], (md_comment(evidence) if evidence else "") + to_markdown(table))
    return paths


def read_guessing(reports_dir: str | Path) -> pd.DataFrame | None:
    """``<reports>/tables/guessing.csv`` as written, or None when the tables step has not written it."""
    path = resolve(reports_dir) / "tables" / "guessing.csv"
    return pd.read_csv(path) if path.is_file() else None


def oracle_of(table: pd.DataFrame) -> dict[str, float] | None:
    """The :data:`ORACLE` row's similarity errors of a guessing table (:func:`guessing_table`, or
    as read back by :func:`read_guessing`); None when the table has no such row."""
    rows = table[table["variant"] == ORACLE]
    if rows.empty:
        return None
    return {m: float(rows.iloc[0][f"{m}_mean"]) for m in ORACLE_METRICS}
