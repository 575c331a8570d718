"""benchmarks/novelty.py runs end to end on a smoke run: it prints the guard's rates on held-out
test items, noise, clicks and the media given on its command line (here: a made-up song and
photo, as the real ones come from system packages)."""
import runpy
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from cdcml_lib.runs.train import train_run
from cdcml_lib.workflow.params import section, variant_params   # configs inherit: read them merged

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "novelty.py"


def test_novelty_benchmark_prints_every_rate(smoke_data, tmp_path, capsys, monkeypatch):
    params = {**section("smoke", "train"), **variant_params("smoke", "cdcml")}
    run_dir = tmp_path / "cdcml-s0"
    params.update({"data_dir": smoke_data, "run_dir": str(run_dir), "epochs": 1, "num_threads": 1})
    train_run(params, progress=False)
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "song.wav", np.clip(rng.normal(0, 0.2, 5 * 22050), -1, 1), 22050)
    wallpaper = tmp_path / "Lake" / "contents" / "images"   # a wallpaper package's layout
    wallpaper.mkdir(parents=True)
    for size in (64, 96):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(wallpaper / f"{size}.png")
    monkeypatch.setattr(sys, "argv", [str(BENCH), "--run", str(run_dir), "--music", str(tmp_path / "song.wav"),
                                      "--photos", str(tmp_path / "Lake")])
    try:
        runpy.run_path(str(BENCH), run_name="__main__")
    except SystemExit as done:
        assert done.code == 0
    out = capsys.readouterr().out
    assert "trained on the 'embedded' corpus" in out
    for line in ("image  flagged", "music  flagged", "white noise, rms 0.2", "clicks, 10 per second",
                 "random-pixel images", "songs    flagged 1 of 1", "photos   flagged 1 of 1"):
        assert line in out, line
