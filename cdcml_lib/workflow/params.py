"""Parameter files: load, merge and check them before a notebook or a run uses them.

A configuration ``params/<config>.yaml`` has one section per step (``dataset``, ``train``,
``study``, ``embeddings``, ``acp_net``) and names the config it changes (``base: default``): it
lists only what differs. The merged config is the base's, with this file's keys over it, over the
defaults of :mod:`cdcml_lib.workflow.schema` (the one declaration of every parameter). A variant
``params/variants/<variant>.yaml`` holds what one model variant (a Table 3 method or a Table 4
row) changes in the ``train`` section.

Papermill silently ignores a parameter the notebook does not declare, so every parameter set is
checked against the notebook's parameters cell first: an unknown key, or a value of another type
than the cell's literal, is a :class:`ParamError` that names the key, the file it came from and
the allowed keys.
"""
from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from cdcml_lib.workflow import schema
from cdcml_lib.workflow.paths import atomic_write_text, draw_dir, repo_root, run_name, runs_dir
from cdcml_lib.workflow.schema import (  # noqa: F401 - the names this module has always offered
    DEVICE_HELP, LABEL_DISTANCES, MODELS, SCHEMA, SECTIONS, SPLIT_MODES, TRIPLETS, Rule)

#: the key of a config that names the config it changes
BASE_KEY = "base"


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


def _config_chain(config: str, root: Path | None = None) -> list[tuple[str, dict]]:
    """``[(name, raw mapping), ...]`` from the root config to ``config`` through their ``base:``
    keys (no ``base``: the schema's defaults are the root)."""
    pdir = (root or repo_root()) / "params"
    chain: list[tuple[str, dict]] = []
    name: str | None = config
    while name is not None:
        if name in (n for n, _ in chain):
            raise ParamError(f"params/{config}.yaml: its bases loop ({' -> '.join([n for n, _ in chain] + [name])}). "
                             "Fix: one of them must not name a base")
        path = pdir / f"{name}.yaml"
        data = _read_yaml(path, "configuration", sorted(p.stem for p in pdir.glob("*.yaml")))
        base = data.pop(BASE_KEY, None)
        if base is not None and not isinstance(base, str):
            raise ParamError(f"{path}: base must be the name of another config, like base: default")
        chain.append((name, data))
        name = base
    return chain[::-1]


def merge_config(chain: list[tuple[str, dict]]) -> dict:
    """The schema's defaults, then each config of ``chain`` over the one before, section by section."""
    merged: dict[str, dict] = {name: {} for name in SECTIONS}
    for _, data in chain:
        for key, values in data.items():
            merged[key] = {**merged.get(key, {}), **(values or {})}
    return {key: schema.with_defaults(key, values) if key in SECTIONS else values for key, values in merged.items()}


def load_config(config: str) -> dict:
    """Load ``params/<config>.yaml`` merged over its bases and the schema's defaults; every
    top-level key must be a known section (or ``base``)."""
    chain = _config_chain(config)
    for name, data in chain:
        for key, value in data.items():
            if key not in SECTIONS:
                raise ParamError(_unknown_message(key, config_path(name), SECTIONS, "section"))
            if not isinstance(value, dict):
                raise ParamError(f"{config_path(name)}: section '{key}' must be a mapping of keys to values.")
    return merge_config(chain)


def load_variant(variant: str) -> dict:
    """Load ``params/variants/<variant>.yaml`` (model name and loss switches only)."""
    return _read_yaml(variant_path(variant), "variant", available_variants())


def section(config: str, name: str) -> dict:
    data = load_config(config)
    if name not in data:
        raise ParamError(f"{config_path(config)}: the section '{name}' is missing. "
                         f"Fix: copy it from params/default.yaml.")
    return dict(data[name])


#: the key of a variant file that names its loss terms with their weights
TERMS_KEY = "terms"


def registered_terms() -> tuple[str, ...]:
    """The loss terms a variant may name: ``losses.LOSS_TERMS``, in the order they are summed."""
    # imported here: torch is slow to import, and Make's parameter queries never need the terms
    from cdcml_lib.losses import LOSS_TERMS
    return tuple(LOSS_TERMS)


def term_weights(terms: Any, where: Any) -> dict:
    """A variant's ``terms: {name: weight}`` as the train keys ``w_<name>``: every registered
    term the variant does not name is off (weight 0.0)."""
    known = registered_terms()
    if not isinstance(terms, dict):
        raise ParamError(f"{where}: terms must map loss term names to weights, like "
                         f"terms: {{sim_mse: 1.0, va_mse: 1.0}} (terms: {', '.join(known)})")
    for name in terms:
        if name not in known:
            raise ParamError(_unknown_message(str(name), where, known, "loss term"))
    return {f"w_{name}": terms.get(name, 0.0) for name in known}


def extra_term_keys(values: dict) -> dict:
    """The ``w_<name>`` keys of ``values`` for registered terms the schema does not declare
    (terms added after the paper's five)."""
    declared = schema.BY_SECTION["train"]
    return {k: v for k, v in values.items() if k.startswith("w_") and k not in declared
            and k[2:] in registered_terms()}


def variant_params(config: str, variant: str) -> dict:
    """The train parameters of one variant: the config's ``train`` section, then the variant file
    (its ``terms`` as ``w_<name>`` weights, an unnamed term off).

    A variant may only set keys the ``train`` section already has (and weights of registered
    terms), so a typo in a variant file is caught here rather than silently ignored.
    """
    base = section(config, "train")
    over = load_variant(variant)
    if TERMS_KEY in over:
        over = {**{k: v for k, v in over.items() if k != TERMS_KEY},
                **term_weights(over[TERMS_KEY], variant_path(variant))}
    for key in over:
        if key not in base and key not in extra_term_keys(over):
            raise ParamError(_unknown_message(key, variant_path(variant), base, "key"))
    # seed and run_dir belong to one run, not to a variant: train_params sets them per seed
    return {k: v for k, v in {**base, **over}.items() if k not in ("seed", "run_dir")}


def seed_params(variant_set: dict, seed: int, run_dir: str) -> dict:
    """One run's parameters from its variant's: the seed, the run folder and, with
    ``splits: per_seed``, the seed's own split draw as ``data_dir`` (recorded in params.json, so
    everything that opens the run reads the draw it was trained on)."""
    params = {**variant_set, "seed": int(seed), "run_dir": run_dir}
    if params.get("splits", "fixed") == "per_seed":
        params["data_dir"] = draw_dir(variant_set["data_dir"], int(seed))
    return params


def train_params(config: str, variant: str, seed: int, run_dir: str | None = None) -> dict:
    """The parameters of one training run: :func:`variant_params` with its seed and run folder."""
    return seed_params(variant_params(config, variant), seed,
                       run_dir or f"{runs_dir(config)}/{run_name(variant, seed)}")


def study_variants(config: str) -> list[str]:
    """Every variant the tables of ``config`` need (Table 3 rows, then Table 4 rows), each once."""
    study = section(config, "study")
    return list(dict.fromkeys(list(study.get("comparison", [])) + list(study.get("ablation", []))))


def study_seeds(config: str) -> list[int]:
    """The seeds every variant of ``config``'s study is trained with."""
    return [int(s) for s in section(config, "study").get("seeds", [0])]


def draw_seeds(config: str) -> list[int]:
    """The seeds whose own split draw the dataset build makes (``dataset.draw_splits``): with
    ``train.splits: per_seed``, every study seed and every kit run the ACP-Net study reads."""
    if section(config, "train").get("splits", "fixed") != "per_seed":
        return []
    acp = load_config(config).get("acp_net") or {}
    return sorted({*study_seeds(config), *(int(s) for s in acp.get("compare_seeds", []))})


def study_runs(config: str) -> list[tuple[str, int]]:
    """Every (variant, seed) the tables of ``config`` need, each once."""
    return [(v, s) for v in study_variants(config) for s in study_seeds(config)]


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


# --- checking a whole configuration before any step runs -----------------------------------
# Every key of every section has a rule in cdcml_lib/workflow/schema.py. check_config applies them
# to params/<config>.yaml, to each config it is based on and to every variant file merged into its
# train section, and reports EVERY problem at once (file, key, what is wrong, the fix), so that a
# user fixes the files in one go and no dataset is built or run started with a value that fails later.

def _raw_yaml(path: Path, rel: str, problems: list[str]) -> dict | None:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        problems.append(f"{rel}: not valid YAML ({err}). Fix the file's syntax at the line shown")
        return None
    if not isinstance(data, dict):
        problems.append(f"{rel}: expected a mapping of keys to values at the top level")
        return None
    return data


def check_config(name: str, root: str | Path | None = None) -> list[str]:
    """Every problem of ``params/<name>.yaml``, of the configs it is based on and of every variant
    file merged into its train section, as one line each (file, section.key, what is wrong, the
    fix); [] when all is well.

    Checked (:func:`cdcml_lib.workflow.schema.problems`): YAML syntax, known sections and keys,
    types (``1e-3`` is text to YAML: the fix is ``1.0e-3``), ranges (``epochs >= 1``,
    ``batch_size >= 1``, ``lr > 0``, ...), choices (models, loss options, feature backends),
    devices (cpu, cuda, cuda:N, auto), the splits summing to 1 and clip counts in order (on the
    merged config), and the study's variants existing as files.
    """
    root = Path(root) if root is not None else repo_root()
    pdir = root / "params"
    problems: list[str] = []
    chain: list[tuple[str, dict]] = []
    current: str | None = name
    while current is not None:
        rel = f"params/{current}.yaml"
        if not (pdir / f"{current}.yaml").is_file():
            have = sorted(p.stem for p in pdir.glob("*.yaml"))
            return problems + [f"{rel}: no such configuration. Fix: use one of {', '.join(have) or 'none'}"]
        if current in (n for n, _ in chain):
            return problems + [f"params/{name}.yaml: its bases loop back to {current}. Fix: one must not name a base"]
        data = _raw_yaml(pdir / f"{current}.yaml", rel, problems)
        if data is None:
            return problems
        base = data.pop(BASE_KEY, None)
        for key, values in data.items():
            if key not in SECTIONS:
                problems.append(f"{rel}, {key}: unknown section. Fix: use only {', '.join(SECTIONS)} (and base)")
            elif not isinstance(values, dict):
                problems.append(f"{rel}, {key}: must be a mapping of keys to values")
            else:
                problems += schema.problems(key, values, rel, cross=False)
        chain.append((current, {k: v for k, v in data.items() if k in SECTIONS and isinstance(v, dict)}))
        if base is not None and not isinstance(base, str):
            problems.append(f"{rel}, base: {base!r} is not a config's name. Fix: write base: default")
            break
        current = base
    merged = merge_config(chain[::-1])
    rel = f"params/{name}.yaml"
    for key in SECTIONS:   # the checks over several keys, on what the steps will get
        problems += schema.cross_problems(key, merged[key], rel)
    study = merged["study"]
    variants = sorted(p.stem for p in (pdir / "variants").glob("*.yaml"))
    for part in ("comparison", "ablation"):
        for v in study.get(part, []) if isinstance(study.get(part), list) else []:
            if isinstance(v, str) and v not in variants:
                close = difflib.get_close_matches(v, variants, n=1)
                problems.append(f"{rel}, study.{part}: unknown variant {v!r} (no params/variants/"
                                f"{v}.yaml). Fix: " + (f"write {close[0]}" if close else
                                                       f"use one of {', '.join(variants)}"))
    for v in variants:
        vrel = f"params/variants/{v}.yaml"
        over = _raw_yaml(pdir / "variants" / f"{v}.yaml", vrel, problems)
        if over is None:
            continue
        if TERMS_KEY in over:
            try:
                over = {**{k: x for k, x in over.items() if k != TERMS_KEY}, **term_weights(over[TERMS_KEY], vrel)}
            except ParamError as err:
                problems.append(str(err))
                continue
        extra = extra_term_keys(over)
        problems += [p.replace(": unknown key.", ": unknown key (a variant may only set train keys).")
                     for p in schema.problems("train", {k: x for k, x in over.items() if k not in extra}, vrel)]
        problems += [f"{vrel}, {k}: {bad}" for k, x in extra.items()
                     if (bad := schema.Float(ge=0).problem(k, x))]
    return problems


def require_valid_config(name: str, root: str | Path | None = None) -> None:
    """Raise one :class:`ParamError` listing every problem of :func:`check_config`, if any."""
    problems = check_config(name, root)
    if problems:
        raise ParamError(f"params/{name}.yaml: {len(problems)} problem(s); nothing was run. "
                         "Fix them all, then run again:\n  - " + "\n  - ".join(problems))


def _main(argv: list[str] | None = None) -> int:
    """Small queries the Makefile uses: ``python -m cdcml_lib.workflow.params check CONFIG``
    (every parameter, before any step), ``study-runs CONFIG``, ``stamp CONFIG DIR``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m cdcml_lib.workflow.params", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status (the same contract as python -m cdcml_lib.match and the audit):\n"
               "  0  done: every parameter checked, no problem (or the query answered)\n"
               "  1  (not used: the configuration is the only input, so any problem is a 2)\n"
               "  2  usage or configuration error: an unknown configuration or any problem in\n"
               "     its parameters, all listed on stderr; nothing was run")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("study-runs", help="print the run names the tables of CONFIG need")
    p.add_argument("config")
    p = sub.add_parser("study-variants", help="print the variants of CONFIG's study")
    p.add_argument("config")
    p = sub.add_parser("study-seeds", help="print the seeds of CONFIG's study")
    p.add_argument("config")
    p = sub.add_parser("check", help="check every parameter of params/CONFIG.yaml and of every "
                       "variant file; list every problem and exit 2 if there is any")
    p.add_argument("config")
    p = sub.add_parser("show", help="print params/CONFIG.yaml merged with its bases and the "
                       "schema's defaults, each key with its one line of doc")
    p.add_argument("config")
    p = sub.add_parser("stamp", help="write DIR/CONFIG-<notebook>.json and DIR/CONFIG-<section>.json "
                       "where their parameters changed (Make's prerequisites)")
    p.add_argument("config")
    p.add_argument("dir")
    args = parser.parse_args(argv)
    try:
        return _command(args)
    except ParamError as err:   # an unknown or broken configuration, whatever the command
        print(f"error: {err}", file=sys.stderr)
        return 2


def _command(args) -> int:
    if args.cmd == "check":
        try:
            require_valid_config(args.config)
        except ParamError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"params/{args.config}.yaml and params/variants/*.yaml: every parameter checked, no problem")
        return 0
    if args.cmd == "study-runs":
        print(" ".join(run_name(v, s) for v, s in study_runs(args.config)))
    elif args.cmd == "study-variants":
        print(" ".join(study_variants(args.config)))
    elif args.cmd == "show":
        print(show_config(args.config), end="")
    elif args.cmd == "study-seeds":
        print(" ".join(str(s) for s in study_seeds(args.config)))
    elif args.cmd == "stamp":
        for name in write_stamps(args.config, Path(args.dir)):
            print(f"parameters changed: {name}")
    return 0


def show_config(config: str) -> str:
    """The merged ``config`` as YAML, each key with its doc from the schema (and the file that
    set it, when not the schema's default)."""
    chain = _config_chain(config)
    merged = merge_config(chain)
    lines = [f"# params/{config}.yaml merged with its bases ({' <- '.join(n for n, _ in chain)}) "
             f"and the defaults of cdcml_lib/workflow/schema.py"]
    for name in SECTIONS:
        lines.append(f"{name}:")
        for key, value in merged[name].items():
            setters = [n for n, data in chain if key in (data.get(name) or {})]
            origin = f" [{setters[-1]}]" if setters else ""
            doc = schema.BY_SECTION[name][key].doc if key in schema.BY_SECTION[name] else ""
            lines.append(f"  {key}: {json.dumps(value)}  # {doc}{origin}")
    return "\n".join(lines) + "\n"


def write_stamps(config: str, folder: Path) -> list[str]:
    """Write Make's parameter stamps of ``config`` into ``folder``, each only where its content
    differs from what is there (an edit of a key a step does not read, or of a comment, re-runs
    nothing):

    - ``<config>-<notebook>.json`` for each notebook of the study: the config values it reads
      (``schema.STEPS``); the notebook's rule depends on it, so changing any key it reads re-runs it;
    - ``<config>-<section>.json`` for each section: what a finished run or dataset was computed
      from (a run is superseded when its dataset or train section changes, not when a seed is
      added to the study).
    """
    merged = load_config(config)
    folder.mkdir(parents=True, exist_ok=True)
    stamps = {**{step: schema.step_values(step, merged) for step in schema.STEPS},
              **{name: merged[name] for name in SECTIONS}}
    changed = []
    for name, values in stamps.items():
        out = folder / f"{config}-{name}.json"
        text = json.dumps(values, indent=1, sort_keys=True) + "\n"
        if not out.is_file() or out.read_text() != text:
            atomic_write_text(out, text)   # a unique temporary name: two makes may stamp at once
            changed.append(name)
    return changed


if __name__ == "__main__":
    raise SystemExit(_main())
