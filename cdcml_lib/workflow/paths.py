"""Where things are: the repository root and paths relative to it.

Notebooks run with ``notebooks/`` as working directory (under papermill and nbval alike), so a
path from a parameter file is always resolved against the repository root, never against the
working directory.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def repo_root() -> Path:
    """The repository root: ``$CDCML_ROOT`` if set, else the folder above this package."""
    env = os.environ.get("CDCML_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[2]


def resolve(path: str | os.PathLike) -> Path:
    """Resolve ``path`` against the repository root unless it is absolute."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else repo_root() / p


RUNS_FOLDER = "runs"


def runs_dir(config: str) -> str:
    """The runs of configuration ``config``, relative to the repository root: ``runs/<config>``."""
    return f"{RUNS_FOLDER}/{config}"


def run_name(variant: str, seed: int | str) -> str:
    """A run's folder name: ``<variant>-s<seed>`` (the Makefile's variant_runs spells the same)."""
    return f"{variant}-s{seed}"


def parse_run_name(name: str) -> tuple[str, int]:
    """``(variant, seed)`` of a run name made by :func:`run_name`."""
    variant, sep, seed = str(name).rpartition("-s")
    if not sep or not variant or not seed.isdigit():
        raise ValueError(f"{name!r} is not a run name <variant>-s<seed>")
    return variant, int(seed)


def reports_dir(config: str) -> Path:
    """Where a configuration's reports go: ``reports/`` for the default study (committed),
    ``reports/<config>/`` for any other configuration (ignored by git)."""
    root = repo_root() / "reports"
    return root if config == "default" else root / config


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """A fresh temporary path beside ``path`` to write to, renamed to ``path`` when the block ends
    without error and removed otherwise: a file with the final name is always complete, a failed
    write leaves nothing behind, and concurrent writers never share a temporary name. The file
    gets the usual mode (mkstemp alone would make it readable by its owner only)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


DRAWS_FOLDER = "draws"


def draw_dir(data_dir: str | os.PathLike, seed: int | str) -> str:
    """The folder of seed ``seed``'s own draw of the split and pair lists inside dataset folder
    ``data_dir`` (docs/ARCHITECTURE.md, "The dataset folder")."""
    return f"{str(data_dir).rstrip('/')}/{DRAWS_FOLDER}/s{seed}"
