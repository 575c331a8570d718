"""docs/METHOD.md is the one account of the method, and every reference to it resolves.

- the page exists and its headings are unique (a citation names one place);
- every citation ``docs/METHOD.md, section "X"`` in code, notebooks, docs, tests and params names
  a heading of the page (its text, with or without the leading section number);
- no file refers to any other METHOD file (a bare one, or a copy outside the repository);
- every public function and class of the method's losses and metrics modules cites its section.

Generated outputs (``reports/``, ``data/``, ``runs/``) are not scanned: they are rewritten by the
code whose text is scanned here. Nor is this file, which spells wrong references on purpose to test
the scanners (``test_the_checks_can_fail``).
"""
from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "METHOD.md"
DOC_REF = "docs/METHOD.md"

# Any path-like token that ends in the METHOD file's name: the only one allowed is DOC_REF.
METHOD_TOKEN = re.compile(r"[\w./\\-]*" + r"METHOD\.md")
# `docs/METHOD.md, section "X"`, also in backticks and with several names:
# `docs/METHOD.md`, sections "X", "Y" and "Z".
# A quote may be escaped (a name inside a Python string literal).
CITATION = re.compile(re.escape(DOC_REF)
                      + r"""[`*]*,?\s+sections?\s+((?:\\?"[^"\\]+\\?"(?:,\s*|\s+and\s+)?)+)""")
QUOTED = re.compile(r'\\?"([^"\\]+)\\?"')
# The start of any citation: each must go on into quoted names (a comment's "# " inside one breaks it).
CITATION_START = re.compile(re.escape(DOC_REF) + r"[`*]*,?\s+sections?\b")
SECTION_NUMBER = re.compile(r"^\d+(\.\d+)*\.?\s+")

TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".txt", ".toml", ".cfg", ".cff", ".ini"}
TEXT_NAMES = {"Makefile"}
SKIP_TOP = {"reports", "data", "runs", ".git", ".venv", "build"}
SKIP_ANY = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache", "node_modules"}


def headings(markdown: str) -> list[str]:
    """The heading texts of a markdown page (outside fenced code), as written."""
    out, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6}\s", line):
            out.append(line.lstrip("#").strip())
    return out


def citable_names(markdown: str) -> set[str]:
    """What a citation may name: each heading as written and without its leading number."""
    names = set()
    for h in headings(markdown):
        names.add(h)
        names.add(SECTION_NUMBER.sub("", h))
    return names


def scanned_files() -> list[Path]:
    """The repository's text files, walked with pruning (never into .venv, data/, runs/ ...)."""
    files = []
    for folder, dirs, names in os.walk(ROOT):
        here = Path(folder)
        top = here == ROOT
        dirs[:] = sorted(d for d in dirs if d not in SKIP_ANY and not d.endswith(".egg-info")
                         and not (top and d in SKIP_TOP))
        for name in names:
            path = here / name
            if path == Path(__file__).resolve():  # the checker spells wrong references on purpose
                continue
            if path.suffix in TEXT_SUFFIXES | {".ipynb"} or name in TEXT_NAMES:
                files.append(path)
    return sorted(files)


def text_of(path: Path) -> str:
    """The text a reader sees: a notebook's cell sources (so quotes are not JSON-escaped)."""
    raw = path.read_text(encoding="utf-8")
    if path.suffix != ".ipynb":
        return raw
    cells = json.loads(raw)["cells"]
    return "\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells)


def bad_references(text: str) -> list[str]:
    return [t for t in METHOD_TOKEN.findall(text) if t != DOC_REF]


def cited_sections(text: str) -> list[str]:
    """Every section name cited with the page, in order."""
    return [" ".join(name.split()) for group in CITATION.findall(text) for name in QUOTED.findall(group)]


def unknown_citations(text: str, names: set[str]) -> list[str]:
    return [c for c in cited_sections(text) if c not in names]


@pytest.fixture(scope="module")
def doc_text() -> str:
    assert DOC.is_file(), f"{DOC_REF} is missing: the method's account must be in the repository"
    return DOC.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def corpus() -> dict[Path, str]:
    files = scanned_files()
    assert any(p.suffix == ".ipynb" for p in files) and any(p.suffix == ".py" for p in files)
    return {p: text_of(p) for p in files}


def test_doc_exists_with_unique_headings(doc_text):
    hs = headings(doc_text)
    assert len(hs) >= 20, f"{DOC_REF} has only {len(hs)} headings"
    short = [SECTION_NUMBER.sub("", h) for h in hs]
    dup = sorted({h for h in short if short.count(h) > 1})
    assert not dup, f"{DOC_REF}: headings {dup} appear twice, so a citation of them is ambiguous"
    for needed in ("Losses", "Eq. 2: cross-modal feature ratio", "Metrics",
                   "Where the paper is ambiguous, and our reading"):
        assert needed in short, f"{DOC_REF} lacks the section {needed!r}"


def test_every_equation_of_the_method_is_written(doc_text):
    for eq in ("(Eq. 1)", "(Eq. 2)", "(Eq. 3)", "(Eq. 4)", "(Eq. 5)", "(Eq. 6)", "(Eq. 7)", "(Eq. 8)",
               "(M1)", "(M2)", "(M3)", "(M4)", "(M5)", "(C1)"):
        assert eq in doc_text, f"{DOC_REF} does not state {eq}"


def test_cross_references_inside_the_page_resolve(doc_text):
    names = citable_names(doc_text)
    inner = [" ".join(n.split()) for n in re.findall(r'section "([^"]+)"', doc_text)]
    assert inner, f"{DOC_REF} has no cross-reference to check"
    assert [n for n in inner if n not in names] == []


def test_citations_name_existing_sections(doc_text, corpus):
    names = citable_names(doc_text)
    problems = {str(p.relative_to(ROOT)): bad for p, text in corpus.items()
                if (bad := unknown_citations(text, names))}
    assert not problems, (f"citations of {DOC_REF} naming no heading of it (file: sections): {problems}; "
                          f"fix the citation or the heading")
    n = sum(len(cited_sections(t)) for t in corpus.values())
    assert n >= 20, f"only {n} citations of {DOC_REF} found: is the scan reading the repository?"


def test_citations_are_well_formed(corpus):
    problems = {str(p.relative_to(ROOT)): n for p, text in corpus.items()
                if (n := len(CITATION_START.findall(text)) - len(CITATION.findall(text)))}
    assert not problems, (f"citations of {DOC_REF} whose section name is not in double quotes right "
                          f"after 'section' (file: count): {problems}; keep each citation on one "
                          f"comment line, or write it as {DOC_REF}, section \"<heading>\"")


def test_no_other_method_file_is_referred_to(corpus):
    problems = {str(p.relative_to(ROOT)): sorted(set(bad)) for p, text in corpus.items()
                if (bad := bad_references(text))}
    assert not problems, (f"references to a METHOD file other than {DOC_REF} (file: spellings): "
                          f"{problems}; point them to {DOC_REF}, section \"<heading>\"")


@pytest.mark.parametrize("module", ["cdcml_lib/losses.py", "cdcml_lib/metrics.py"])
def test_losses_and_metrics_cite_their_section(doc_text, module):
    names = citable_names(doc_text)
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
    missing, unknown = [], []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            cited = cited_sections(ast.get_docstring(node) or "")
            if not cited:
                missing.append(node.name)
            unknown += [f"{node.name}: {c!r}" for c in cited if c not in names]
    assert not missing, (f"{module}: {missing} have no 'docs/METHOD.md, section \"...\"' in their "
                         f"docstring; name the equation and its section")
    assert not unknown, f"{module}: docstrings cite sections that {DOC_REF} lacks: {unknown}"


def test_the_checks_can_fail():
    """The scanners catch what they are meant to catch (so the tests above are not vacuous)."""
    other = "../shared/paper/" + "METHOD.md"
    assert bad_references(f"see {other} section 2") == [other]
    assert bad_references("see " + "METHOD.md" + " section 9") == ["METHOD.md"]
    assert bad_references(f"see `{DOC_REF}`, and METHOD_SRC in the Makefile") == []
    names = citable_names("# T\n## 3. Losses\n### Eq. 6: x\n```\n## not a heading\n```\n")
    assert names >= {"Losses", "3. Losses", "Eq. 6: x"} and "not a heading" not in names
    assert unknown_citations(f'{DOC_REF}, section "Losses" and {DOC_REF}, section "Lost"', names) == ["Lost"]
    assert cited_sections(f'"... ({DOC_REF}, section \\"Losses\\") ..."') == ["Losses"]
    assert len(CITATION_START.findall(f'{DOC_REF}, section\n    # "Losses"')) == 1
    assert CITATION.findall(f'{DOC_REF}, section\n    # "Losses"') == []
    assert cited_sections(f'`{DOC_REF}`, sections "Losses", "Eq. 6: x" and "T". Then "quoted"') == [
        "Losses", "Eq. 6: x", "T"]
