"""Hand-written numbers about results in README.md and docs/ agree with the report files they cite.

A number in the prose is followed on its line by ``<!-- cite: PATH KEY -->`` (``x100`` inside the
marker when the text shows a share as a percentage). PATH is relative to the repository root; KEY
is a dotted path into a JSON file (a list index as a number, ``field=value`` for the list element
whose ``field`` is ``value``) or, for a CSV file, ``ROW.COLUMN`` with ROW the value of the first
column. The written number must equal the cited value rounded to the decimals written, so a report
regenerated with other numbers fails here until the prose is brought up to date.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!--\s*cite:\s*(\S+)\s+(\S+?)(\s+x100)?\s*-->")
NUMBER = re.compile(r"[-−]?\d+(?:,\d{3})*(?:\.\d+)?")


def pages(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def cited_value(root: Path, path: str, key: str) -> float:
    """The value at ``key`` of the report file ``path`` (see the module docstring)."""
    file = root / path
    if not file.is_file():
        raise LookupError(f"{path}: no such report file")
    if file.suffix == ".csv":
        row_name, column = key.rsplit(".", 1)
        with file.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if next(iter(row.values())) == row_name:
                    return float(row[column])
        raise LookupError(f"{path}: no row {row_name!r}")
    node = json.loads(file.read_text(encoding="utf-8"))
    for part in key.split("."):
        if isinstance(node, list):
            if "=" in part:
                field, value = part.split("=", 1)
                matches = [x for x in node if isinstance(x, dict) and str(x.get(field)) == value]
                if not matches:
                    raise LookupError(f"{path}: no element with {field} = {value} for {key}")
                node = matches[0]
            else:
                node = node[int(part)]
        else:
            if part not in node:
                raise LookupError(f"{path}: no {part!r} on the way to {key}")
            node = node[part]
    return float(node)


def citations(text: str):
    """(line number, written number as text, path, key, x100) for every marker of ``text``."""
    for n, line in enumerate(text.splitlines(), start=1):
        start = 0
        for m in MARKER.finditer(line):
            numbers = NUMBER.findall(line[start:m.start()])
            yield n, (numbers[-1] if numbers else None), m.group(1), m.group(2), bool(m.group(3))
            start = m.end()


def stale_numbers(page: Path, root: Path = ROOT) -> list[str]:
    """Every citation of ``page`` whose number differs from its report file, said in one line each."""
    problems = []
    for line, written, path, key, x100 in citations(page.read_text(encoding="utf-8")):
        where = f"{page.relative_to(root)}:{line}"
        if written is None:
            problems.append(f"{where}: a cite marker for {path} {key} follows no number")
            continue
        try:
            value = cited_value(root, path, key) * (100 if x100 else 1)
        except (LookupError, ValueError, KeyError, IndexError) as err:
            problems.append(f"{where}: {err}")
            continue
        text = written.replace(",", "").replace("−", "-")
        decimals = len(text.split(".")[1]) if "." in text else 0
        if abs(float(text) - value) > 0.5 * 10 ** -decimals + 1e-9:
            problems.append(f"{where}: says {written}, but {path} {key} is {value:.{decimals + 2}f} "
                            f"(rounds to {value:.{decimals}f}): update the text")
    return problems


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_cited_number_matches_its_report_file(page):
    assert not stale_numbers(page), "\n".join(stale_numbers(page))


def test_the_docs_cite_the_results_they_quote():
    assert sum(1 for p in pages() for _ in citations(p.read_text(encoding="utf-8"))) >= 10


def test_a_planted_stale_number_is_caught(tmp_path):
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "claims.json").write_text(json.dumps(
        {"claims": [{"id": "8b", "checks": [{"metric": "sim_mae", "estimate": 0.2191}]}]}))
    (tmp_path / "reports" / "t.csv").write_text("variant,sim_mse_mean\ncdcml,0.02908\n")
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "RESULTS.md"
    ok = ("gain 21.9% <!-- cite: reports/claims.json claims.id=8b.checks.metric=sim_mae.estimate x100 --> "
          "and MSE 0.029 <!-- cite: reports/t.csv cdcml.sim_mse_mean -->\n")
    page.write_text(ok)
    assert stale_numbers(page, tmp_path) == []
    page.write_text(ok.replace("21.9%", "23.4%"))
    (problem,) = stale_numbers(page, tmp_path)
    assert "docs/RESULTS.md:1: says 23.4" in problem and "rounds to 21.9" in problem
    page.write_text("MSE 0.029 <!-- cite: reports/t.csv contrastive.sim_mse_mean -->\n")
    assert "no row 'contrastive'" in stale_numbers(page, tmp_path)[0]
