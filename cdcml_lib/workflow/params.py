"""Parameter files: load, merge and check them before a notebook or a run uses them.

A configuration ``params/<config>.yaml`` has one section per step (``dataset``, ``train``,
``study``, ``embeddings``). A variant ``params/variants/<variant>.yaml`` holds what one model
variant (a Table 3 method or a Table 4 row) changes in the ``train`` section.

Papermill silently ignores a parameter the notebook does not declare, so every parameter set is
checked against the notebook's parameters cell first: an unknown key, or a value of another type
than the cell's literal, is a :class:`ParamError` that names the key, the file it came from and
the allowed keys.
"""
from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import yaml

from cdcml_lib.workflow.paths import repo_root

SECTIONS = ("dataset", "train", "study", "embeddings", "acp_net")


class ParamError(ValueError):
    """A parameter file or a parameter set that cannot be used as it is."""


def params_dir() -> Path:
    return repo_root() / "params"


def _read_yaml(path: Path, what: str, available: list[str]) -> dict:
    if not path.is_file():
        raise ParamError(
            f"{path}: no such {what}. Available: {', '.join(available) or 'none'}. "
            f"Fix: pick one of those, or create {path.name} next to them."
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ParamError(f"{path}: not valid YAML ({err}). Fix the file's syntax.") from err
    if not isinstance(data, dict):
        raise ParamError(f"{path}: expected a mapping of keys to values at the top level.")
    return data


def available_configs() -> list[str]:
    return sorted(p.stem for p in params_dir().glob("*.yaml"))


def available_variants() -> list[str]:
    return sorted(p.stem for p in (params_dir() / "variants").glob("*.yaml"))


def config_path(config: str) -> Path:
    return params_dir() / f"{config}.yaml"


def variant_path(variant: str) -> Path:
    return params_dir() / "variants" / f"{variant}.yaml"


def load_config(config: str) -> dict:
    """Load ``params/<config>.yaml``; every top-level key must be a known section."""
    path = config_path(config)
    data = _read_yaml(path, "configuration", available_configs())
    for key, value in data.items():
        if key not in SECTIONS:
            raise ParamError(_unknown_message(key, path, SECTIONS, "section"))
        if not isinstance(value, dict):
            raise ParamError(f"{path}: section '{key}' must be a mapping of keys to values.")
    return data


def load_variant(variant: str) -> dict:
    """Load ``params/variants/<variant>.yaml`` (model name and loss switches only)."""
    return _read_yaml(variant_path(variant), "variant", available_variants())


def section(config: str, name: str) -> dict:
    data = load_config(config)
    if name not in data:
        raise ParamError(f"{config_path(config)}: the section '{name}' is missing. "
                         f"Fix: copy it from params/default.yaml.")
    return dict(data[name])


def run_name(variant: str, seed: int) -> str:
    return f"{variant}-s{seed}"


def train_params(config: str, variant: str, seed: int, run_dir: str | None = None) -> dict:
    """The parameters of one training run: the config's ``train`` section, then the variant.

    A variant may only set keys the ``train`` section already has, so a typo in a variant file
    is caught here rather than silently ignored.
    """
    base = section(config, "train")
    over = load_variant(variant)
    for key in over:
        if key not in base:
            raise ParamError(_unknown_message(key, variant_path(variant), base, "key"))
    merged = {**base, **over, "seed": int(seed)}
    merged["run_dir"] = run_dir or f"runs/{config}/{run_name(variant, seed)}"
    return merged


def study_runs(config: str) -> list[tuple[str, int]]:
    """Every (variant, seed) the tables of ``config`` need, each once."""
    study = section(config, "study")
    variants: list[str] = []
    for v in list(study.get("comparison", [])) + list(study.get("ablation", [])):
        if v not in variants:
            variants.append(v)
    return [(v, int(s)) for v in variants for s in study.get("seeds", [0])]


# --- checking a parameter set against a notebook's parameters cell -------------------------

def notebook_defaults(notebook: str | Path) -> dict[str, Any]:
    """The literals of a notebook's cell tagged ``parameters``, by name."""
    import ast

    nb = json.loads(Path(notebook).read_text())
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            values: dict[str, Any] = {}
            for node in ast.parse(source).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    try:
                        values[node.targets[0].id] = ast.literal_eval(node.value)
                    except ValueError as err:
                        raise ParamError(f"{notebook}: parameter '{node.targets[0].id}' is not a literal; "
                                         "the parameters cell must hold literals only.") from err
            return values
    raise ParamError(f"{notebook}: no cell tagged 'parameters'. Fix: tag the notebook's parameters cell.")


def _unknown_message(key: str, source: Any, allowed, what: str = "parameter") -> str:
    allowed = sorted(allowed)
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return (f"{source}: unknown {what} '{key}'.{hint} Allowed: {', '.join(allowed)}. "
            f"Fix: rename or remove '{key}'.")


def _same_kind(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, (int, float)) and isinstance(value, (int, float)):
        return not (isinstance(default, int) and isinstance(value, float) and not value.is_integer())
    return isinstance(value, type(default))


def check_params(given: dict, defaults: dict, source: Any) -> dict:
    """Check ``given`` against a notebook's ``defaults``; return the full parameter set.

    Unknown keys and values of another kind than the notebook's literal are errors. A key the
    notebook has but ``given`` lacks keeps the notebook's default.
    """
    for key, value in given.items():
        if key not in defaults:
            raise ParamError(_unknown_message(key, source, defaults))
        if not _same_kind(defaults[key], value):
            raise ParamError(
                f"{source}: parameter '{key}' is {value!r} ({type(value).__name__}), but the notebook "
                f"expects a {type(defaults[key]).__name__} like {defaults[key]!r}. Fix the value."
            )
    return {**defaults, **given}


def parse_cli_value(text: str) -> Any:
    """A ``-p key=value`` value from the command line, read as YAML (numbers, booleans, lists)."""
    return yaml.safe_load(text)


def _main(argv: list[str] | None = None) -> int:
    """Small queries the Makefile uses: ``python -m cdcml_lib.workflow.params study-make CONFIG``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m cdcml_lib.workflow.params")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("study-runs", help="print the run names the tables of CONFIG need")
    p.add_argument("config")
    p = sub.add_parser("stamp", help="write DIR/CONFIG-<section>.json for each section whose "
                       "content changed (Make's prerequisites per section)")
    p.add_argument("config")
    p.add_argument("dir")
    args = parser.parse_args(argv)
    if args.cmd == "study-runs":
        print(" ".join(run_name(v, s) for v, s in study_runs(args.config)))
    elif args.cmd == "stamp":
        for name in write_section_stamps(args.config, Path(args.dir)):
            print(f"parameters changed: {name}")
    return 0


def write_section_stamps(config: str, folder: Path) -> list[str]:
    """Write each section of ``params/<config>.yaml`` to ``folder/<config>-<section>.json``, but
    only where the content differs from what is there: a step then depends on its own section's
    stamp, and an edit of another section (or of a comment) re-runs nothing."""
    data = load_config(config)
    folder.mkdir(parents=True, exist_ok=True)
    changed = []
    for name in SECTIONS:
        out = folder / f"{config}-{name}.json"
        text = json.dumps(data.get(name, {}), indent=1, sort_keys=True) + "\n"
        if not out.is_file() or out.read_text() != text:
            tmp = out.with_name(out.name + ".tmp")
            tmp.write_text(text)
            tmp.replace(out)
            changed.append(name)
    return changed


if __name__ == "__main__":
    raise SystemExit(_main())
