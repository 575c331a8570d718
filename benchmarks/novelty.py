"""How often the novelty guard (cdcml_lib/explore/novelty.py) says "the model has not seen media
like this": on real music, real photos, noise and clicks (all should be flagged for a run trained
on the embedded benchmark) and on the run's held-out test items (none should be).

    python benchmarks/novelty.py --run runs/default/cdcml-s0 \\
        --music /usr/share/hyperrogue/music /usr/share/games/asc/music \\
        --photos /usr/share/wallpapers/{Autumn,BytheWater,ColdRipple,EveningGlow,FallenLeaf,Grey,Kite,OneStandsOut,Path,Volna,summer_1am} \\
        --drawings /usr/share/wallpapers /usr/share/backgrounds

``--music`` and ``--photos``/``--drawings`` take files or folders (searched recursively; for a
wallpaper folder holding one picture at several sizes only the first is used, so each picture
counts once). Songs are read as the match command reads them (2 s windows over the whole song,
``--max-seconds`` of each at most); a song is flagged when most of its sounding windows are.
The real media of the figures in docs/YOUR_MEDIA.md come from Debian packages: hyperrogue-music
and asc-music (music), plasma-workspace-wallpapers (photos and drawings), gnome-backgrounds and
ukui-wallpapers (drawings). Their rates say nothing about media unlike these.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from cdcml_lib.audio import SR
from cdcml_lib.data.dataset import open_dataset
from cdcml_lib.data.images import IMAGE_SUFFIXES, load_image
from cdcml_lib.explore import match as M
from cdcml_lib.explore import novelty as N
from cdcml_lib.runs.train import load_trained
from cdcml_lib.workflow.paths import resolve


def media_files(paths, suffixes) -> list[Path]:
    """Files with ``suffixes`` under ``paths``. A wallpaper package's folder
    (``NAME/contents/images/<size>.jpg``, with a screenshot and dark variants beside it) counts
    once: its first ``contents/images`` file, so that each picture is one item."""
    found: list[Path] = []
    for p in map(Path, paths):
        files = [p] if p.is_file() else sorted(
            f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)
        wallpapers: set[Path] = set()
        for f in files:
            if "contents" not in f.parts:
                found.append(f)
                continue
            name = Path(*f.parts[:f.parts.index("contents")])
            if f.parent.name == "images" and name not in wallpapers:
                wallpapers.add(name)
                found.append(f)
    return found


def rate(flags) -> str:
    flags = np.asarray(flags, dtype=bool)
    return f"{int(flags.sum())} of {len(flags)} ({flags.mean():.0%})" if len(flags) else "none given"


def song_flags(trained, files, max_seconds: float) -> tuple[list[bool], list[float]]:
    """Per song: flagged or not, and the share of its sounding windows above the threshold."""
    flags, shares = [], []
    for f in files:
        novel, peaks = [], []
        for starts, clips in M.read_song_windows(f, 2.0):
            keep = starts < max_seconds
            if not keep.any():
                break
            inputs = M.music_inputs(clips[keep], trained.params["model"],
                                    trained.params.get("feature_backend", "fast"))
            novel.append(M.novelty_of(trained, "music", inputs))
            peaks.append(np.abs(clips[keep]).max(axis=1))
        novel, peaks = np.concatenate(novel), np.concatenate(peaks)
        flags.append(M.song_unfamiliar(novel, peaks))
        shares.append(float(np.mean(novel[peaks >= M.SILENCE_PEAK] > 1)))
    return flags, shares


def image_flags(trained, files) -> np.ndarray:
    size = int(trained.params["image_size"])
    if not files:
        return np.zeros(0, dtype=bool)
    return M.novelty_of(trained, "image", np.stack([load_image(f, size) for f in files])) > 1


def synthetic_sounds(rng) -> dict[str, np.ndarray]:
    """4 s each: white noise at three levels, clicks at three rates."""
    sounds = {f"white noise, rms {a:g}": np.clip(rng.normal(0, a, 4 * SR), -1, 1) for a in (0.05, 0.2, 0.5)}
    for per_s in (2, 10, 50):
        y = np.zeros(4 * SR)
        y[::SR // per_s] = 0.9
        sounds[f"clicks, {per_s} per second"] = y
    return {k: v.astype(np.float32) for k, v in sounds.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a finished run folder")
    parser.add_argument("--music", nargs="*", default=[], help="real songs: files or folders")
    parser.add_argument("--photos", nargs="*", default=[], help="real photographs: files or folders")
    parser.add_argument("--drawings", nargs="*", default=[],
                        help="other real pictures (illustrations, renders): files or folders")
    parser.add_argument("--max-seconds", type=float, default=120.0,
                        help="seconds of each song read (default 120)")
    args = parser.parse_args(argv)
    trained = load_trained(args.run)
    M.attach_guard(trained, args.run)
    if trained.novelty_guard is None:
        print(f"error: {trained.novelty_problem}", file=sys.stderr)
        return 2
    print(M.run_notice(trained).split("; NOTE")[0])
    rng = np.random.default_rng(0)

    ds = open_dataset(resolve(trained.params["data_dir"]))
    print("\nheld-out benchmark test items (should pass):")
    for modality in ("image", "music"):
        inputs = N.split_inputs(ds, trained, modality, "test", rng)
        print(f"  {modality:6s} flagged {rate(M.novelty_of(trained, modality, inputs) > 1)}")

    print("\nnoise and clicks (should be flagged):")
    for name, y in synthetic_sounds(rng).items():
        windows = np.stack([y[i * 2 * SR:(i + 1) * 2 * SR] for i in range(2)])
        inputs = M.music_inputs(windows, trained.params["model"],
                                trained.params.get("feature_backend", "fast"))
        print(f"  {name:26s} windows flagged {rate(M.novelty_of(trained, 'music', inputs) > 1)}")
    pixels = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    size = int(trained.params["image_size"])
    print(f"  {'random-pixel images':26s} flagged "
          f"{rate(M.novelty_of(trained, 'image', M.resize_images(pixels, size)) > 1)}")

    songs = media_files(args.music, M.AUDIO_SUFFIXES)
    photos = media_files(args.photos, IMAGE_SUFFIXES)
    drawings = [f for f in media_files(args.drawings, IMAGE_SUFFIXES) if f not in set(photos)]
    print("\nreal media (should be flagged):")
    if songs:
        flags, shares = song_flags(trained, songs, args.max_seconds)
        print(f"  songs    flagged {rate(flags)}; share of each song's windows flagged: median "
              f"{np.median(shares):.0%}, lowest {min(shares):.0%}")
        for f, flag, share in zip(songs, flags, shares):
            print(f"    {'FLAGGED' if flag else 'passed '} {share:4.0%} of windows  {f}")
    for name, files in (("photos", photos), ("drawings", drawings)):
        if files:
            flags = image_flags(trained, files)
            print(f"  {name:8s} flagged {rate(flags)}")
            for f, flag in zip(files, flags):
                print(f"    {'FLAGGED' if flag else 'passed '} {f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
