"""Where things are: the repository root and paths relative to it.

Notebooks run with ``notebooks/`` as working directory (under papermill and nbval alike), so a
path from a parameter file is always resolved against the repository root, never against the
working directory.
"""
from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The repository root: ``$CDCML_ROOT`` if set, else the folder above this package."""
    env = os.environ.get("CDCML_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[1]


def resolve(path: str | os.PathLike) -> Path:
    """Resolve ``path`` against the repository root unless it is absolute."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else repo_root() / p


def reports_dir(config: str) -> Path:
    """Where a configuration's reports go: ``reports/`` for the default study (committed),
    ``reports/<config>/`` for any other configuration (ignored by git)."""
    root = repo_root() / "reports"
    return root if config == "default" else root / config
