"""The published IMEMNet pair lists as a dataset source (issue 13).

IMEMNet's authors published ``train_matching.txt``, ``val_matching.txt`` and ``test_matching.txt``
(``music_clip_id image_id matching_score`` a line; github.com/linkAmy/IMEMNet). With
``pairs_source: published`` in the ``dataset`` section, the dataset step takes its splits and pairs
from those lists instead of running the recipe (docs/METHOD.md, section "3. The dataset recipe (IMEMNet)"), and its media and VA labels
from the user's corpora (``cdcml_lib.data.corpora``):

- ids are resolved to the corpora's items: DEAM clips ``<song>-<clip>`` (as ``read_deam`` names
  them), IAPS picture numbers (``2352.1``; ``1050`` and ``1050.0`` are the same picture), NAPS
  names (``Animals_001_h``) and EMOTIC file names without extension (``COCO_train2014_...``,
  ``frame_...`` and the others); a pair whose clip or image is not found is left out, and the
  report (``stats.json``, ``published.resolution``) counts and names the missing ids by
  convention;
- the lists are audited (``cdcml_lib.data.audit``): splits that share songs, clips, images or pairs
  stop the build unless ``allow_split_overlap: true`` (the published lists need it: their test
  list contains the validation songs); then ``stats.json`` records the overlap under
  ``split_overlap``, and the report must say that test results include pairs shared with
  validation;
- an item listed in several splits (only with ``allow_split_overlap``) belongs to the first of
  train, val, test; each later split gets a copy of it, id ``<id>@<split>`` (same media, same
  label), so that every split's evaluation sees all of its list; items in no list are not used.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cdcml_lib.data import audit
from cdcml_lib.data.corpora import read_pairs
from cdcml_lib.matching import SPLITS
from cdcml_lib.workflow import schema
from cdcml_lib.workflow.paths import resolve

#: Optional keys of the ``dataset`` section for this source, with their defaults (workflow/schema.py).
PUBLISHED_DEFAULTS = {k: schema.defaults("dataset")[k] for k in
                      ("pairs_source", "train_pairs", "val_pairs", "test_pairs", "allow_split_overlap")}

#: How the published lists name items, in the order ids are classified (for the report).
ID_CONVENTIONS = (
    ("DEAM clip <song>-<clip>", r"\d+-\d+"),
    ("IAPS picture number", r"\d+(\.\d+)?"),
    ("EMOTIC COCO_*", r"COCO_.*"),
    ("EMOTIC frame_*", r"frame_.*"),
    ("NAPS name", r"[A-Za-z]+_\d+_[hv]"),
    ("other (EMOTIC file name)", r".*"),
)


class PublishedListError(ValueError):
    """Published lists that cannot be used as given; the message says what to change."""


def convention(item_id: str) -> str:
    """The id convention an id of the published lists follows (:data:`ID_CONVENTIONS`)."""
    return next(name for name, pattern in ID_CONVENTIONS if re.fullmatch(pattern, item_id))


def canonical_id(item_id: str) -> str:
    """One spelling per item: IAPS numbers without a trailing ``.0`` (``1050.0`` -> ``1050``)
    and DEAM clip ids without leading zeros (``0002-09`` -> ``2-9``); other ids unchanged."""
    if re.fullmatch(r"\d+\.0+", item_id):
        return item_id.split(".")[0].lstrip("0") or "0"
    match = re.fullmatch(r"(\d+)-(\d+)", item_id)
    if match:
        return f"{int(match.group(1))}-{int(match.group(2))}"
    return item_id


def list_paths(p: dict) -> dict[str, Path]:
    """The three lists' paths from the params; a missing key or file is an error naming it."""
    paths = {}
    for split in SPLITS:
        key = f"{split}_pairs"
        if not p.get(key):
            raise PublishedListError(f"dataset.pairs_source is 'published' but dataset.{key} is "
                                     f"empty; set it to the published {split}_matching.txt")
        paths[split] = resolve(p[key])
        if not paths[split].is_file():
            raise PublishedListError(f"dataset.{key}: {paths[split]} does not exist; download "
                                     f"{split}_matching.txt (github.com/linkAmy/IMEMNet) there")
    return paths


@dataclass
class PublishedPairs:
    """The lists resolved against the corpora's items."""

    plan: pd.DataFrame                  # id (in the dataset), base (the corpus item id), split
    pairs: dict[str, pd.DataFrame]      # per split: music_id, image_id, score (dataset ids)
    stats: dict                         # stats.json's ``published`` block
    split_overlap: list                 # stats.json's ``split_overlap``: [] when disjoint


def resolve_lists(p: dict, items: pd.DataFrame) -> PublishedPairs:
    """Audit the three lists, resolve their ids to ``items`` and pick the items they use."""
    paths = list_paths(p)
    report = audit.audit_pairs([paths[s] for s in SPLITS], fit=False)
    verdict = report["verdict"]
    overlaps = [{"a": Path(f["a"]).name, "b": Path(f["b"]).name, "shared": f["shared"]}
                for f in verdict["flags"] if f["flag"] == "split_overlap"]
    if overlaps and not p.get("allow_split_overlap"):
        text = "; ".join(f"{o['a']} and {o['b']} share " + ", ".join(
            f"{n:,} {k}" for k, n in o["shared"].items() if n) for o in overlaps)
        raise PublishedListError(
            f"the pair lists' splits overlap: {text} ({audit.format_verdict(verdict)[1].strip()}). "
            "Training or evaluating on them mixes splits. Fix the lists, or set "
            "dataset.allow_split_overlap: true to accept it (the report will then say that test "
            "results include pairs shared with validation)")
    by_id = {canonical_id(i): i for i in items.id}
    kinds = dict(zip(items.id, items.modality))
    pairs, resolution = {}, {}
    for split in SPLITS:
        listed = read_pairs(paths[split])
        music = listed.music_id.map(lambda i: by_id.get(canonical_id(i)))
        image = listed.image_id.map(lambda i: by_id.get(canonical_id(i)))
        music = music.where(music.map(lambda i: kinds.get(i) == "music"), None)
        image = image.where(image.map(lambda i: kinds.get(i) == "image"), None)
        ok = music.notna() & image.notna()
        kept = pd.DataFrame({"music_id": music[ok], "image_id": image[ok],
                             "score": listed.score[ok]}).drop_duplicates(["music_id", "image_id"])
        missing = {}
        for column, found in (("music_id", music), ("image_id", image)):
            lost = listed[column][found.isna()].drop_duplicates()
            for name, ids in lost.groupby(lost.map(convention)):
                missing[name] = {"ids": int(len(ids)), "examples": ids.head(5).tolist()}
        resolution[split] = {"file": str(paths[split]), "pairs_listed": int(len(listed)),
                             "pairs_kept": int(len(kept)),
                             "duplicates_dropped": int(ok.sum() - len(kept)),
                             "missing_ids": missing}
        if not len(kept):
            raise PublishedListError(
                f"{paths[split]}: none of its {len(listed):,} pairs has both items in the corpora "
                f"(missing ids by convention: { {k: v['examples'][:2] for k, v in missing.items()} }); "
                "check the corpus paths in the dataset section and the layout in docs/REAL_CORPORA.md")
        if missing:
            lost_pairs = len(listed) - int(ok.sum())
            warnings.warn(f"published lists: {lost_pairs:,} of {len(listed):,} pairs of "
                          f"{paths[split].name} are left out, their ids not found in the corpora: "
                          + "; ".join(f"{v['ids']:,} {k} ids (e.g. {v['examples'][:3]})"
                                      for k, v in missing.items()), stacklevel=2)
        pairs[split] = kept.reset_index(drop=True)
    # One split per item row: an item a later list shares with an earlier one (train, val, test)
    # gets a copy of its own, id "<id>@<split>", holding the same media and label.
    owner, plan = {}, []
    for name in SPLITS:
        rename = {}
        for base in pd.unique(pd.concat([pairs[name].music_id, pairs[name].image_id])):
            if base not in owner:
                owner[base] = name
                plan.append((base, base, name))
            elif owner[base] != name:
                rename[base] = f"{base}@{name}"
                plan.append((rename[base], base, name))
        if rename:
            pairs[name] = pairs[name].assign(music_id=pairs[name].music_id.replace(rename),
                                             image_id=pairs[name].image_id.replace(rename))
    plan = pd.DataFrame(plan, columns=["id", "base", "split"])
    stats = {"lists": {s: str(paths[s]) for s in SPLITS},
             "sha256": {s: hashlib.sha256(paths[s].read_bytes()).hexdigest()[:16] for s in SPLITS},
             "allow_split_overlap": bool(p.get("allow_split_overlap")),
             "audit": verdict, "resolution": resolution,
             "shared_item_copies": {name: int(((plan.split == name) & (plan.id != plan.base)).sum())
                                    for name in SPLITS}}
    return PublishedPairs(plan=plan, pairs=pairs, stats=stats, split_overlap=overlaps)


def subset_rows(items: pd.DataFrame, plan: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The dataset's items from a source's item table and :class:`PublishedPairs`' ``plan``
    (images first, then clips, each in the source's order, copies after their original), with
    ``id`` and ``split`` from the plan, and the source's image rows and clip rows each comes from
    (for its loaders; a copy repeats its original's row)."""
    position = pd.Series(np.arange(len(items)), index=items.id)
    is_img = (items.modality == "image").to_numpy()
    rows = plan.assign(at=position.loc[plan.base].to_numpy())
    rows = rows.sort_values("at", kind="stable")
    sub = items.iloc[rows["at"].to_numpy()].assign(id=rows.id.to_numpy(), split=rows.split.to_numpy())
    img = is_img[rows["at"].to_numpy()]
    sub = pd.concat([sub[img], sub[~img]], ignore_index=True)
    first_clip = int(is_img.sum())     # the source's clip rows count from its first clip
    img_rows = rows["at"].to_numpy()[img]
    clip_rows = rows["at"].to_numpy()[~img] - first_clip
    return sub, img_rows, clip_rows


def table1_from_lists(pairs: dict[str, pd.DataFrame], items: pd.DataFrame) -> dict:
    """Table-1 counts of each list as used (songs, clips, images, pairs), and their total: an item
    listed in two splits counts in both, as in the published lists."""
    song = dict(zip(items.id, items.song))
    out = {s: {"songs": int(pairs[s].music_id.map(song).nunique()),
               "clips": int(pairs[s].music_id.nunique()),
               "images": int(pairs[s].image_id.nunique()), "pairs": int(len(pairs[s]))}
           for s in SPLITS}
    out["total"] = {k: sum(out[s][k] for s in SPLITS) for k in ("songs", "clips", "images", "pairs")}
    return out


# --- the dataset step's hooks (cdcml_lib.data.dataset) -------------------------------------

def restrict_source(p: dict, source):
    """The dataset step's source reduced to the items the lists use (:func:`resolve_lists`,
    :func:`subset_rows`), and the resolved lists. ``source`` is a ``dataset.Source``; the new one
    loads each item (and each copy) from the source's own rows."""
    lists = resolve_lists(p, source.items)
    sub, img_rows, clip_rows = subset_rows(source.items, lists.plan)
    whole = source
    reduced = dataclasses.replace(
        source, items=sub, made_by={**whole.made_by, "lists": lists.stats["sha256"]},
        images=lambda rows, size: whole.images(img_rows[np.asarray(rows)], size),
        clips=lambda rows: whole.clips(clip_rows[np.asarray(rows)]))
    return reduced, lists


def pairs_table(lists: PublishedPairs) -> pd.DataFrame:
    """All listed pairs as the recipe's pair table: ``music_id, image_id, score, split`` and
    ``kind`` (the recipe's top / bottom / random; here ``published``)."""
    return pd.concat([lists.pairs[s].assign(split=s, kind="published") for s in SPLITS],
                     ignore_index=True)


def stats_block(lists: PublishedPairs | None) -> dict:
    """What ``stats.json`` records about the pairs' source. ``split_overlap`` lists the splits
    that share items ([] unless ``allow_split_overlap`` let the build go on): when it is not
    empty, the report must say that test results include pairs shared with validation."""
    if lists is None:
        return {"pairs_source": "recipe", "split_overlap": []}
    return {"pairs_source": "published", "split_overlap": lists.split_overlap,
            "published": lists.stats}
