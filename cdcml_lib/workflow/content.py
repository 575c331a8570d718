"""Content stamps: Make's prerequisites that change only when a file's content does.

Make judges a step stale when a prerequisite is newer than the step's output. With the library's
sources as prerequisites, touching a file, switching branches and back, or reverting an edit made
every run of the study stale (a default study is 17 minutes of training, the 60-seed one 83). So
the Makefile depends on ``.make/content/<file>.sha256`` instead of ``<file>``: a small file holding the
digest of the file's content, rewritten (and so made newer) only when that digest changes.

    python -m cdcml_lib.workflow.content update .make/content cdcml_lib/losses.py notebooks/02_train.ipynb

What counts as content, per kind of file:
- a notebook: its cells' type, source and tags (the parameters cell is found by its tag), not its
  outputs, execution counts or metadata: a notebook saved after running it in JupyterLab is the
  same notebook;
- a YAML file (a variant file): the parsed values, not comments or layout (as the stamps of the
  parameter sections, ``params.write_section_stamps``);
- anything else: its bytes.

A stamp made for the first time takes its file's modification time, so that a missing stamp judges
exactly as the file itself did; a stamp rewritten because the content changed is as new as the
moment it was rewritten, whatever the file's own time. Make asks for new digests only of the files
newer than its last look (``.make/content.mk``), so a file put back with an older time (``cp -p``,
``tar``) goes unnoticed there, as it did when Make compared the files' times themselves.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from cdcml_lib.workflow.paths import atomic_write_text


def notebook_content(raw: bytes) -> bytes:
    """What of a notebook decides its results: each cell's type, source and tags.
    Raises ValueError when ``raw`` is not a notebook."""
    nb = json.loads(raw)
    if not isinstance(nb, dict) or not isinstance(nb.get("cells", []), list):
        raise ValueError("not a notebook")
    cells = []
    for cell in nb.get("cells", []):
        source = cell.get("source", "")
        cells.append({"cell_type": cell.get("cell_type"),
                      "source": "".join(source) if isinstance(source, list) else source,
                      "tags": sorted(cell.get("metadata", {}).get("tags", []))})
    return json.dumps(cells, sort_keys=True).encode()


def yaml_content(raw: bytes) -> bytes:
    """What of a YAML file decides its results: the values it parses to.
    Raises ValueError when ``raw`` does not parse."""
    import yaml

    try:
        values = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ValueError(str(err)) from err
    return json.dumps(values, sort_keys=True, default=str).encode()


NORMALISE = {".ipynb": notebook_content, ".yaml": yaml_content, ".yml": yaml_content}


def digest(path: str | os.PathLike) -> str:
    """The SHA-256 of ``path``'s content as :data:`NORMALISE` reads it. A file its normaliser
    cannot read (a notebook mid-edit, a YAML typo) is digested as bytes: the step that reads it
    reports the problem, and a later fix changes the digest again."""
    path = Path(path)
    raw = path.read_bytes()
    normalise = NORMALISE.get(path.suffix)
    if normalise is not None:
        try:
            raw = normalise(raw)
        except ValueError:
            pass
    return hashlib.sha256(raw).hexdigest()


def stamp_path(stamp_dir: str | os.PathLike, source: str | os.PathLike) -> Path:
    """Where the stamp of ``source`` (a path relative to the repository root) lives."""
    source = Path(source)
    if source.is_absolute() or ".." in source.parts:
        raise ValueError(f"{source}: a content stamp needs a path inside the repository, relative to its root")
    return Path(stamp_dir) / f"{source.as_posix()}.sha256"   # never mistaken for a notebook or a module


def update_stamp(stamp_dir: str | os.PathLike, source: str | os.PathLike) -> str:
    """Make ``source``'s stamp current; returns ``created``, ``changed`` or ``same``.

    ``same`` leaves the stamp untouched, its time included: that is the whole point."""
    stamp = stamp_path(stamp_dir, source)
    text = f"{digest(source)}  {Path(source).as_posix()}\n"
    if stamp.is_file():
        if stamp.read_text(encoding="utf-8") == text:
            return "same"
        atomic_write_text(stamp, text)
        return "changed"
    stamp.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stamp, text)
    mtime = os.stat(source).st_mtime_ns
    os.utime(stamp, ns=(mtime, mtime))   # judged as the file itself was, until its content changes
    return "created"


def _main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m cdcml_lib.workflow.content", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("update", help="make the stamps of FILE... in DIR current (rewritten only when "
                       "a file's content changed)")
    p.add_argument("dir")
    p.add_argument("files", nargs="*")
    args = parser.parse_args(argv)
    for source in args.files:
        if not Path(source).is_file():
            print(f"error: {source}: no such file to stamp (a prerequisite of the Makefile; "
                  "restore it, or run make again to re-read the source folders)", file=sys.stderr)
            return 2
        if update_stamp(args.dir, source) == "changed":
            print(f"content changed: {source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
