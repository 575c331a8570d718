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
import sys
from pathlib import Path
from typing import Any

import yaml

from cdcml_lib.workflow.paths import atomic_write_text, draw_dir, repo_root

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


def variant_params(config: str, variant: str) -> dict:
    """The train parameters of one variant: the config's ``train`` section, then the variant file.

    A variant may only set keys the ``train`` section already has, so a typo in a variant file
    is caught here rather than silently ignored.
    """
    base = section(config, "train")
    over = load_variant(variant)
    for key in over:
        if key not in base:
            raise ParamError(_unknown_message(key, variant_path(variant), base, "key"))
    # seed and run_dir belong to one run, not to a variant: train_params sets them per seed
    return {k: v for k, v in {**base, **over}.items() if k not in ("seed", "run_dir")}


#: ``train.splits``: ``per_seed`` - seed s trains and is tested on its own draw of the split and
#: pair lists (``<data_dir>/draws/s<s>``, made by 01_dataset for every study seed), so the spread
#: over seeds holds the split's variance; ``fixed`` - every seed uses the dataset folder's one
#: split (the published IMEMNet lists fix it).
SPLIT_MODES = ("per_seed", "fixed")


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
                       run_dir or f"runs/{config}/{run_name(variant, seed)}")


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
# Every key of every section has a rule: its type and its range or choices. check_config applies
# them to params/<config>.yaml and to every variant file merged into its train section, and
# reports EVERY problem at once (file, key, what is wrong, the fix), so that a user fixes the file
# in one go and no dataset is built or run started with a value that fails later.

MODELS = ("cdcml", "sp_net", "l3_net", "acp_net", "contrastive")     # nets.MODELS (tested equal)
LABEL_DISTANCES = ("neg_log_s", "one_minus_s")                     # losses.LABEL_DISTANCES
TRIPLETS = ("dense", "pairs")
DEVICE_HELP = "cpu, cuda, cuda:N (N a GPU index) or auto"
NOTEBOOK_OF = {"dataset": "01_dataset", "train": "02_train", "embeddings": "04_embeddings",
               "acp_net": "05_acp_net"}


def _is_device(value: str) -> bool:
    if value in ("cpu", "cuda", "auto"):
        return True
    head, _, index = value.partition(":")
    return head == "cuda" and index.isdigit()


class Rule:
    """The type of a parameter and a predicate on its value (with the words for the range)."""

    def __init__(self, kind: str, ok=None, wanted: str = "", choices: tuple = (), fix: str = ""):
        self.kind, self.ok, self.wanted, self.choices, self.fix = kind, ok, wanted, choices, fix

    def problem(self, key: str, value: Any) -> str | None:
        """None when ``value`` is fine, else 'what is wrong. Fix: ...'."""
        kind_problem = _kind_problem(self.kind, key, value)
        if kind_problem:
            return kind_problem
        if self.choices and value not in self.choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in self.choices], n=1)
            return (f"{value!r} is not one of {', '.join(map(str, self.choices))}. Fix: write "
                    f"{key}: {close[0] if close else self.choices[0]}")
        if self.ok is not None and not self.ok(value):
            fix = self.fix.format(key=key) if self.fix else f"write a value {self.wanted}"
            return f"{value!r} is out of range: {key} must be {self.wanted}. Fix: {fix}"
        return None


def _kind_problem(kind: str, key: str, value: Any) -> str | None:
    number_like = None
    if isinstance(value, str):
        try:
            number_like = float(value)
        except ValueError:
            pass
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                isinstance(value, float) and not value.is_integer()):
            example = (f"{int(number_like)}" if number_like is not None and float(number_like).is_integer()
                       else "a whole number such as 6")
            return f"{value!r} is {_type_words(value)}, not a whole number. Fix: write {key}: {example} (no quotes)"
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if number_like is not None and "e" in value.lower() and "." not in value.split("e")[0].lower():
                mantissa, _, exponent = value.lower().partition("e")
                return (f"{value!r} is read by YAML as text (a number in e-notation needs a dot "
                        f"before the e). Fix: write {key}: {mantissa}.0e{exponent}")
            if number_like is not None:
                return f"{value!r} is text, not a number. Fix: write {key}: {value} (no quotes)"
            return f"{value!r} is {_type_words(value)}, not a number. Fix: write {key}: a number such as 0.01"
    elif kind == "bool":
        if not isinstance(value, bool):
            return f"{value!r} is {_type_words(value)}, not true/false. Fix: write {key}: true or {key}: false"
    elif kind == "str":
        if not isinstance(value, str):
            return f"{value!r} is {_type_words(value)}, not text. Fix: write {key}: \"{value}\" (quoted)"
    elif kind in ("int_list", "str_list"):
        if not isinstance(value, list) or not value:
            return f"{value!r} is not a non-empty list. Fix: write {key}: [a, b, ...]"
        for item in value:
            bad = _kind_problem(kind[:-5], f"{key}[]", item)
            if bad:
                return f"item {item!r} of the list: {bad}"
    return None


def _type_words(value: Any) -> str:
    return {str: "text", bool: "a boolean", int: "a whole number", float: "a number",
            list: "a list", dict: "a mapping", type(None): "empty"}.get(type(value), type(value).__name__)


def _int(lo: int | None = None, hi: int | None = None) -> Rule:
    words = (f">= {lo}" if hi is None else f"in [{lo}, {hi}]") if lo is not None else "any whole number"
    return Rule("int", lambda v: (lo is None or v >= lo) and (hi is None or v <= hi), words)


def _float(gt: float | None = None, ge: float | None = None, le: float | None = None,
           lt: float | None = None) -> Rule:
    parts = ([f"> {gt}"] if gt is not None else []) + ([f">= {ge}"] if ge is not None else []) + \
            ([f"<= {le}"] if le is not None else []) + ([f"< {lt}"] if lt is not None else [])
    return Rule("float", lambda v: (gt is None or v > gt) and (ge is None or v >= ge)
                and (le is None or v <= le) and (lt is None or v < lt), " and ".join(parts))


def _device() -> Rule:
    return Rule("str", _is_device, f"one of {DEVICE_HELP}",
                fix="write {key}: cuda (a GPU; cuda:1 for the second), {key}: cpu or {key}: auto")


SCHEMA: dict[str, dict[str, Rule]] = {
    "dataset": {
        "corpus": Rule("str", choices=("embedded", "imemnet", "standin")), "out_dir": Rule("str"),
        "seed": _int(0), "n_songs": _int(1), "clips_per_song_min": _int(1),
        "clips_per_song_max": _int(1), "n_images": _int(1), "image_size": _int(8),
        "label_noise": _float(ge=0), "split_train": _float(gt=0, lt=1),
        "split_val": _float(gt=0, lt=1), "split_test": _float(gt=0, lt=1),
        "n_random": _int(0), "n_top": _int(0), "n_bottom": _int(0),
        "keep_fraction": _float(gt=0, le=1), "feature_backend": Rule("str", choices=("fast", "librosa")),
        "feature_device": _device(), "n_jobs": Rule("int", lambda v: v >= 1 or v == -1, ">= 1, or -1 (all cores)"),
        **{k: Rule("str") for k in ("deam_dir", "deam_static_csvs", "deam_dynamic_dir", "iaps_ratings",
                                     "iaps_dir", "naps_ratings", "naps_dir", "emotic_annotations",
                                     "emotic_dir")},
    },
    "train": {
        "data_dir": Rule("str"), "run_dir": Rule("str"), "model": Rule("str", choices=MODELS),
        "seed": _int(0), "epochs": _int(1), "batch_size": _int(1), "lr": _float(gt=0),
        "lr_step": _int(1), "lr_gamma": _float(gt=0, le=1), "momentum": _float(ge=0, lt=1),
        "weight_decay": _float(ge=0), "image_backbone": Rule("str"), "music_backbone": Rule("str"),
        "image_size": _int(8), "embed_dim": _int(1), "pretrained": Rule("bool"), "device": _device(),
        "num_workers": _int(0), "num_threads": _int(0), "nproc": _int(1),
        **{k: _float(ge=0) for k in ("w_sim_mse", "w_cfr", "w_cfm", "w_va_mse", "w_sfr")},
        "label_distance": Rule("str", choices=LABEL_DISTANCES), "triplets": Rule("str", choices=TRIPLETS),
        "distance_power": _float(gt=0), "epsilon": _float(gt=0), "margin": _float(ge=0),
        "nce_temperature": _float(gt=0), "nce_target_temperature": _float(gt=0),
        "splits": Rule("str", choices=SPLIT_MODES), "schedule": Rule("str", choices=("step", "plateau")),
        "patience": _int(1), "min_delta": _float(ge=0, lt=1), "lr_drops": _int(0),
        "final_patience": _int(1), "va_probe": Rule("bool"),
    },
    "study": {"seeds": Rule("int_list", lambda v: all(s >= 0 for s in v), "seeds >= 0"),
              "comparison": Rule("str_list"), "ablation": Rule("str_list")},
    "embeddings": {"run": Rule("str"), "compare_run": Rule("str"), "n_neighbors": _int(2),
                   "seed": _int(0), "top_k": _int(1)},
}


def _notebook_defaults_or_none(section_name: str, root: Path) -> dict | None:
    nb = root / "notebooks" / f"{NOTEBOOK_OF.get(section_name, '-')}.ipynb"
    return notebook_defaults(nb) if nb.is_file() else None


def _check_values(values: dict, section_name: str, where: str, defaults: dict | None) -> list[str]:
    """Problems of one mapping of a section (or a variant file), as 'where, key: ...' lines."""
    rules = SCHEMA.get(section_name, {})
    problems = []
    for key, value in values.items():
        rule = rules.get(key)
        if rule is None and defaults is not None and key in defaults:
            if not _same_kind(defaults[key], value):
                problems.append(f"{where}, {section_name}.{key}: {value!r} is {_type_words(value)}, "
                                f"but the notebook expects {_type_words(defaults[key])} like "
                                f"{defaults[key]!r}. Fix: write {key}: {defaults[key]!r}-like value")
            continue
        if rule is None:
            allowed = sorted(set(rules) | set(defaults or {}))
            close = difflib.get_close_matches(key, allowed, n=1)
            problems.append(f"{where}, {section_name}.{key}: unknown key." + (
                f" Fix: did you mean '{close[0]}'? Rename it." if close else
                f" Fix: remove it (allowed: {', '.join(allowed)})"))
            continue
        bad = rule.problem(key, value)
        if bad:
            problems.append(f"{where}, {section_name}.{key}: {bad}")
    return problems


def _numbers(values: dict, *keys: str) -> bool:
    return all(isinstance(values.get(k), (int, float)) and not isinstance(values.get(k), bool)
               for k in keys)


def check_config(name: str, root: str | Path | None = None) -> list[str]:
    """Every problem of ``params/<name>.yaml`` and of every variant file merged into its train
    section, as one line each (file, section.key, what is wrong, the fix); [] when all is well.

    Checked: YAML syntax, known sections and keys, types (``1e-3`` is text to YAML: the fix is
    ``1.0e-3``), ranges (``epochs >= 1``, ``batch_size >= 1``, ``lr > 0``, ...), choices (models,
    loss options, feature backends), devices (cpu, cuda, cuda:N, auto), the splits summing to 1,
    clip counts in order, and the study's variants existing as files.
    """
    root = Path(root) if root is not None else repo_root()
    pdir = root / "params"
    path = pdir / f"{name}.yaml"
    rel = f"params/{name}.yaml"
    if not path.is_file():
        have = sorted(p.stem for p in pdir.glob("*.yaml"))
        return [f"{rel}: no such configuration. Fix: use one of {', '.join(have) or 'none'}"]
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        return [f"{rel}: not valid YAML ({err}). Fix the file's syntax at the line shown"]
    if not isinstance(data, dict):
        return [f"{rel}: expected a mapping of sections (dataset, train, study, embeddings)"]
    problems: list[str] = []
    for key, values in data.items():
        if key not in SECTIONS:
            problems.append(f"{rel}, {key}: unknown section. Fix: use only {', '.join(SECTIONS)}")
        elif not isinstance(values, dict):
            problems.append(f"{rel}, {key}: must be a mapping of keys to values")
        else:
            problems += _check_values(values, key, rel, _notebook_defaults_or_none(key, root))
    for key in SECTIONS:
        if key not in data:
            problems.append(f"{rel}, {key}: the section is missing. Fix: copy it from params/default.yaml")
    ds = data.get("dataset") if isinstance(data.get("dataset"), dict) else {}
    if _numbers(ds, "split_train", "split_val", "split_test"):
        total = ds["split_train"] + ds["split_val"] + ds["split_test"]
        if abs(total - 1.0) > 1e-6:
            problems.append(f"{rel}, dataset.split_*: split_train + split_val + split_test = "
                            f"{total:g}. Fix: make them sum to 1")
    if _numbers(ds, "clips_per_song_min", "clips_per_song_max") and \
            ds["clips_per_song_max"] < ds["clips_per_song_min"]:
        problems.append(f"{rel}, dataset.clips_per_song_max: {ds['clips_per_song_max']} is below "
                        f"clips_per_song_min ({ds['clips_per_song_min']}). Fix: raise it")
    train = data.get("train") if isinstance(data.get("train"), dict) else {}
    study = data.get("study") if isinstance(data.get("study"), dict) else {}
    variants = sorted(p.stem for p in (pdir / "variants").glob("*.yaml"))
    for part in ("comparison", "ablation"):
        for v in study.get(part, []) if isinstance(study.get(part), list) else []:
            if isinstance(v, str) and v not in variants:
                close = difflib.get_close_matches(v, variants, n=1)
                problems.append(f"{rel}, study.{part}: unknown variant {v!r} (no params/variants/"
                                f"{v}.yaml). Fix: " + (f"write {close[0]}" if close else
                                                       f"use one of {', '.join(variants)}"))
    train_defaults = _notebook_defaults_or_none("train", root)
    for v in variants:
        vrel = f"params/variants/{v}.yaml"
        try:
            over = yaml.safe_load((pdir / "variants" / f"{v}.yaml").read_text()) or {}
        except yaml.YAMLError as err:
            problems.append(f"{vrel}: not valid YAML ({err}). Fix the file's syntax")
            continue
        if not isinstance(over, dict):
            problems.append(f"{vrel}: expected a mapping of train keys to values")
            continue
        for key in over:
            if train and key not in train:
                problems.append(f"{vrel}, train.{key}: a variant may only override keys of the "
                                f"train section of {rel}. Fix: add {key} there, or remove it here")
        problems += _check_values({k: x for k, x in over.items() if not train or k in train},
                                  "train", vrel, train_defaults)
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
    p = sub.add_parser("stamp", help="write DIR/CONFIG-<section>.json for each section whose "
                       "content changed (Make's prerequisites per section)")
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
    elif args.cmd == "study-seeds":
        print(" ".join(str(s) for s in study_seeds(args.config)))
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
            atomic_write_text(out, text)   # a unique temporary name: two makes may stamp at once
            changed.append(name)
    return changed


if __name__ == "__main__":
    raise SystemExit(_main())
