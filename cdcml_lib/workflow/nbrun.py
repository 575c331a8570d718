"""Run one notebook of the study with papermill, after checking its parameters.

    python -m cdcml_lib.workflow.nbrun notebooks/01_dataset.ipynb --config default
    python -m cdcml_lib.workflow.nbrun notebooks/02_train.ipynb --config default --variant cdcml --seeds 0 1 2
    python -m cdcml_lib.workflow.nbrun notebooks/03_tables.ipynb --config smoke -p k_sigma=3

What it guarantees, so that Make can trust its outputs:
- the parameters come from ``params/<config>.yaml`` (and a variant file for training) and are
  checked against the notebook's parameters cell before anything runs;
- the kernel is always ``cdcml`` and the working directory always ``notebooks/`` (as under nbval);
- every parameter of ``params/<config>.yaml`` and of every variant file is checked first
  (``params.check_config``: every problem listed at once);
- the HTML copy reads offline: maths pre-rendered as SVG, progress bars as text;
- the executed notebook is written under a temporary name and renamed only when every cell ran:
  a failed run leaves ``<name>.failed.ipynb`` to read, never a file that looks finished;
- the wall time of the step goes to ``<reports>/timings/<step>.json`` for the report.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import sys
import time
from pathlib import Path

from cdcml_lib.workflow import params as P
from cdcml_lib.workflow.paths import atomic_write_text, repo_root, reports_dir, resolve, runs_dir

KERNEL = "cdcml"


def parameters_for(notebook: Path, config: str, variant: str | None, seeds: list[int] | None) -> dict:
    """The parameter set a study notebook gets for ``config`` (before command-line overrides).

    02_train trains one variant for several seeds in one kernel: it gets the variant's train
    parameters (without ``seed`` and ``run_dir``), the seeds (default: the study's) and the runs
    folder, and makes ``<runs_dir>/<variant>-s<seed>`` for each seed.
    """
    stem = notebook.stem
    if stem.startswith("01_dataset"):
        return {**P.section(config, "dataset"), "draw_seeds": P.draw_seeds(config)}
    if stem.startswith("02_train"):
        variant = variant or "cdcml"
        train = P.variant_params(config, variant)
        extra = P.extra_term_keys(train)   # the cell has the paper's five weights; others come as one mapping
        return {**{k: v for k, v in train.items() if k not in extra}, "extra_terms": extra, "variant": variant,
                "seeds": list(P.study_seeds(config) if seeds is None else seeds),
                "runs_dir": runs_dir(config)}
    if stem.startswith("03_tables"):
        return {"config": config, "runs_dir": runs_dir(config), "reports_dir": str(reports_dir(config))}
    if stem.startswith("05_acp_net"):
        return {**P.section(config, "acp_net"), "config": config,
                "data_dir": P.section(config, "dataset")["out_dir"], "runs_dir": runs_dir(config),
                "reports_dir": str(reports_dir(config))}
    if stem.startswith("04_embeddings"):
        emb = P.section(config, "embeddings")
        return {**emb, "runs_dir": runs_dir(config), "data_dir": P.section(config, "dataset")["out_dir"],
                "reports_dir": str(reports_dir(config))}
    return {}


def step_name(notebook: Path, variant: str | None) -> str:
    """``02_train-<variant>`` for a variant's training notebook, else the notebook's stem."""
    return notebook.stem + (f"-{variant}" if variant is not None else "")


def corpus_of(config: str) -> str:
    """The dataset corpus ``config`` names (embedded, standin, imemnet): every record says it."""
    return str(P.section(config, "dataset").get("corpus", ""))


def record_provenance(executed: Path, config: str) -> None:
    """Open the executed notebook with a cell that says what made it: the configuration and the
    corpus of its dataset (the executed copy is the step's record, so it must say what it rests on)."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    corpus = corpus_of(config)
    words = (" (the kit's synthetic benchmark: results on it say nothing about real photos and songs)"
             if corpus in ("embedded", "standin") else "")
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(
        f"*Executed by `python -m cdcml_lib.workflow.nbrun` with `params/{config}.yaml`; dataset corpus: "
        f"`{corpus}`{words}.*"))
    nbformat.write(nb, executed)


def write_timing(config: str, step: str, wall_s: float) -> Path:
    out = reports_dir(config) / "timings" / f"{step}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"step": step, "wall_s": round(wall_s, 2),
              "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "corpus": corpus_of(config)}
    atomic_write_text(out, json.dumps(record, indent=2) + "\n")
    return out


# --- the HTML copy: maths pre-rendered, progress bars as text ----------------------------------
# nbconvert's HTML loads MathJax from a CDN, so opened offline its equations show as raw LaTeX.
# We pre-render every $...$ and $$...$$ of the markdown cells to an inline SVG with matplotlib's
# mathtext (no network, no new dependency; alt text = the LaTeX source). mathtext knows a subset
# of TeX: MATHTEXT_REWRITES maps the few commands our notebooks use that it lacks; anything it
# still cannot parse stays LaTeX and is reported (tests/test_nbrun_html.py keeps the notebooks'
# maths within the subset).

MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$(?![\s$])(.+?)(?<![\\\s$])\$(?!\d)", re.S)
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
MATHTEXT_REWRITES = [
    (re.compile(r"\\[lr]Vert"), r"\\Vert"), (re.compile(r"\\[lr]vert"), "|"),
    (re.compile(r"\\[bB]igg?l?\s*([(\[])"), r"\\left\1"),
    (re.compile(r"\\[bB]igg?r?\s*([)\]])"), r"\\right\1"),
    (re.compile(r"\\operatorname\{([^}]*)\}"), r"\\mathrm{\1}"),
    (re.compile(r"\\tfrac"), r"\\frac"), (re.compile(r"\\dfrac"), r"\\frac"),
]
#: stream lines that are a tqdm bar ("desc:  40%|####      | 2/5 [...]") or tqdm's widget warning
TQDM_LINE = re.compile(r"^.*\d+%\|.*\|.*$|^.*TqdmWarning: IProgress not found.*$")
#: for the kernels papermill starts: tqdm.auto falls back to text bars without ipywidgets, but
#: first warns "IProgress not found" (a pink block in the HTML); the bars themselves stay
KERNEL_WARNING_FILTER = "ignore:IProgress not found"


def math_svg(tex: str, display: bool) -> str | None:
    """An ``<img>`` with the SVG of ``tex`` rendered by matplotlib's mathtext, or None if it
    cannot parse it."""
    import base64
    import html as html_lib
    import io

    import matplotlib
    from matplotlib import mathtext
    from matplotlib.font_manager import FontProperties

    source = " ".join(tex.split())
    expr = source
    for pattern, repl in MATHTEXT_REWRITES:
        expr = pattern.sub(repl, expr)
    buf = io.BytesIO()
    try:
        # Computer Modern, as LaTeX and MathJax draw maths
        with matplotlib.rc_context({"mathtext.fontset": "cm", "svg.fonttype": "path"}):
            depth = mathtext.math_to_image(f"${expr}$", buf, prop=FontProperties(size=15 if display else 13),
                                           dpi=72, format="svg")
    except Exception:  # noqa: BLE001 - pyparsing/ValueError: a command mathtext does not know
        return None
    uri = "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    alt = html_lib.escape(source, quote=True)
    if display:
        return f'<div style="text-align: center; margin: 0.6em 0"><img src="{uri}" alt="{alt}"></div>'
    return f'<img src="{uri}" alt="{alt}" style="vertical-align: -{depth:.1f}pt">'


def render_maths(markdown: str) -> tuple[str, list[str]]:
    """``markdown`` with its maths (outside code) as inline SVG; and the expressions left as LaTeX."""
    failed: list[str] = []

    def one(match: re.Match) -> str:
        display = match.group(1) is not None
        tex = match.group(1) if display else match.group(2)
        img = math_svg(tex, display)
        if img is None:
            failed.append(tex.strip())
            return match.group(0)
        return img

    out, last = [], 0
    for code in CODE.finditer(markdown):
        out.append(MATH.sub(one, markdown[last:code.start()]))
        out.append(code.group(0))
        last = code.end()
    out.append(MATH.sub(one, markdown[last:]))
    return "".join(out), failed


def text_streams(outputs: list) -> list:
    """Stream outputs merged per stream, carriage returns applied (a tqdm bar keeps its last
    state), and stderr that holds only progress bars shown as plain text (stdout)."""
    merged: list = []
    for out in outputs:
        if out.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream" \
                and merged[-1]["name"] == out["name"]:
            merged[-1]["text"] += out["text"]
        else:
            merged.append(dict(out))
    result = []
    for out in merged:
        if out.get("output_type") != "stream":
            result.append(out)
            continue
        lines = [line.rsplit("\r", 1)[-1] for line in out["text"].replace("\r\n", "\n").split("\n")]
        lines = [line for i, line in enumerate(lines)
                 if line or i == len(lines) - 1]
        # tqdm's widget warning: its line and the source line Python prints under it
        drop = {j for i, line in enumerate(lines) if "IProgress not found" in line
                for j in (i, i + 1) if j == i or "autonotebook" in lines[min(j, len(lines) - 1)]}
        lines = [line for i, line in enumerate(lines) if i not in drop]
        text = "\n".join(lines)
        if not text.strip():
            continue
        name = out["name"]
        if name == "stderr" and all(TQDM_LINE.match(line) for line in lines if line.strip()):
            name = "stdout"   # a finished progress bar, not an error
        result.append({**out, "name": name, "text": text})
    return result


def export_html(executed: Path, html: Path) -> list[str]:
    """Write the HTML copy of an executed notebook, readable offline: maths pre-rendered as SVG,
    progress bars as their last line of text. Returns the expressions left as LaTeX."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    failed: list[str] = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source, bad = render_maths(cell.source)
            failed += bad
        elif cell.cell_type == "code":
            cell.outputs = [nbformat.from_dict(o) for o in text_streams(cell.get("outputs", []))]
    body, _ = HTMLExporter().from_notebook_node(nb)
    atomic_write_text(html, body)
    return failed


@contextlib.contextmanager
def kernel_environment():
    """Environment for the kernels papermill starts: no tqdm widget warning (text bars stay)."""
    before = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [before, KERNEL_WARNING_FILTER]))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONWARNINGS", None)
        else:
            os.environ["PYTHONWARNINGS"] = before


def kernel_python(argv0: str) -> str | None:
    """The environment a kernel's interpreter belongs to (its folder above bin/), or None when the
    interpreter is not there."""
    exe = Path(argv0)
    return os.path.realpath(exe.parent.parent) if exe.is_file() else None


def check_kernel(kernel: str = KERNEL) -> None:
    """The ``cdcml`` kernel must run this environment's Python: a kernelspec left by another
    checkout or a deleted environment would otherwise fail inside every notebook, or run other code."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    fix = f"register it again: {sys.executable} -m ipykernel install --sys-prefix --name {kernel} (make env does)"
    try:
        spec = KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        raise RuntimeError(f"no Jupyter kernel named {kernel!r}; {fix}") from None
    if kernel_python(spec.argv[0]) != os.path.realpath(sys.prefix):
        raise RuntimeError(f"the Jupyter kernel {kernel!r} runs {spec.argv[0]}, not this environment "
                           f"({sys.prefix}); {fix}")


def run_notebook(notebook: Path, config: str, out: Path, variant: str | None = None,
                 seeds: list[int] | None = None, overrides: dict | None = None, html: bool = True) -> dict:
    """Check the parameters, execute ``notebook`` into ``out`` atomically; return the parameters."""
    import papermill as pm

    notebook = resolve(notebook)
    P.require_valid_config(config)   # every parameter of the config and its variants, first
    check_kernel()
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
        with kernel_environment():
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
    record_provenance(partial, config)
    if html:
        try:  # a side product: its failure must not leave the finished notebook unrenamed
            latex_left = export_html(partial, out.with_suffix(".html"))
            if latex_left:
                print(f"warning: {out.with_suffix('.html').name}: {len(latex_left)} expression(s) "
                      f"left as LaTeX (not in matplotlib's mathtext): {latex_left[:3]}", file=sys.stderr)
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
