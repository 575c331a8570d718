"""The HTML copy of an executed notebook reads offline: maths pre-rendered as SVG (no MathJax
from a CDN needed), progress bars as text, no "IProgress not found" block; and nbrun checks the
whole configuration before it runs anything."""
import json

import nbformat
import pytest

from cdcml_lib.workflow import nbrun
from cdcml_lib.workflow import params as P
from cdcml_lib.workflow.paths import repo_root


def executed_notebook(path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "Eq. 1: $$ s = \\exp\\left(-\\frac{\\lVert y^I - y^M \\rVert_2}{\\sigma}\\right) $$ "
            "with $\\sigma > 0$; code `$HOME` stays. "
            "Unknown: $\\underbrace{a}_{b}$."),
        nbformat.v4.new_code_cell("train()"),
    ]
    nb.cells[1].outputs = [
        nbformat.v4.new_output("stream", name="stderr", text=(
            "/x/tqdm/auto.py:21: TqdmWarning: IProgress not found. Please update jupyter and ipywidgets.\n"
            "  from .autonotebook import tqdm as notebook_tqdm\n")),
        nbformat.v4.new_output("stream", name="stderr", text="\rcdcml-s0:   0%|          | 0/6 [00:00<?, ?epoch/s]"),
        nbformat.v4.new_output("stream", name="stderr", text="\rcdcml-s0: 100%|##########| 6/6 [00:09<00:00, 1.5s/epoch]"),
        nbformat.v4.new_output("stream", name="stdout", text="done\n"),
    ]
    nbformat.write(nb, str(path))


def test_html_has_maths_as_svg_and_bars_as_text(tmp_path):
    executed_notebook(tmp_path / "nb.ipynb")
    left = nbrun.export_html(tmp_path / "nb.ipynb", tmp_path / "nb.html")
    html = (tmp_path / "nb.html").read_text()
    assert html.count('<img alt="') == 2                            # Eq. 1 and sigma > 0
    assert 'alt="\\sigma &gt; 0"' in html
    assert left == ["\\underbrace{a}_{b}"]                         # reported, left as LaTeX
    assert "$HOME" in html
    assert "IProgress" not in html and "autonotebook" not in html
    assert "6/6 [00:09" in html and "0/6 [00:00" not in html       # the bar's last state only
    assert 'data-mime-type="application/vnd.jupyter.stderr"' not in html


def test_every_maths_expression_of_the_notebooks_renders_offline():
    for path in sorted((repo_root() / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "markdown":
                _, left = nbrun.render_maths("".join(cell["source"]))
                assert not left, f"{path.name}: mathtext cannot draw {left}; write it with commands it knows"


def test_the_kernels_get_the_tqdm_warning_filter(monkeypatch):
    monkeypatch.setenv("PYTHONWARNINGS", "default")
    with nbrun.kernel_environment():
        import os
        assert os.environ["PYTHONWARNINGS"] == "default,ignore:IProgress not found"
    assert os.environ["PYTHONWARNINGS"] == "default"


def test_nbrun_checks_the_whole_config_before_running(monkeypatch, tmp_path):
    def refuse(name, root=None):
        raise P.ParamError(f"params/{name}.yaml: 1 problem(s); nothing was run.")

    monkeypatch.setattr(P, "require_valid_config", refuse)
    ran = []
    monkeypatch.setattr("papermill.execute_notebook", lambda *a, **k: ran.append(a))
    assert nbrun.main(["notebooks/03_tables.ipynb", "--config", "smoke", "--out",
                       str(tmp_path / "x.ipynb")]) == 2
    assert not ran


def test_a_kernel_of_another_environment_is_refused_with_the_fix(monkeypatch):
    """A kernelspec left by another checkout (or a deleted environment) fails at once, naming the
    command that registers this environment's kernel, instead of inside every notebook."""
    import sys
    from types import SimpleNamespace

    import jupyter_client.kernelspec as ks
    from cdcml_lib.workflow import nbrun

    monkeypatch.setattr(ks.KernelSpecManager, "get_kernel_spec",
                        lambda self, name: SimpleNamespace(argv=["/nonexistent/venv/bin/python", "-m", "x"]))
    with pytest.raises(RuntimeError, match=r"runs /nonexistent/venv/bin/python, not this environment.*ipykernel install"):
        nbrun.check_kernel()
    monkeypatch.setattr(ks.KernelSpecManager, "get_kernel_spec",
                        lambda self, name: SimpleNamespace(argv=[sys.executable, "-m", "x"]))
    nbrun.check_kernel()   # this environment's own interpreter: accepted
