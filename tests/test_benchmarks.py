"""The feature benchmark runs end to end on a few clips and prints every figure it promises.

(Speed is not asserted here: tests stay fast and deterministic; the figures are the benchmark's.)
"""
import re
import runpy
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "features.py"


def test_features_benchmark_prints_rates_and_agreement(capsys, monkeypatch):
    pytest.importorskip("librosa")
    monkeypatch.setattr(sys, "argv", [str(BENCH), "--clips", "6", "--reference-clips", "2",
                                      "--repeats", "1", "--jobs", "2"])
    runpy.run_path(str(BENCH), run_name="__main__")
    out = capsys.readouterr().out
    for line in ("librosa, clip by clip", "fast, 1 core, cold caches", "fast, 2 processes, first call",
                 "fast, 1 core", "fast, 2 processes", "fast, CUDA"):
        assert re.search(rf"^{re.escape(line)}\s+(\d+\.\d|-)", out, re.M), line
    assert "WARNING" not in out  # 1-core and 2-process results are identical
    for block in ("mfcc", "chroma", "contrast", "tonnetz", "mel"):
        match = re.search(rf"^  {block}\s+(\S+)\s+(\S+)\s+(\S+)$", out, re.M)
        assert match and float(match[1]) <= float(match[3]), block  # within its tolerance
