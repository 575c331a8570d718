"""The interactive map opens from a file in headless Chromium: no script error, every point drawn,
and the colouring widget's CustomJS switches the colour mapper.

Needs a Chromium binary (Debian: `apt-get install -y chromium`); skipped with a message without one.
Set REPORTS=<dir> to also keep the screenshot there.
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cdcml_lib.explore.embedding import write_map_html

BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no chromium on PATH: install it (Debian: apt-get install -y chromium) "
                            "to run the browser test of the interactive map")
N_IMAGES, N_MUSIC = 23, 14


def _chromium(url: str, profile: Path, *extra: str) -> str:
    """Run headless Chromium on ``url`` (no network, throw-away profile); return stdout."""
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run",
           f"--user-data-dir={profile}", "--virtual-time-budget=10000", *extra, url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _status(dom: str) -> dict:
    match = re.search(r'<div id="map-status"([^>]*)>([^<]*)', dom)
    assert match, "the page has no map-status element: its status script did not run"
    attrs = dict(re.findall(r'data-(\w+)="([^"]*)"', match.group(1)))
    attrs["messages"] = match.group(2)
    return attrs


@pytest.fixture(scope="module")
def map_page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("map")
    rng = np.random.default_rng(0)
    n = N_IMAGES + N_MUSIC
    ids = [f"img{i}" for i in range(N_IMAGES)] + [f"2009-{i}" for i in range(N_MUSIC)]
    frame = pd.DataFrame({"id": ids, "modality": ["image"] * N_IMAGES + ["music"] * N_MUSIC,
                          "valence": rng.random(n), "arousal": rng.random(n),
                          "umap_x": rng.normal(size=n), "umap_y": rng.normal(size=n)})
    thumbs = {i: rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for i in ids[:N_IMAGES]}
    page = write_map_html(frame, tmp / "map.html", thumbnails=thumbs)
    frame.to_csv(page.with_suffix(".csv"), index=False)
    return tmp, page


def test_map_is_standalone(map_page):
    _, page = map_page
    html = page.read_text()
    assert not re.search(r'<script[^>]+src="https?://', html), "the page loads a script from the network"
    assert not re.search(r'<link[^>]+href="https?://', html), "the page loads a stylesheet from the network"
    # one thumbnail per image (Bokeh's own code holds a few data URIs of its own)
    bare = write_map_html(pd.read_csv(page.with_suffix(".csv")), page.with_name("bare.html")).read_text()
    assert html.count("data:image/png;base64,") - bare.count("data:image/png;base64,") == N_IMAGES


def test_map_renders_every_point_without_errors(map_page):
    tmp, page = map_page
    status = _status(_chromium(page.as_uri(), tmp / "profile-a", "--dump-dom"))
    assert status["ready"] == "1", "Bokeh never finished building the plot"
    assert status["errors"] == "0", status["messages"]
    assert int(status["points"]) == N_IMAGES + N_MUSIC
    assert status["colour"] == "valence"

    shot = tmp / "map.png"
    _chromium(page.as_uri(), tmp / "profile-b", "--window-size=900,800", f"--screenshot={shot}")
    assert shot.is_file() and shot.stat().st_size > 5000
    if os.environ.get("REPORTS"):
        keep = Path(os.environ["REPORTS"]) / "map_browser_test.png"
        keep.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, keep)


def test_colour_widget_switches_the_mapper(map_page):
    tmp, page = map_page
    status = _status(_chromium(page.as_uri() + "#colour=modality", tmp / "profile-c", "--dump-dom"))
    assert status["errors"] == "0", status["messages"]
    assert status["colour"] == "modality"


def test_status_script_does_record_errors(map_page):
    # the check above can fail: a page with a broken script reports its error
    tmp, page = map_page
    broken = tmp / "broken.html"
    head, tail = page.read_text().rsplit("</body>", 1)  # the last one: Bokeh's JS holds the string too
    broken.write_text(head + "<script>undefinedFunction();</script></body>" + tail)
    status = _status(_chromium(broken.as_uri(), tmp / "profile-d", "--dump-dom"))
    assert status["errors"] == "1"
    assert "undefinedFunction" in status["messages"]
