"""Every parameter of the kit, declared once: section, name, type, range or choices, default, doc.

A configuration ``params/<config>.yaml`` sets values of these parameters, section by section
(``dataset``, ``train``, ``study``, ``embeddings``, ``acp_net``); a key it does not set takes the
default declared here, which is the default study's value (``params/default.yaml`` adds nothing).
Everything else about parameters is derived from :data:`PARAMS`:

- :func:`problems` - the one check of a section's values (every problem at once, with its fix),
  used by ``params.check_config``, ``dataset.check_dataset_params`` and
  ``train.check_train_params``; the checks that tie two keys together (the split fractions, the
  clip counts, the pair source and the corpus) are :data:`CROSS_CHECKS`;
- :func:`keys`, :func:`required_keys`, :func:`defaults` - the key lists of a section;
- :data:`STEPS` - which sections and keys each notebook reads, from which the Makefile's
  per-step parameter stamps are written (``params.write_step_stamps``) and against which
  ``tests/test_schema.py`` checks each notebook's parameters cell.

The design follows structured configs (a typed declaration that every config is merged over and
checked against) without a dependency: the kit's configs are plain YAML, and the checks' words
(what is wrong, the fix) are ours.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable

SECTIONS = ("dataset", "train", "study", "embeddings", "acp_net")
MODELS = ("cdcml", "sp_net", "l3_net", "acp_net", "contrastive")       # nets.MODELS (tested equal)
LABEL_DISTANCES = ("neg_log_s", "one_minus_s")                       # losses.LABEL_DISTANCES
TRIPLETS = ("dense", "pairs")
#: ``train.splits``: ``per_seed`` - seed s trains and is tested on its own draw of the split and
#: pair lists (``<data_dir>/draws/s<s>``), so the spread over seeds holds the split's variance;
#: ``fixed`` - every seed uses the dataset folder's one split (the published IMEMNet lists fix it).
SPLIT_MODES = ("per_seed", "fixed")
SCHEDULES = ("step", "plateau")                                      # runs.schedule.SCHEDULES
DEVICE_HELP = "cpu, cuda, cuda:N (N a GPU index) or auto"


# --- rules: the type of a value and its range --------------------------------------------------

class Rule:
    """The type of a parameter and a predicate on its value (with the words for the range)."""

    def __init__(self, kind: str, ok: Callable | None = None, wanted: str = "", choices: tuple = (),
                 fix: str = ""):
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
            return f"{value!r} is {type_words(value)}, not a whole number. Fix: write {key}: {example} (no quotes)"
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if number_like is not None and "e" in value.lower() and "." not in value.split("e")[0].lower():
                mantissa, _, exponent = value.lower().partition("e")
                return (f"{value!r} is read by YAML as text (a number in e-notation needs a dot "
                        f"before the e). Fix: write {key}: {mantissa}.0e{exponent}")
            if number_like is not None:
                return f"{value!r} is text, not a number. Fix: write {key}: {value} (no quotes)"
            return f"{value!r} is {type_words(value)}, not a number. Fix: write {key}: a number such as 0.01"
    elif kind == "bool":
        if not isinstance(value, bool):
            return f"{value!r} is {type_words(value)}, not true/false. Fix: write {key}: true or {key}: false"
    elif kind == "str":
        if not isinstance(value, str):
            return f"{value!r} is {type_words(value)}, not text. Fix: write {key}: \"{value}\" (quoted)"
    elif kind in ("int_list", "str_list"):
        if not isinstance(value, list) or not value:
            return f"{value!r} is not a non-empty list. Fix: write {key}: [a, b, ...]"
        for item in value:
            bad = _kind_problem(kind[:-5], f"{key}[]", item)
            if bad:
                return f"item {item!r} of the list: {bad}"
    return None


def type_words(value: Any) -> str:
    return {str: "text", bool: "a boolean", int: "a whole number", float: "a number",
            list: "a list", dict: "a mapping", type(None): "empty"}.get(type(value), type(value).__name__)


def is_device(value: str) -> bool:
    if value in ("cpu", "cuda", "auto"):
        return True
    head, _, index = value.partition(":")
    return head == "cuda" and index.isdigit()


def Int(lo: int | None = None, hi: int | None = None) -> Rule:
    words = (f">= {lo}" if hi is None else f"in [{lo}, {hi}]") if lo is not None else "any whole number"
    return Rule("int", lambda v: (lo is None or v >= lo) and (hi is None or v <= hi), words)


def Float(gt: float | None = None, ge: float | None = None, le: float | None = None,
          lt: float | None = None) -> Rule:
    parts = ([f"> {gt}"] if gt is not None else []) + ([f">= {ge}"] if ge is not None else []) + \
            ([f"<= {le}"] if le is not None else []) + ([f"< {lt}"] if lt is not None else [])
    return Rule("float", lambda v: (gt is None or v > gt) and (ge is None or v >= ge)
                and (le is None or v <= le) and (lt is None or v < lt), " and ".join(parts))


def Str(*choices: str) -> Rule:
    return Rule("str", choices=tuple(choices))


def Bool() -> Rule:
    return Rule("bool")


def Device() -> Rule:
    return Rule("str", is_device, f"one of {DEVICE_HELP}",
                fix="write {key}: cuda (a GPU; cuda:1 for the second), {key}: cpu or {key}: auto")


def IntList(ok: Callable | None = None, wanted: str = "") -> Rule:
    return Rule("int_list", ok, wanted)


def StrList(*choices: str) -> Rule:
    ok = (lambda v: all(x in choices for x in v)) if choices else None
    return Rule("str_list", ok, f"a list of {', '.join(choices)}" if choices else "")


# --- the declaration ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """One parameter: where it lives, what it may be, its default (the default study's) and why."""

    section: str
    name: str
    rule: Rule
    default: Any
    doc: str
    required: bool = True      # False: a config or a direct library call may leave it out
    #: for a key that only means something under another key's value (the plateau rule's keys
    #: under schedule: plateau): the default is filled in only where this holds of the section
    when: Callable[[dict], bool] | None = None

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"


def _corpus_path(name: str, doc: str) -> Param:
    return Param("dataset", name, Rule("str"), "", f"corpus: imemnet only: {doc}", required=False)


def _sgd_and_backbones(section: str) -> tuple[Param, ...]:
    """The keys the kit's CDCML runs (train) and ACP-Net's correspondence runs (acp_net) share, with
    the same defaults: SGD's decay, momentum and weight decay, and the two branches' backbones."""
    return (
        Param(section, "lr_gamma", Float(gt=0, le=1), 0.1, "the learning rate's factor at each drop"),
        Param(section, "momentum", Float(ge=0, lt=1), 0.9, "SGD momentum"),
        Param(section, "weight_decay", Float(ge=0), 0.0005, "SGD weight decay"),
        Param(section, "image_backbone", Rule("str"), "tiny_cnn", "the image branch's backbone (nets.py)"),
        Param(section, "music_backbone", Rule("str"), "tiny_cnn8",
              "half the width of tiny_cnn: the music branch is most of a step's cost"),
        Param(section, "image_size", Int(8), 48, "pixels per side fed to the image branch"),
    )


def _plateau(section: dict) -> bool:
    return section.get("schedule") == "plateau"


PARAMS: tuple[Param, ...] = (
    # dataset: corpora -> normalised VA -> splits -> pairs (Eq. 1) -> features (notebooks/01_dataset)
    # any corpus registered with data.dataset.register_corpus (checked there, before any build)
    Param("dataset", "corpus", Rule("str"), "embedded",
          "embedded (generated here) | imemnet (DEAM + IAPS/NAPS/EMOTIC on disk) | standin (their layouts, stand-in media)"),
    Param("dataset", "out_dir", Rule("str"), "data/default", "the dataset folder written"),
    Param("dataset", "seed", Int(0), 0, "the corpus generator's and the folder's own split's seed"),
    Param("dataset", "n_songs", Int(1), 64, "songs of the embedded corpus"),
    Param("dataset", "clips_per_song_min", Int(1), 12, "fewest 2 s clips per song"),
    Param("dataset", "clips_per_song_max", Int(1), 24, "most 2 s clips per song"),
    Param("dataset", "n_images", Int(1), 1200, "images of the embedded corpus"),
    Param("dataset", "image_size", Int(8), 48, "pixels per side of the cached images (the paper: 224)"),
    Param("dataset", "label_noise", Float(ge=0), 0.06, "std of the noise added to the cue-implied VA labels"),
    Param("dataset", "split_train", Float(gt=0, lt=1), 0.70,
          "the paper's 80/5/15 leaves 3 songs to choose the epoch on: 15% (~10 songs) makes that "
          "choice less noisy (see docs/METHOD.md on the study's design)"),
    Param("dataset", "split_val", Float(gt=0, lt=1), 0.15, "fraction of songs and images for validation"),
    Param("dataset", "split_test", Float(gt=0, lt=1), 0.15, "fraction of songs and images for test"),
    Param("dataset", "n_random", Int(0), 30,
          'random candidates per clip: docs/METHOD.md, section "Candidate pairs and sampling"'),
    Param("dataset", "n_top", Int(0), 10, "best-scoring candidates per clip"),
    Param("dataset", "n_bottom", Int(0), 10, "worst-scoring candidates per clip"),
    Param("dataset", "keep_fraction", Float(gt=0, le=1), 0.10, "fraction of the candidates kept as pairs"),
    Param("dataset", "feature_backend", Str("fast", "librosa"), "fast", "the music features' implementation"),
    Param("dataset", "feature_device", Device(), "auto", "auto (CUDA when torch sees a GPU) | cpu | cuda"),
    Param("dataset", "n_jobs", Rule("int", lambda v: v >= 1 or v == -1, ">= 1, or -1 (all cores)"), 2,
          "processes computing features"),
    _corpus_path("deam_dir", "the DEAM folder"),
    _corpus_path("deam_static_csvs", "DEAM's static annotation CSVs"),
    _corpus_path("deam_dynamic_dir", "DEAM's dynamic annotations"),
    _corpus_path("iaps_ratings", "IAPS's ratings file"),
    _corpus_path("iaps_dir", "the IAPS pictures"),
    _corpus_path("naps_ratings", "NAPS's ratings file"),
    _corpus_path("naps_dir", "the NAPS pictures"),
    _corpus_path("emotic_annotations", "EMOTIC's annotations"),
    _corpus_path("emotic_dir", "the EMOTIC images"),
    Param("dataset", "pairs_source", Str("recipe", "published"), "recipe",
          "recipe (our IMEMNet recipe) | published (the train/val/test_pairs lists fix splits and pairs)",
          required=False),
    Param("dataset", "train_pairs", Rule("str"), "", "pairs_source: published: the train list", required=False),
    Param("dataset", "val_pairs", Rule("str"), "", "pairs_source: published: the val list", required=False),
    Param("dataset", "test_pairs", Rule("str"), "", "pairs_source: published: the test list", required=False),
    Param("dataset", "allow_split_overlap", Bool(), False,
          "pairs_source: published: accept an item listed in two splits", required=False),

    # train: one model variant, one seed -> one run folder (notebooks/02_train)
    Param("train", "data_dir", Rule("str"), "data/default", "the dataset folder read (dataset.out_dir)"),
    Param("train", "run_dir", Rule("str"), "runs/default/cdcml-s0", "the run folder (set per run)"),
    Param("train", "model", Str(*MODELS), "cdcml", "the network: CDCML or a Table 3 baseline"),
    Param("train", "seed", Int(0), 0, "the run's seed (set per run)"),
    Param("train", "epochs", Int(1), 14, "the plateau rule's cap (runs that reach it are flagged in REPORT.md)"),
    Param("train", "batch_size", Int(1), 128, "pairs per step"),
    Param("train", "lr", Float(gt=0), 0.02,
          "the paper's 1e-3 (params/paper.yaml) learns too slowly for a CPU's budget of epochs"),
    Param("train", "lr_step", Int(1), 4, "schedule: step only (the paper's x0.1 every 10 of ~30 epochs, scaled)"),
    *_sgd_and_backbones("train"),
    Param("train", "embed_dim", Int(1), 128,
          "the paper's 512 (params/paper.yaml) over a 32/64-d CNN feature only costs time"),
    Param("train", "pretrained", Bool(), False, "ImageNet weights for the image backbone"),
    Param("train", "device", Device(), "auto", DEVICE_HELP),
    Param("train", "num_workers", Int(0), 0, "data loader processes"),
    Param("train", "num_threads", Int(0), 1, "threads of torch and BLAS in each run (the determinism policy)",
          required=False),
    Param("train", "w_sim_mse", Float(ge=0), 1.0, "weight of L_sim-mse, Eq. 6", required=False),
    Param("train", "w_cfr", Float(ge=0), 1.0, "weight of L_CFR, Eq. 2", required=False),
    Param("train", "w_cfm", Float(ge=0), 1.0, "weight of L_CFM, Eq. 3", required=False),
    Param("train", "w_va_mse", Float(ge=0), 1.0, "weight of L_VA, Eq. 7", required=False),
    Param("train", "w_sfr", Float(ge=0), 1.0, "weight of L_SFR, Eqs. 4, 5", required=False),
    Param("train", "label_distance", Str(*LABEL_DISTANCES), "neg_log_s",
          "neg_log_s | one_minus_s (delta of Eq. 2 from the score s)", required=False),
    Param("train", "triplets", Str(*TRIPLETS), "dense", "dense (Eq. 1 from VA) | pairs (listed pairs only)",
          required=False),
    Param("train", "distance_power", Float(gt=0), 1, "D = ||f_a - f_b||^power; the paper writes 2", required=False),
    Param("train", "epsilon", Float(gt=0), 0.0001, "inside the logs of the log-ratio terms", required=False),
    Param("train", "margin", Float(ge=0), 1.0, "m of Eq. 3 (not given by the paper)", required=False),
    Param("train", "nce_temperature", Float(gt=0), 0.07, "contrastive baseline: logits = cosine / this",
          required=False),
    Param("train", "nce_target_temperature", Float(gt=0), 0.1,
          "contrastive baseline: soft targets = softmax(Eq.-1 s / this)", required=False),
    # (after the loss keys: the order runs.train.OPTIONAL_KEYS had, which orders params.json)
    Param("train", "nproc", Int(1), 1, "processes: > 1 trains with DDP under torchrun (notebooks/02_train launches it)",
          required=False),
    Param("train", "splits", Str(*SPLIT_MODES), "per_seed",
          "per_seed (seed s trains on its own split draw, data_dir/draws/s<s>) | fixed", required=False),
    Param("train", "schedule", Str(*SCHEDULES), "plateau",
          "plateau (train until validation flattens: cdcml_lib.runs.schedule) | step (the paper's)",
          required=False),
    Param("train", "patience", Int(1), 2, "plateau: epochs without a min_delta improvement of val sim_mse",
          required=False, when=_plateau),
    Param("train", "min_delta", Float(ge=0, lt=1), 0.01,
          "plateau: the improvement that counts (relative: 1% of the best so far)", required=False, when=_plateau),
    Param("train", "lr_drops", Int(0), 1, "plateau: lr x lr_gamma at each plateau; the next one ends the run",
          required=False, when=_plateau),
    Param("train", "final_patience", Int(1), 1,
          "plateau: epochs without improvement at the lowest lr before the run ends", required=False, when=_plateau),
    Param("train", "va_probe", Bool(), False,
          "true: the VA predictor reads detached embeddings (Table 4 rows without L_VA)", required=False),

    # study: the variants and seeds the tables need (notebooks/03_tables)
    Param("study", "seeds", IntList(lambda v: all(s >= 0 for s in v), "seeds >= 0"), list(range(10)),
          "the seeds every variant is trained with"),
    Param("study", "comparison", StrList(), ["sp_net", "l3_net", "acp_net", "cdcml", "contrastive"],
          "Table 3's rows (params/variants/<name>.yaml)"),
    Param("study", "ablation", StrList(), ["sim", "sim_cfr", "sim_cfr_cfm", "sim_va", "cdcml"],
          "Table 4's rows (params/variants/<name>.yaml)"),

    # embeddings: the shared space shown (notebooks/04_embeddings)
    Param("embeddings", "run", Rule("str"), "cdcml-s0", "the CDCML run whose space is shown"),
    Param("embeddings", "compare_run", Rule("str"), "sim-s0", "the Sim-only ablation run, shown side by side"),
    Param("embeddings", "n_neighbors", Int(2), 15, "UMAP's neighbours"),
    Param("embeddings", "seed", Int(0), 0, "UMAP's seed"),
    Param("embeddings", "top_k", Int(1), 6, "images shown per clip in the gallery"),

    # acp_net: ACP-Net's own study (notebooks/05_acp_net; docs/METHOD.md, section "13. The kit's ACP-Net study")
    Param("acp_net", "seeds", IntList(lambda v: all(s >= 0 for s in v), "seeds >= 0"), list(range(10)),
          "the seeds of each correspondence model"),
    Param("acp_net", "models", StrList("acp_net", "l3_net", "spectrogram_acp"),
          ["acp_net", "l3_net", "spectrogram_acp"], "the correspondence models trained"),
    Param("acp_net", "epochs", Int(1), 4, "epochs of each correspondence run"),
    Param("acp_net", "batch_size", Int(1), 64, "pairs per step"),
    Param("acp_net", "lr", Float(gt=0), 0.05, "SGD learning rate"),
    Param("acp_net", "lr_step", Int(1), 3, "epochs between learning-rate drops"),
    *_sgd_and_backbones("acp_net"),
    Param("acp_net", "embed_dim", Int(1), 64, "each branch's embedding size"),
    Param("acp_net", "acp_head", IntList(lambda v: all(w >= 1 for w in v), "widths >= 1"), [128, 64, 16],
          "ACP-Net's fusion FC widths (paper: [2048, 512, 32]), then one logit"),
    Param("acp_net", "l3_head", IntList(lambda v: all(w >= 1 for w in v), "widths >= 1"), [64],
          "L3-Net's fusion FC widths (original: [128]), then one logit"),
    Param("acp_net", "pretrained", Bool(), False, "ImageNet weights for the image backbone"),
    Param("acp_net", "n_jobs", Int(1), 2, "runs trained at once (processes)"),
    Param("acp_net", "num_threads", Int(0), 1, "torch threads per process (0 = torch default)"),
    Param("acp_net", "probe_C", Float(gt=0), 1.0, "the probe's inverse L2 strength (LogisticRegression C)"),
    Param("acp_net", "probe_max_iter", Int(1), 300, "the probe's iterations"),
    Param("acp_net", "imac_rule", Str("valence_arousal", "valence"), "valence_arousal",
          "IMAC's tags read in VA (see docs/METHOD.md on IMAC-style classes and pairs) | valence"),
    Param("acp_net", "imac_valence_low", Float(ge=0, le=1), 0.3333, "negative below, on VA normalised to [0, 1]"),
    Param("acp_net", "imac_valence_high", Float(ge=0, le=1), 0.6667, "positive above; neutral in between"),
    Param("acp_net", "imac_arousal_split", Float(ge=0, le=1), 0.5,
          "valence_arousal rule only: positive (energetic) vs neutral (calm)"),
    Param("acp_net", "imac_music_label", Str("song", "clip"), "song", "song (IMAC labels whole songs) | clip"),
    Param("acp_net", "imac_pairs_per_clip", Int(1), 2, "half true (same class), half false, per clip"),
    Param("acp_net", "imac_seed", Int(0), 0, "the seed of the IMAC-style pairs"),
    Param("acp_net", "compare_variants", StrList(), ["cdcml", "contrastive"], "the kit's runs read on ACP-Net's task"),
    Param("acp_net", "compare_seeds", IntList(lambda v: all(s >= 0 for s in v), "seeds >= 0"), [0, 1, 2],
          "their seeds (with train.splits: per_seed, 01_dataset draws these too)"),
)

#: section -> name -> Param
BY_SECTION: dict[str, dict[str, Param]] = {s: {p.name: p for p in PARAMS if p.section == s} for s in SECTIONS}
#: section -> name -> Rule (the form ``params.check_config`` has always read)
SCHEMA: dict[str, dict[str, Rule]] = {s: {n: p.rule for n, p in ps.items()} for s, ps in BY_SECTION.items()}


def keys(section: str) -> tuple[str, ...]:
    """Every key of ``section``, in declaration order."""
    return tuple(BY_SECTION[section])


def required_keys(section: str) -> tuple[str, ...]:
    return tuple(n for n, p in BY_SECTION[section].items() if p.required)


def optional_keys(section: str) -> tuple[str, ...]:
    return tuple(n for n, p in BY_SECTION[section].items() if not p.required)


def defaults(section: str) -> dict[str, Any]:
    """The default of every key of ``section`` (fresh copies: lists may be edited)."""
    return {n: (list(p.default) if isinstance(p.default, list) else p.default)
            for n, p in BY_SECTION[section].items()}


def with_defaults(section: str, values: dict) -> dict:
    """``values`` over the defaults of ``section``: every key, except a conditional key
    (:attr:`Param.when`) that ``values`` does not set and whose condition fails."""
    full = {**defaults(section), **values}
    return {k: v for k, v in full.items()
            if k in values or k not in BY_SECTION[section] or BY_SECTION[section][k].when is None
            or BY_SECTION[section][k].when(full)}


# --- checks that tie keys together -------------------------------------------------------------

def _numbers(values: dict, *names: str) -> bool:
    return all(isinstance(values.get(k), (int, float)) and not isinstance(values.get(k), bool) for k in names)


def _split_fractions(values: dict) -> str | None:
    if not _numbers(values, "split_train", "split_val", "split_test"):
        return None
    # the rule lives with the split itself, in the method (matching.split_by_group checks it too);
    # imported here only when a dataset section is checked: pandas is slow to import for Make's queries
    from cdcml_lib.matching import split_fractions_problem
    fractions = (values["split_train"], values["split_val"], values["split_test"])
    problem = split_fractions_problem(fractions)
    return (f"split_*: split_train + split_val + split_test = {sum(fractions):g}: {problem}. "
            f"Fix: make them positive and sum to 1") if problem else None


def _clip_counts(values: dict) -> str | None:
    if _numbers(values, "clips_per_song_min", "clips_per_song_max") and \
            values["clips_per_song_max"] < values["clips_per_song_min"]:
        return (f"clips_per_song_max: {values['clips_per_song_max']} is below clips_per_song_min "
                f"({values['clips_per_song_min']}). Fix: raise it")
    return None


def _published_needs_real_corpus(values: dict) -> str | None:
    if values.get("pairs_source") == "published" and values.get("corpus") == "embedded":
        return ("pairs_source: 'published' needs corpus 'imemnet' or 'standin': the lists name DEAM "
                "clips and IAPS/NAPS/EMOTIC images. Fix: change the corpus or use pairs_source: recipe")
    return None


#: section -> the checks over several of its keys ('key: what is wrong. Fix: ...' or None)
CROSS_CHECKS: dict[str, tuple[Callable[[dict], str | None], ...]] = {
    "dataset": (_split_fractions, _clip_counts, _published_needs_real_corpus),
}


def problems(section: str, values: dict, where: str, complete: bool = False, cross: bool = True) -> list[str]:
    """Every problem of one mapping of ``section`` (a config's section, a variant file, the
    parameters a library call got), as 'where, section.key: what is wrong. Fix: ...' lines.

    ``complete``: the mapping must hold every required key (a library call's full parameter set;
    a config is merged over :func:`defaults` first, so it always is). ``cross``: also the
    checks over several keys (:data:`CROSS_CHECKS`); off for one file of a config's chain, whose
    merged result is checked instead.
    """
    rules = BY_SECTION[section]
    found = []
    for key, value in values.items():
        if key not in rules:
            close = difflib.get_close_matches(key, list(rules), n=1)
            found.append(f"{where}, {section}.{key}: unknown key." + (
                f" Fix: did you mean '{close[0]}'? Rename it." if close else
                f" Fix: remove it (allowed: {', '.join(sorted(rules))})"))
            continue
        bad = rules[key].rule.problem(key, value)
        if bad:
            found.append(f"{where}, {section}.{key}: {bad}")
    if complete:
        missing = [k for k in required_keys(section) if k not in values]
        if missing:
            found.append(f"{where}, {section}: missing key(s) {', '.join(missing)}. Fix: add them "
                         f"(defaults: cdcml_lib/workflow/schema.py)")
    if cross:
        found += cross_problems(section, values, where)
    return found


def cross_problems(section: str, values: dict, where: str) -> list[str]:
    """The problems of :data:`CROSS_CHECKS` (each reads only values of the right types)."""
    full = with_defaults(section, values)
    return [f"{where}, {section}.{bad}" for bad in (check(full) for check in CROSS_CHECKS.get(section, ())) if bad]


# --- what each notebook reads ------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """A notebook of the study and what of a config reaches it: ``reads``, the sections or keys
    (``section`` or ``section.key``) passed to it as parameters of the same name; ``derived``,
    each parameter ``nbrun`` works out for it, with the config keys it is worked out from (the run
    folder's path from nothing but the config's name, the draw seeds from three keys); ``own``, the
    parameters only the notebook has (no config sets them)."""

    notebook: str
    reads: tuple[str, ...]
    derived: dict = field(default_factory=dict)
    own: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()   # keys of a read section that are not passed (set per run)

    def config_keys(self) -> list[tuple[str, str]]:
        """The (section, key) pairs passed as they are."""
        return [pair for item in self.reads for pair in _expand(item) if ".".join(pair) not in self.dropped]

    def depends_on(self) -> list[tuple[str, str]]:
        """Every (section, key) whose value the notebook sees, passed or worked into a parameter."""
        pairs = self.config_keys() + [pair for sources in self.derived.values() for item in sources
                                      for pair in _expand(item)]
        return list(dict.fromkeys(pairs))

    def parameters(self) -> set[str]:
        """The names its parameters cell must have."""
        return {key for _, key in self.config_keys()} | set(self.derived) | set(self.own)


def _expand(item: str) -> list[tuple[str, str]]:
    section, _, key = item.partition(".")
    return [(section, key)] if key else [(section, k) for k in keys(section)]


STEPS: dict[str, Step] = {s.notebook: s for s in (
    # one draw of the split and pairs per study seed and ACP-Net comparison seed (splits: per_seed)
    Step("01_dataset", ("dataset",),
         derived={"draw_seeds": ("train.splits", "study.seeds", "acp_net.compare_seeds")}),
    # one variant, all its seeds: train section + params/variants/<variant>.yaml (its content stamp)
    Step("02_train", ("train",),
         derived={"variant": (), "seeds": ("study.seeds",), "runs_dir": (), "extra_terms": ()},
         dropped=("train.seed", "train.run_dir")),
    # the study's runs, read through the config's name (params.study_runs)
    Step("03_tables", (), derived={"config": ("study",), "runs_dir": (), "reports_dir": ()},
         own=("confidence", "equivalence")),
    Step("04_embeddings", ("embeddings",),
         derived={"data_dir": ("dataset.out_dir",), "runs_dir": (), "reports_dir": ()}),
    Step("05_acp_net", ("acp_net",),
         derived={"config": (), "data_dir": ("dataset.out_dir",), "runs_dir": (), "reports_dir": ()}),
)}


def step_values(step: str, config: dict) -> dict:
    """The values of a merged ``config`` that notebook ``step`` reads, as {'section.key': value}:
    what its Make stamp holds, so that changing any of them re-runs it."""
    return {f"{s}.{k}": config.get(s, {}).get(k) for s, k in STEPS[step].depends_on()}
