"""The committed reference of the default study, and how close a fresh reproduction came to it.

``reports/reference.json`` holds what the committed default study found: every table number (mean,
standard deviation and number of seeds per variant and metric), every claim's verdict, and the
environment and CPU that made them. ``make reproduce`` ends by comparing the fresh tables and
claims with it (:func:`compare`):

- each number's difference from the reference in units of the seed spread, z = (new - ref) /
  sqrt(sd_ref^2 / n_ref + sd_new^2 / n_new) (the standard error of a difference of two means);
  ``|z| <= Z_TOLERANCE`` is "within tolerance";
- whether every verdict is the same. A verdict is its outcome (holds, does not hold, no
  difference, not decided); its "on the boundary" label, which says that round-off may tip it, is
  compared and shown apart: a label that comes or goes is not a different verdict.

A verdict that differs, or a number outside tolerance, prints a loud warning (it is not an error:
another CPU or library version can move numbers, and the report then says so in plain words).
``python -m cdcml_lib.results.reference write`` makes the reference from the current results, on
purpose only (``make reference``), after a change that is meant to move the results.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import sys
from pathlib import Path

import pandas as pd

from cdcml_lib.results.claims import outcome_of
from cdcml_lib.results.report import cpu_name
from cdcml_lib.results.tables import METRICS
from cdcml_lib.workflow.paths import atomic_write_text, reports_dir

#: |z| above this is "outside tolerance": 3 standard errors of the difference of two means
Z_TOLERANCE = 3.0
TABLES = ("comparison", "ablation")
REFERENCE = "reference.json"
COMPARISON = "reference_comparison"


def environment() -> dict:
    """Where numbers are made: the CPU, Python and the libraries that decide the arithmetic."""
    import numpy
    import scipy
    import sklearn
    import torch

    try:
        import librosa
        librosa_version = librosa.__version__
    except ImportError:  # the study never imports it when the feature caches exist
        librosa_version = "absent"
    return {"cpu": cpu_name(), "machine": platform.machine(), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__, "librosa": librosa_version}


def read_results(reports: Path) -> dict:
    """The numbers (tables/<table>.csv) and the verdicts (claims.json) of one study."""
    metrics = {}
    for table in TABLES:
        df = pd.read_csv(reports / "tables" / f"{table}.csv")
        metrics[table] = {
            row["variant"]: {m: {"mean": float(row[f"{m}_mean"]), "std": float(row[f"{m}_std"]),
                                 "n": int(row["n_seeds"])} for m in METRICS if f"{m}_mean" in row}
            for _, row in df.iterrows()}
    record = json.loads((reports / "claims.json").read_text())
    claims = record["claims"]
    verdicts = {str(c.get("id", c["number"])): c["verdict"] for c in claims}
    # the rule's verdicts without the correction for the number of checks (claims.json written
    # before 2026-12-08 has only these, as its "verdict")
    uncorrected = {str(c.get("id", c["number"])): c.get("uncorrected") or c["verdict"] for c in claims}
    return {"metrics": metrics, "verdicts": verdicts, "uncorrected": uncorrected,
            "evidence": record.get("evidence")}


def write_reference(config: str) -> Path:
    """``<reports>/reference.json`` from the current tables and claims of ``config``."""
    reports = reports_dir(config)
    ref = {"schema": 2, "config": config,
           "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "environment": environment(), **read_results(reports)}
    path = reports / REFERENCE
    atomic_write_text(path, json.dumps(ref, indent=1) + "\n")
    return path


def z_score(new: dict, ref: dict) -> float:
    """(new - ref) in units of the standard error of their difference (0 when both are equal)."""
    diff = new["mean"] - ref["mean"]
    se = math.sqrt(ref["std"] ** 2 / max(ref["n"], 1) + new["std"] ** 2 / max(new["n"], 1))
    if diff == 0:
        return 0.0
    return diff / se if se > 0 else math.copysign(math.inf, diff)


def compare(reference: dict, fresh: dict) -> dict:
    """Every number and verdict of ``fresh`` against ``reference`` (both as :func:`read_results`)."""
    rows = []
    for table, variants in reference["metrics"].items():
        for variant, metrics in variants.items():
            for metric, ref in metrics.items():
                new = fresh["metrics"].get(table, {}).get(variant, {}).get(metric)
                if new is None:
                    rows.append({"table": table, "variant": variant, "metric": metric, "reference": ref["mean"],
                                 "fresh": None, "z": None, "status": "missing"})
                    continue
                z = z_score(new, ref)
                status = "identical" if new["mean"] == ref["mean"] else (
                    "within" if abs(z) <= Z_TOLERANCE else "outside")
                rows.append({"table": table, "variant": variant, "metric": metric, "reference": ref["mean"],
                             "fresh": new["mean"], "z": z, "status": status})
    # a reference written before the corrected verdicts (schema 1) holds the rule's own verdicts:
    # compare like with like
    basis = "verdicts" if "uncorrected" in reference else "uncorrected"
    verdicts = []
    for k, v in reference["verdicts"].items():
        new = fresh[basis].get(k)
        verdicts.append({"claim": k, "reference": v, "fresh": new,
                         "same": new is not None and outcome_of(new) == outcome_of(v),
                         "label_same": new is not None and (outcome_of(new) != new) == (outcome_of(v) != v)})
    counts = {s: sum(r["status"] == s for r in rows) for s in ("identical", "within", "outside", "missing")}
    return {"numbers": rows, "verdicts": verdicts, "counts": counts,
            "verdicts_same": sum(v["same"] for v in verdicts), "verdicts_total": len(verdicts),
            "labels_differ": sum(v["same"] and not v["label_same"] for v in verdicts),
            "verdicts_compared": ("corrected for the number of checks" if basis == "verdicts" else
                                  "without the correction (the reference predates the corrected verdicts)"),
            "z_tolerance": Z_TOLERANCE}


def headline(result: dict) -> str:
    """One sentence a skimming reader cannot misread."""
    c, n = result["counts"], len(result["numbers"])
    same, total = result["verdicts_same"], result["verdicts_total"]
    agree = same == total and c["outside"] == 0 and c["missing"] == 0
    first = ("This reproduction AGREES with the committed reference" if agree else
             "WARNING: this reproduction DIFFERS from the committed reference")
    labels = result.get("labels_differ", 0)
    label_words = (f" ({labels} of them with another 'fragile' label)" if labels else "")
    return (f"{first}: {same} of {total} claim verdicts are the same{label_words}; of {n} table numbers "
            f"{c['identical']} are identical, {c['within']} differ within {result['z_tolerance']:g} "
            f"seed-spread units, {c['outside']} lie outside that tolerance"
            + (f" and {c['missing']} are missing" if c["missing"] else "") + ".")


def to_markdown(result: dict, reference: dict, fresh_env: dict) -> str:
    ref_env = reference.get("environment", {})
    evidence = result.get("evidence") or {}
    lines = ["# Comparison with the committed reference", "", f"**{headline(result)}**", "",
             *([f"Evidence of this run: {evidence['description']}.", ""] if evidence else []),
             "How to read it: each number of Tables 3 and 4 is compared with `reports/reference.json`, "
             "the committed default study. z is the difference in units of the standard error of a "
             "difference of two seed means (sqrt(sd_ref^2/n_ref + sd_new^2/n_new)); |z| <= "
             f"{result['z_tolerance']:g} is within tolerance. A different CPU or library version moves "
             "numbers in their last digits (docs/REPRODUCIBILITY.md, \"Determinism policy\"); a verdict that "
             "changes is the thing to look at.", "",
             "| | reference | this run |", "|---|---|---|"]
    for key in ("cpu", "python", "torch", "numpy", "scipy", "scikit-learn", "librosa"):
        lines.append(f"| {key} | {ref_env.get(key, '?')} | {fresh_env.get(key, '?')} |")
    lines += ["", "## Verdicts", "",
              f"Compared: the verdicts {result.get('verdicts_compared', 'as written')}.", "",
              "| claim | reference | this run | same |", "|---|---|---|---|"]
    for v in result["verdicts"]:
        same = ("**NO**" if not v["same"] else "yes" if v.get("label_same", True) else
                "yes (the fragile label differs)")
        lines.append(f"| {v['claim']} | {v['reference']} | {v['fresh']} | {same} |")
    off = [r for r in result["numbers"] if r["status"] in ("outside", "missing")]
    lines += ["", f"## Numbers outside tolerance ({len(off)})", ""]
    if off:
        lines += ["| table | variant | metric | reference | this run | z |", "|---|---|---|---:|---:|---:|"]
        lines += [f"| {r['table']} | {r['variant']} | {r['metric']} | {r['reference']:.4f} | "
                  + (f"{r['fresh']:.4f} | {r['z']:+.1f} |" if r["fresh"] is not None else "missing | |")
                  for r in off]
    else:
        lines.append("None.")
    zs = [abs(r["z"]) for r in result["numbers"] if r["z"] is not None and math.isfinite(r["z"])]
    if zs:
        lines += ["", f"Largest |z| of the numbers: {max(zs):.2f}; median {sorted(zs)[len(zs) // 2]:.2f}."]
    return "\n".join(lines) + "\n"


def run_compare(config: str) -> dict | None:
    """Compare ``config``'s fresh results with its reference; write and print the comparison."""
    reports = reports_dir(config)
    ref_path = reports / REFERENCE
    if not ref_path.is_file():
        text = (f"No reference for CONFIG={config}: nothing to compare. `make reference "
                f"CONFIG={config}` makes these results the reference.")
        claims = reports / "claims.json"   # the evidence of the results that have no reference yet
        evidence = (json.loads(claims.read_text()).get("evidence") if claims.is_file() else None) or {}
        words = f"\n\nEvidence of this run: {evidence['description']}.\n" if evidence else "\n"
        atomic_write_text(reports / f"{COMPARISON}.md", f"# Comparison with the committed reference\n\n**{text}**{words}")
        atomic_write_text(reports / f"{COMPARISON}.json", json.dumps({"headline": text, "evidence": evidence}) + "\n")
        print(text)
        return None
    reference = json.loads(ref_path.read_text())
    fresh_env = environment()
    fresh = read_results(reports)
    result = compare(reference, fresh)
    result["evidence"] = fresh.get("evidence")
    result["environment"] = {"reference": reference.get("environment", {}), "fresh": fresh_env}
    result["headline"] = headline(result)
    atomic_write_text(reports / f"{COMPARISON}.json", json.dumps(result, indent=1, default=str) + "\n")
    atomic_write_text(reports / f"{COMPARISON}.md", to_markdown(result, reference, fresh_env))
    text = headline(result)
    if text.startswith("WARNING"):
        bar = "!" * 78
        print(f"{bar}\n{text}\nDetails: {reports / (COMPARISON + '.md')}\n{bar}", file=sys.stderr)
    else:
        print(text)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdcml_lib.results.reference", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["compare", "write", "headline"],
                        help="compare: fresh results against the reference; write: make them the "
                             "reference; headline: print the last comparison's one-line verdict")
    parser.add_argument("--config", default="default")
    args = parser.parse_args(argv)
    if args.command == "write":
        print(f"wrote {write_reference(args.config)}")
    elif args.command == "headline":
        path = reports_dir(args.config) / f"{COMPARISON}.json"
        print(json.loads(path.read_text())["headline"] if path.is_file() else "no comparison yet")
    else:
        run_compare(args.config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
