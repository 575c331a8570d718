"""ACP-Net's own study (Verma et al. 2019; docs/METHOD.md, section "13. The kit's ACP-Net study"): affective correspondence.

One call of :func:`train_correspondence` trains one model (``acp_net``, ``l3_net`` or
``spectrogram_acp``, built by :func:`cdcml_lib.nets.build_correspondence_model`) with one seed on
the IMAC-style pairs of a dataset folder (:mod:`cdcml_lib.data.imac`) and measures:

- ``acc_val``, ``acc_test``: correspondence accuracy (logit > 0 means "true") on the balanced pairs;
- the emotion probe: a linear classifier (:func:`probe_accuracy`, sklearn LogisticRegression on
  standardised features) fitted on the TRAIN items' frozen branch embeddings predicts the TEST
  items' three-class emotion, per modality; the same probe on the embeddings of the untrained
  network (``*_init``) says how much of it training added;
- retrieval with the emotion class as relevance (beyond the paper): recall@K and MRR over every
  test image x test clip, ranked by the correspondence logit.

Training reuses the kit's loop (:func:`cdcml_lib.runs.train.train_epoch` with
:class:`cdcml_lib.losses.CorrespondenceLoss`, SGD with momentum and a step schedule), its
determinism (``set_determinism``) and loaders (memory-mapped caches, training-split music
statistics). The last epoch is kept (no model selection), so validation serves only to report.

Pairing across models (the comparisons are paired by seed): every model of a seed sees the same
pairs in the same batch order (the sampler's generator is seeded by the seed alone), and the parts
two models share start from the same weights (see ``nets._PART_STREAM``).

:func:`run_study` trains every (model, seed), ``n_jobs`` at a time, each result saved as
``<runs_dir>/correspondence/<model>-s<seed>.json`` (reused when its parameters match).
:func:`raw_input_probes` and :func:`chance_accuracy` give the probe's two references, and
:func:`embedding_correspondence` reads a trained CDCML-style run on ACP-Net's task.
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cdcml_lib.data import imac
from cdcml_lib.losses import CorrespondenceLoss
from cdcml_lib.metrics import best_threshold, mean_reciprocal_rank, recall_at_k
from cdcml_lib.nets import CORRESPONDENCE_MODELS, build_correspondence_model, correspondence_music_input
from cdcml_lib.runs.loader import (ConvertedRows, ItemDataset, LazyMemmaps, fit_music_standardiser,
                                   image_to_tensor, open_folder)
from cdcml_lib.runs import folder as run_folder
from cdcml_lib.runs.train import load_trained, pick_device, set_determinism, train_epoch
from cdcml_lib.workflow.paths import atomic_write_text, resolve, run_name

RETRIEVAL_KS = (1, 5, 10)
#: The raw-pixel probe reads images resized to this side (16 x 16 x 3 = 768 numbers): at 48 px the
#: 6,912 pixels made the logistic regression the slowest step of the study on two cores.
RAW_IMAGE_SIZE = 16
#: Keys of a study parameter set that change what a (model, seed) result holds.
RESULT_KEYS = ("epochs", "batch_size", "lr", "lr_step", "lr_gamma", "momentum", "weight_decay",
               "image_backbone", "music_backbone", "image_size", "embed_dim", "acp_head", "l3_head",
               "pretrained", "probe_C", "probe_max_iter")
IMAC_PREFIX = "imac_"
#: Every key of a study parameter set: the ``acp_net`` section of params/<config>.yaml plus the
#: paths notebooks/05_acp_net gets from the configuration.
STUDY_KEYS = ("config", "data_dir", "runs_dir", "reports_dir", "seeds", "models", *RESULT_KEYS,
              "n_jobs", "num_threads", "imac_rule", "imac_valence_low", "imac_valence_high",
              "imac_arousal_split", "imac_music_label", "imac_pairs_per_clip", "imac_seed",
              "compare_variants", "compare_seeds")


def check_study_params(p: dict) -> dict:
    """Every key of STUDY_KEYS present, no other, models known and at least one seed."""
    missing = [k for k in STUDY_KEYS if k not in p]
    unknown = sorted(set(p) - set(STUDY_KEYS))
    if missing or unknown:
        raise KeyError(f"acp_net parameters: missing {missing}, unknown {unknown}; copy the acp_net "
                       f"section of params/default.yaml")
    bad = [m for m in p["models"] if m not in CORRESPONDENCE_MODELS]
    if bad or not p["seeds"]:
        raise ValueError(f"acp_net: models {bad} unknown (choose from {CORRESPONDENCE_MODELS}) or "
                         f"no seeds ({p['seeds']})")
    imac.check_imac_params(**imac_params(p))
    return dict(p)


def imac_params(p: dict) -> dict:
    """The ``imac_*`` keys of a study parameter set, as :func:`cdcml_lib.data.imac.build_imac` takes them."""
    return {k[len(IMAC_PREFIX):]: v for k, v in p.items() if k.startswith(IMAC_PREFIX)}


class ImacPairDataset(LazyMemmaps, torch.utils.data.Dataset):
    """The IMAC-style pairs of one split as training batches: ``images``, ``music`` and the pair
    label in ``score`` (the key the kit's loop and :class:`CorrespondenceLoss` read)."""

    def __init__(self, folder, pairs: pd.DataFrame, standardiser, music_input: str, image_size: int):
        self.folder, self.music_input, self.image_size = folder, music_input, image_size
        self.standardiser = standardiser
        items = folder.items.assign(id=folder.items["id"].astype(str)).set_index("id")
        for column, what in (("image_id", "image"), ("music_id", "music")):
            missing = ~pairs[column].isin(items.index)
            if missing.any():
                raise imac.ImacError(f"imac pairs: {what} id {pairs[column][missing].iloc[0]!r} is not in "
                                     f"items.csv; rebuild the IMAC files (ensure_imac)")
        self.image_row = items.loc[pairs["image_id"], "row"].to_numpy(np.int64)
        self.music_row = items.loc[pairs["music_id"], "row"].to_numpy(np.int64)
        self._image_inputs, self._music_inputs = ConvertedRows(self.image_row), ConvertedRows(self.music_row)
        self.label = torch.tensor(pairs["label"].to_numpy(np.float32))
        self._array("images"); self._array(music_input)

    def __len__(self) -> int:
        return len(self.label)

    def _convert_images(self, images: np.ndarray) -> torch.Tensor:
        return image_to_tensor(images, self.image_size)

    def __getitem__(self, index):
        idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
        return {"images": self._image_inputs.batch(self._array("images"), self._convert_images, idx),
                "music": self._music_inputs.batch(self._array(self.music_input), self.standardiser, idx),
                "score": self.label[idx]}


@torch.no_grad()
def embed_all(model, folder, modality: str, standardiser, music_input: str, image_size: int,
              device=torch.device("cpu")) -> tuple[list, np.ndarray]:
    """Ids and branch embeddings [N, D] of every item of one modality (all splits)."""
    model.eval()
    ds = ItemDataset(folder, modality, None, standardiser, music_input, image_size)
    embed = model.embed_image if modality == "image" else model.embed_music
    feats = [embed(b["x"].to(device)).float().cpu() for b in ds.batches(256)]
    return ds.ids, torch.cat(feats).numpy()


@torch.no_grad()
def pair_logits(model, f_img: np.ndarray, f_mus: np.ndarray, device=torch.device("cpu")) -> np.ndarray:
    """The correspondence logit of each row pair (f_img[k], f_mus[k])."""
    model.eval()
    out = [model.correspondence(torch.from_numpy(f_img[i:i + 4096]).to(device),
                                torch.from_numpy(f_mus[i:i + 4096]).to(device)).float().cpu()
           for i in range(0, len(f_img), 4096)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def probe_accuracy(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                   C: float = 1.0, max_iter: int = 200) -> float:
    """The emotion probe: a linear classifier (standardised features, multinomial
    LogisticRegression, L2 strength 1/C) fitted on train, accuracy on test."""
    from sklearn.linear_model import LogisticRegression  # sklearn is only needed by the probe
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(y_train)) < 2:
        raise ValueError("probe: the training items carry a single emotion class; nothing to learn "
                         "(change the imac thresholds or use a larger dataset)")
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    clf.fit(np.asarray(x_train, np.float64), y_train)
    return float(np.mean(clf.predict(np.asarray(x_test, np.float64)) == y_test))


def chance_accuracy(y_test: np.ndarray) -> float:
    """Chance for the probe: the best constant answer on the test items, i.e. the share of the test
    split's most frequent class (stricter than answering the training split's majority class,
    which our splits by song can make far lower)."""
    _, counts = np.unique(y_test, return_counts=True)
    return float(counts.max() / counts.sum())


def train_majority_accuracy(y_train: np.ndarray, y_test: np.ndarray) -> float:
    """Accuracy on test of always answering the training split's most frequent class."""
    values, counts = np.unique(y_train, return_counts=True)
    return float(np.mean(y_test == values[np.argmax(counts)]))


def _split_labels(classes: pd.DataFrame, modality: str, ids: list) -> tuple[np.ndarray, np.ndarray]:
    table = classes[classes["modality"] == modality].set_index("id").loc[ids]
    return table["split"].to_numpy(), table["emotion"].to_numpy(np.int64)


def probe_both(classes, ids: dict, feats: dict, C: float, max_iter: int, suffix: str = "") -> dict:
    """Probe accuracy per modality from embeddings of every item (train -> test)."""
    out = {}
    for modality, tag in (("image", "img"), ("music", "mus")):
        split, y = _split_labels(classes, modality, ids[modality])
        tr, te = split == "train", split == "test"
        out[f"probe_{tag}{suffix}"] = probe_accuracy(feats[modality][tr], y[tr], feats[modality][te], y[te],
                                                     C, max_iter)
    return out


def class_retrieval(scores: np.ndarray, y_img: np.ndarray, y_mus: np.ndarray, prefix: str = "") -> dict:
    """recall@K and MRR with "same emotion class" as relevance: ``scores`` [images, clips]."""
    relevant = y_img[:, None] == y_mus[None, :]
    out = {}
    for tag, s, rel in (("i2m", scores, relevant), ("m2i", scores.T, relevant.T)):
        if not rel.any():  # e.g. a tiny test split whose clips all carry a class no image has
            out.update({f"{prefix}{tag}_recall_at_{k}": float("nan") for k in RETRIEVAL_KS})
            out[f"{prefix}{tag}_mrr"] = float("nan")
            continue
        for k in RETRIEVAL_KS:
            out[f"{prefix}{tag}_recall_at_{k}"] = recall_at_k(s, rel, k)
        out[f"{prefix}{tag}_mrr"] = mean_reciprocal_rank(s, rel)
    return out


def _pair_index(pairs: pd.DataFrame, ids: dict) -> tuple[np.ndarray, np.ndarray]:
    pos_img = {i: k for k, i in enumerate(ids["image"])}
    pos_mus = {i: k for k, i in enumerate(ids["music"])}
    return (np.array([pos_img[i] for i in pairs["image_id"]], np.int64),
            np.array([pos_mus[i] for i in pairs["music_id"]], np.int64))


def train_correspondence(model_name: str, seed: int, p: dict) -> dict:
    """Train one correspondence model with one seed (module docstring); return its result record."""
    threads = int(p.get("num_threads", 0) or 0)
    if threads > 0:  # NumPy's BLAS (the probe) too, not only torch: two processes share two cores
        from threadpoolctl import threadpool_limits

        with threadpool_limits(threads):
            return _train_correspondence(model_name, seed, p)
    return _train_correspondence(model_name, seed, p)


def _train_correspondence(model_name: str, seed: int, p: dict) -> dict:
    t0 = time.time()
    set_determinism(int(seed), int(p.get("num_threads", 0) or 0))
    folder = open_folder(p["data_dir"])
    classes = imac.read_imac_classes(p["data_dir"])
    m_input = correspondence_music_input(model_name)
    model = build_correspondence_model(
        model_name, int(seed), p["image_backbone"], p["music_backbone"], int(p["embed_dim"]),
        list(p["acp_head"]), list(p["l3_head"]), n_music_rows=int(folder.array("music_features").shape[1]),
        pretrained=bool(p["pretrained"]))
    device = pick_device("auto")  # CUDA when torch sees a GPU (the paper configuration), else the CPU
    cuda = device.type == "cuda"
    model = model.to(device)
    standardiser = fit_music_standardiser(folder, m_input)
    size = int(p["image_size"])
    C, max_iter = float(p["probe_C"]), int(p["probe_max_iter"])

    ids, feats = {}, {}
    for modality in ("image", "music"):
        ids[modality], feats[modality] = embed_all(model, folder, modality, standardiser, m_input, size, device)
    result = probe_both(classes, ids, feats, C, max_iter, suffix="_init")

    train_set = ImacPairDataset(folder, imac.read_imac_pairs(p["data_dir"], "train"), standardiser, m_input, size)
    batch_size = int(p["batch_size"])
    # Seeded by the seed alone: every model of a seed sees the same batches in the same order.
    batches = torch.utils.data.BatchSampler(
        torch.utils.data.RandomSampler(train_set, generator=torch.Generator().manual_seed(int(seed))),
        batch_size, drop_last=len(train_set) % batch_size == 1)  # a batch of one breaks BatchNorm
    loader = torch.utils.data.DataLoader(train_set, sampler=batches, batch_size=None, num_workers=0)
    trainable = [q for q in model.parameters() if q.requires_grad]
    optimiser = torch.optim.SGD(trainable, lr=float(p["lr"]), momentum=float(p["momentum"]),
                                weight_decay=float(p["weight_decay"]))
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, int(p["lr_step"]), float(p["lr_gamma"]))
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if cuda else \
        (lambda: torch.autocast("cpu", enabled=False))
    losses = []
    for _ in range(int(p["epochs"])):
        terms = train_epoch(model, loader, CorrespondenceLoss(), optimiser, scaler, p, device,
                            autocast, torch.Generator().manual_seed(int(seed) + 1), channels_last=False)
        scheduler.step()
        losses.append(terms["total"])

    for modality in ("image", "music"):
        ids[modality], feats[modality] = embed_all(model, folder, modality, standardiser, m_input, size, device)
    for split in ("val", "test"):
        pairs = imac.read_imac_pairs(p["data_dir"], split)
        if len(pairs):
            ki, km = _pair_index(pairs, ids)
            logit = pair_logits(model, feats["image"][ki], feats["music"][km], device)
            result[f"acc_{split}"] = float(np.mean((logit > 0) == (pairs["label"].to_numpy() == 1)))
        else:
            result[f"acc_{split}"] = float("nan")
    result.update(probe_both(classes, ids, feats, C, max_iter))
    # Retrieval over every test image x test clip, ranked by the logit, relevance = same class.
    s_img, y_img = _split_labels(classes, "image", ids["image"])
    s_mus, y_mus = _split_labels(classes, "music", ids["music"])
    fi, fm = feats["image"][s_img == "test"], feats["music"][s_mus == "test"]
    ii, mm = np.meshgrid(np.arange(len(fi)), np.arange(len(fm)), indexing="ij")
    scores = pair_logits(model, fi[ii.ravel()], fm[mm.ravel()], device).reshape(len(fi), len(fm))
    result.update(class_retrieval(scores, y_img[s_img == "test"], y_mus[s_mus == "test"]))
    return {"model": model_name, "seed": int(seed), **result, "loss_first": losses[0] if losses else None,
            "loss_last": losses[-1] if losses else None, "wall_s": round(time.time() - t0, 2),
            "threads": torch.get_num_threads(), "device": str(device)}


def _result_path(p: dict, model: str, seed: int) -> Path:
    return resolve(p["runs_dir"]) / "correspondence" / f"{run_name(model, seed)}.json"


def _made_by(p: dict, folder_stats: dict) -> dict:
    return {"params": {k: p[k] for k in RESULT_KEYS}, "imac": imac.check_imac_params(**imac_params(p)),
            "dataset_seed": folder_stats.get("seed"), "data_dir": str(p["data_dir"])}


def _one(model: str, seed: int, p: dict, made_by: dict) -> dict:
    """Worker: train one (model, seed) and save its record (what run_study farms out)."""
    record = {**train_correspondence(model, seed, p), "made_by": made_by}
    path = _result_path(p, model, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return record


def run_study(p: dict, progress: bool = True) -> pd.DataFrame:
    """Every (model, seed) of ``p['models']`` x ``p['seeds']``: reuse a saved record whose
    parameters match, train the others ``p['n_jobs']`` at a time; one row per run."""
    p = check_study_params(p)
    record = imac.ensure_imac(p["data_dir"], **imac_params(p))
    made_by = json.loads(json.dumps(_made_by(p, open_folder(p["data_dir"]).stats)))
    records, todo = [], []
    for seed in p["seeds"]:
        for model in p["models"]:
            path = _result_path(p, model, int(seed))
            saved = json.loads(path.read_text()) if path.is_file() else None
            if saved is not None and saved.get("made_by") == made_by:
                records.append(saved)
            else:
                todo.append((model, int(seed)))
    jobs = max(1, int(p["n_jobs"]))
    if todo and progress:
        print(f"training {len(todo)} correspondence runs, {jobs} at a time "
              f"({record['counts']['train']['pairs']} training pairs)")
    if jobs == 1 or len(todo) == 1:
        records += [_one(m, s, p, made_by) for m, s in todo]
    elif todo:
        # spawn, not fork: a forked child of a process whose torch thread pool already ran can hang.
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            records += list(pool.map(_one, *zip(*todo), [p] * len(todo), [made_by] * len(todo)))
    table = pd.DataFrame([{k: v for k, v in r.items() if k != "made_by"} for r in records])
    order = {m: i for i, m in enumerate(p["models"])}
    return table.sort_values(["seed", "model"], key=lambda c: c.map(order) if c.name == "model" else c) \
        .reset_index(drop=True)


def raw_input_probes(p: dict) -> dict:
    """The probe on the raw inputs (no network): image pixels (resized to RAW_IMAGE_SIZE, flattened)
    and each music input summarised over time (mean and std of each row), plus chance per modality
    (:func:`chance_accuracy`, and the training majority's accuracy)."""
    threads = int(p.get("num_threads", 0) or 0)
    if threads > 0:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(threads):
            return _raw_input_probes(p)
    return _raw_input_probes(p)


def _raw_input_probes(p: dict) -> dict:
    folder = open_folder(p["data_dir"])
    classes = imac.read_imac_classes(p["data_dir"])
    C, max_iter = float(p["probe_C"]), int(p["probe_max_iter"])
    out = {}
    items = ItemDataset(folder, "image", None, None, "music_features", RAW_IMAGE_SIZE)
    x = np.concatenate([b["x"].reshape(len(b["x"]), -1).numpy() for b in items.batches(512)])
    split, y = _split_labels(classes, "image", items.ids)
    out["image_pixels"] = probe_accuracy(x[split == "train"], y[split == "train"], x[split == "test"],
                                         y[split == "test"], C, max_iter)
    out["image_chance"] = chance_accuracy(y[split == "test"])
    out["image_train_majority"] = train_majority_accuracy(y[split == "train"], y[split == "test"])
    music = folder.items[folder.items["modality"] == "music"].sort_values("row")
    split, y = _split_labels(classes, "music", music["id"].astype(str).tolist())
    rows = music["row"].to_numpy(np.int64)
    for name in ("music_features", "log_spectrogram"):
        arr = np.asarray(folder.array(name)[rows], np.float32)
        x = np.concatenate([arr.mean(axis=2), arr.std(axis=2)], axis=1)
        out[f"music_{name}"] = probe_accuracy(x[split == "train"], y[split == "train"], x[split == "test"],
                                              y[split == "test"], C, max_iter)
    out["music_chance"] = chance_accuracy(y[split == "test"])
    out["music_train_majority"] = train_majority_accuracy(y[split == "train"], y[split == "test"])
    return out


def embedding_correspondence(run_dir, data_dir) -> dict:
    """A trained kit run (CDCML, the contrastive baseline...) on ACP-Net's task.

    Test embeddings come from the run's ``embeddings_test.npz``; the run folder holds no validation
    embeddings, so the validation items are encoded here with the run's best model
    (``train.load_trained``). Two readings, each with its threshold fitted on the validation pairs
    (:func:`cdcml_lib.metrics.best_threshold`) and applied to the test pairs: the embedding distance
    (``acc_dist``: true when ||f_img - f_mus|| <= t) and the model's predicted score s_hat
    (``acc_score``: true when s_hat >= t). Also class retrieval by -distance over test items.
    """
    run_dir, folder = resolve(run_dir), open_folder(data_dir)
    npz = np.load(run_dir / run_folder.EMBEDDINGS)
    trained = load_trained(run_dir)
    classes = imac.read_imac_classes(data_dir)
    mod = npz["modality"].astype(str)
    emb = {"test": {m: dict(zip(npz["ids"][mod == m].astype(str), npz["embedding"][mod == m]))
                    for m in ("image", "music")}}
    items = folder.items.assign(id=folder.items["id"].astype(str))
    val = items[items["split"] == "val"]
    music_input = "log_spectrogram" if trained.params["model"] == "l3_net" else "music_features"
    vi, vm = val[val["modality"] == "image"], val[val["modality"] == "music"]
    f_vi = trained.encode_images(np.asarray(folder.array("images")[vi["row"].to_numpy()]))
    f_vm = trained.encode_music(np.asarray(folder.array(music_input)[vm["row"].to_numpy()]))
    emb["val"] = {"image": dict(zip(vi["id"], f_vi)), "music": dict(zip(vm["id"], f_vm))}
    readings = {}
    for split in ("val", "test"):
        pairs = imac.read_imac_pairs(data_dir, split)
        a = np.stack([emb[split]["image"][i] for i in pairs["image_id"]]).astype(np.float32)
        b = np.stack([emb[split]["music"][i] for i in pairs["music_id"]]).astype(np.float32)
        readings[split] = {"dist": -np.linalg.norm(a - b, axis=1), "score": trained.similarity(a, b),
                           "label": pairs["label"].to_numpy()}
    out = {}
    for name in ("dist", "score"):
        t, acc_val = best_threshold(readings["val"][name], readings["val"]["label"])
        out[f"acc_{name}_val"] = acc_val
        out[f"acc_{name}"] = float(np.mean((readings["test"][name] >= t) == (readings["test"]["label"] == 1)))
    # Class retrieval in the shared space (-distance), test items only.
    y = classes.set_index("id")["emotion"]
    ti, tm = list(emb["test"]["image"]), list(emb["test"]["music"])
    fi = np.stack([emb["test"]["image"][i] for i in ti]); fm = np.stack([emb["test"]["music"][i] for i in tm])
    dist = np.linalg.norm(fi[:, None, :] - fm[None, :, :], axis=2)
    out.update(class_retrieval(-dist, y.loc[ti].to_numpy(), y.loc[tm].to_numpy()))
    return out


def compare_kit_runs(p: dict) -> pd.DataFrame:
    """:func:`embedding_correspondence` for each finished ``<runs_dir>/<variant>-s<seed>`` of
    ``p['compare_variants']`` x ``p['compare_seeds']``, each on the IMAC pairs of its own dataset
    folder (its seed's split draw when trained with ``splits: per_seed``); a run that is missing is listed with
    ``status = missing`` (and the command that makes it) instead of failing the study."""
    rows = []
    for variant in p["compare_variants"]:
        for seed in p["compare_seeds"]:
            run_dir = resolve(p["runs_dir"]) / run_name(variant, seed)
            if not run_folder.is_finished(run_dir):
                rows.append({"variant": variant, "seed": int(seed), "status": "missing",
                             "how": run_folder.how_to_make(run_dir, variant, seed)})
                continue
            # the run's own dataset folder: with splits per_seed, its seed's draw, whose test
            # split is the one it never trained on; its IMAC files are drawn there
            data_dir = run_folder.read_params(run_dir)["data_dir"]
            imac.ensure_imac(data_dir, **imac_params(p))
            rows.append({"variant": variant, "seed": int(seed), "status": "ok", "data_dir": str(data_dir),
                         **embedding_correspondence(run_dir, data_dir)})
    return pd.DataFrame(rows)
