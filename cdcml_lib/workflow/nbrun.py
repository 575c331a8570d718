"""Run one notebook of the study with papermill, after checking its parameters.

    python -m cdcml_lib.workflow.nbrun notebooks/01_dataset.ipynb --config default
    python -m cdcml_lib.workflow.nbrun notebooks/02_train.ipynb --config default --variant cdcml --seeds 0 1 2
    python -m cdcml_lib.workflow.nbrun notebooks/03_tables.ipynb --config smoke -p k_sigma=3

What it guarantees, so that Make can trust its outputs:
- the parameters come from ``params/<config>.yaml`` (and a variant file for training) and are
  checked against the notebook's parameters cell before anything runs;
- the kernel is always ``cdcml`` and the working directory always ``notebooks/`` (as under nbval);
- the executed notebook is written under a temporary name and renamed only when every cell ran:
  a failed run leaves ``<name>.failed.ipynb`` to read, never a file that looks finished;
- the wall time of the step goes to ``<reports>/timings/<step>.json`` for the report.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

from cdcml_lib.workflow import params as P
from cdcml_lib.workflow.paths import atomic_write_text, repo_root, reports_dir, resolve

KERNEL = "cdcml"


def parameters_for(notebook: Path, config: str, variant: str | None, seeds: list[int] | None) -> dict:
    """The parameter set a study notebook gets for ``config`` (before command-line overrides).

    02_train trains one variant for several seeds in one kernel: it gets the variant's train
    parameters (without ``seed`` and ``run_dir``), the seeds (default: the study's) and the runs
    folder, and makes ``<runs_dir>/<variant>-s<seed>`` for each seed.
    """
    stem = notebook.stem
    if stem.startswith("01_dataset"):
        return P.section(config, "dataset")
    if stem.startswith("02_train"):
        variant = variant or "cdcml"
        return {**P.variant_params(config, variant), "variant": variant,
                "seeds": list(P.study_seeds(config) if seeds is None else seeds),
                "runs_dir": f"runs/{config}"}
    if stem.startswith("03_tables"):
        return {"config": config, "runs_dir": f"runs/{config}", "reports_dir": str(reports_dir(config))}
    if stem.startswith("04_embeddings"):
        emb = P.section(config, "embeddings")
        return {**emb, "runs_dir": f"runs/{config}", "data_dir": P.section(config, "dataset")["out_dir"],
                "reports_dir": str(reports_dir(config))}
    return {}


def step_name(notebook: Path, variant: str | None) -> str:
    """``02_train-<variant>`` for a variant's training notebook, else the notebook's stem."""
    return notebook.stem + (f"-{variant}" if variant is not None else "")


def write_timing(config: str, step: str, wall_s: float) -> Path:
    out = reports_dir(config) / "timings" / f"{step}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"step": step, "wall_s": round(wall_s, 2),
              "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    atomic_write_text(out, json.dumps(record, indent=2) + "\n")
    return out


def export_html(executed: Path, html: Path) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(executed))
    atomic_write_text(html, body)


def run_notebook(notebook: Path, config: str, out: Path, variant: str | None = None,
                 seeds: list[int] | None = None, overrides: dict | None = None, html: bool = True) -> dict:
    """Check the parameters, execute ``notebook`` into ``out`` atomically; return the parameters."""
    import papermill as pm

    notebook = resolve(notebook)
    given = parameters_for(notebook, config, variant, seeds)
    given.update(overrides or {})
    source = f"parameters of {notebook.name} from params/{config}.yaml" + (
        f" + params/variants/{variant}.yaml" if variant else "") + (" + command line" if overrides else "")
    full = P.check_params(given, P.notebook_defaults(notebook), source)

    out = resolve(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.stem + ".partial.ipynb")
    failed = out.with_name(out.stem + ".failed.ipynb")
    start = time.perf_counter()
    try:
        pm.execute_notebook(str(notebook), str(partial), parameters=full, kernel_name=KERNEL,
                            cwd=str(repo_root() / "notebooks"), progress_bar=False,
                            log_output=bool(os.environ.get("CDCML_LOG_NOTEBOOK")))
    except BaseException:
        if partial.exists():
            os.replace(partial, failed)
        raise
    wall = time.perf_counter() - start
    if failed.exists():
        failed.unlink()
    if html:
        try:  # a side product: its failure must not leave the finished notebook unrenamed
            export_html(partial, out.with_suffix(".html"))
        except Exception as err:  # noqa: BLE001
            print(f"warning: no HTML copy of {out.name} ({err})", file=sys.stderr)
    os.replace(partial, out)  # last: the executed notebook's presence means the step finished
    write_timing(config, step_name(notebook, variant), wall)
    return full


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdcml_lib.workflow.nbrun", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook")
    parser.add_argument("--config", default="default")
    parser.add_argument("--variant")
    parser.add_argument("--seeds", type=int, nargs="+",
                        help="02_train: the seeds to train (default: the study section's seeds)")
    parser.add_argument("--out", help="executed notebook (default <reports>/notebooks/<step>.ipynb)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                        help="override one parameter (value read as YAML)")
    parser.add_argument("--no-html", action="store_true")
    args = parser.parse_args(argv)

    overrides = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"-p {item!r}: expected KEY=VALUE")
        overrides[key] = P.parse_cli_value(value)
    notebook = Path(args.notebook)
    out = Path(args.out) if args.out else (
        reports_dir(args.config) / "notebooks" / f"{step_name(notebook, args.variant)}.ipynb")
    try:
        run_notebook(notebook, args.config, out, args.variant, args.seeds, overrides, html=not args.no_html)
    except P.ParamError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # papermill's error already shows the failing cell
        print(f"error: {notebook} failed; see {out.with_name(out.stem + '.failed.ipynb')}\n{err}",
              file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
