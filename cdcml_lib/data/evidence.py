"""What evidence a dataset folder is: the corpus that made it, said so that no reader can misread it.

Every report file the study writes carries this record (REPORT.md and claims.md open with it as a
box, claims.json and reference.json hold it as fields, the tables and the embedding numbers as a
column or a comment, the figures in their PNG metadata), because a result is only as good as the
data behind it: numbers made on the kit's embedded benchmark test the implementation and the
paper's claims on data whose emotions are known by construction, and say nothing about real photos
and songs or about the paper's numbers on IMEMNet.

The record is read from the dataset folder itself (``stats.json`` and the cache manifest), not
from a parameter file, so it describes what was built, whichever configuration named it.
"""
from __future__ import annotations

import json
from pathlib import Path

from cdcml_lib.workflow.paths import atomic_write_text, resolve

#: what each kind of corpus can and cannot show (docs/METHOD.md, section "The embedded benchmark")
CAN_SHOW = {
    "embedded": ("whether the kit implements the method as described, and whether the paper's claims "
                 "hold on data whose emotions are known by construction"),
    "standin": ("whether the real-corpus path (readers, audit, published pair lists) works end to end; "
                "the media are the embedded benchmark's"),
    "imemnet": "the paper's claims on the real corpora named here, as far as the seeds decide them",
}
CANNOT_SHOW = {
    "embedded": ("how a model rates real photos and songs, or the paper's numbers on IMEMNet: the "
                 "benchmark is synthetic"),
    "standin": ("anything about real photos and songs: the media are synthetic, placed in the real "
                "corpora's folder layouts"),
    "imemnet": ("whether the results carry over to other corpora, or agree with the authors' own runs "
                "(their code and splits are not public)"),
}
SYNTHETIC = {"embedded": True, "standin": True, "imemnet": False}


class EvidenceError(ValueError):
    """A dataset folder whose corpus cannot be told (its ``stats.json`` is missing or unreadable)."""


def _corpus_params(stats: dict) -> dict:
    return stats.get("parameters") or {}


def _generator_code(data_dir: Path) -> str:
    """The content hash of the generator that made the embedded corpus (its version), from the cache
    manifest: the hash changes whenever the generator's source does."""
    manifest = data_dir / "cache" / "manifest.json"
    if not manifest.is_file():
        return "unknown"
    entries = json.loads(manifest.read_text())
    for entry in entries.values() if isinstance(entries, dict) else entries:
        code = (entry.get("made_by") or {}).get("code")
        if code:
            return str(code)
    return "unknown"


def _sizes(stats: dict) -> str:
    total = (stats.get("splits") or {}).get("total") or {}
    if not total:
        return ""
    return (f"{total.get('songs', '?'):,} songs, {total.get('clips', '?'):,} clips, "
            f"{total.get('images', '?'):,} images, {total.get('pairs', '?'):,} pairs")


def _real_corpora(p: dict) -> list[str]:
    named = {"DEAM": "deam_dir", "IAPS": "iaps_ratings", "NAPS": "naps_ratings", "EMOTIC": "emotic_annotations"}
    return [name for name, key in named.items() if p.get(key)]


def describe_dataset(data_dir: str | Path) -> dict:
    """The evidence record of the dataset folder ``data_dir``: ``corpus`` (embedded, standin or
    imemnet), ``synthetic``, ``description`` (which corpus, generator version or real corpora and
    pair lists, sizes), ``can_show``, ``cannot_show`` and ``statement`` (all of it in one sentence,
    ASCII, for a file's header or a PNG's metadata)."""
    data_dir = resolve(data_dir)
    stats_path = data_dir / "stats.json"
    if not stats_path.is_file():
        raise EvidenceError(f"{stats_path}: missing, so the corpus behind these results cannot be told. "
                            f"Fix: build the dataset first (make data CONFIG=<config>).")
    try:
        stats = json.loads(stats_path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise EvidenceError(f"{stats_path}: not valid JSON ({exc}). Fix: rebuild the dataset "
                            f"(make data CONFIG=<config>).") from exc
    p = _corpus_params(stats)
    corpus = str(p.get("corpus", "embedded"))
    sizes = _sizes(stats)
    if corpus == "embedded":
        description = (f"the kit's embedded benchmark: synthetic images and music clips whose valence "
                       f"and arousal are set by construction (generator cdcml_lib.data.synthetic, "
                       f"version {_generator_code(data_dir)}, seed {p.get('seed', '?')}; {sizes})")
    elif corpus == "standin":
        description = (f"the stand-in corpus: the embedded benchmark's synthetic media in the folder "
                       f"layouts of DEAM, IAPS, NAPS and EMOTIC ({sizes})")
    else:
        lists = ("published pair lists" if stats.get("pairs_source") == "published"
                 else "pairs drawn by the IMEMNet recipe")
        description = (f"real corpora: {', '.join(_real_corpora(p)) or 'none named'}; {lists} ({sizes})")
    record = {"corpus": corpus, "synthetic": SYNTHETIC.get(corpus, False), "description": description,
              "can_show": CAN_SHOW.get(corpus, ""), "cannot_show": CANNOT_SHOW.get(corpus, "")}
    return {**record, "statement": statement(record)}


def statement(record: dict) -> str:
    """The evidence in one ASCII sentence (it goes into CSV columns and PNG metadata too)."""
    text = (f"Evidence: {record['description']}. It can show {record['can_show']}. "
            f"It cannot show {record['cannot_show']}.")
    return text.encode("ascii", "replace").decode("ascii")


def short(record: dict) -> str:
    """A few words for a CSV column: ``embedded corpus, synthetic media``."""
    return f"{record['corpus']} corpus, {'synthetic' if record['synthetic'] else 'real'} media"


def markdown_box(record: dict, seeds: list[int] | None = None) -> list[str]:
    """The box a report file opens with: what made these results, what they can and cannot show."""
    seed_words = f" Seeds: {len(seeds)} ({seeds[0]} to {seeds[-1]})." if seeds else ""
    return [f"> **Evidence.** {record['description'][0].upper()}{record['description'][1:]}.{seed_words}",
            ">", f"> **What it can show:** {record['can_show']}.",
            ">", f"> **What it cannot show:** {record['cannot_show']}.", ""]


def png_metadata(record: dict) -> dict:
    """Matplotlib ``savefig`` metadata that puts the statement into a PNG's text chunk."""
    return {"Description": record["statement"]}


def md_comment(record: dict) -> str:
    """The statement as a Markdown comment line, for table fragments that REPORT.md includes (whose
    own evidence box is visible)."""
    return f"<!-- {record['statement']} -->\n"


def tex_comment(record: dict) -> str:
    """The statement as a LaTeX comment line."""
    return f"% {record['statement']}\n"


def with_column(frame, record: dict):
    """``frame`` with a last column ``evidence`` (:func:`short`), so a CSV row carries its corpus."""
    return frame.assign(evidence=short(record))


def stamp_file(path: str | Path, record: dict) -> None:
    """Add the evidence to a file a notebook has written, by its kind, leaving its data as written:
    a CSV gains an ``evidence`` column (appended as text, so the numbers keep their digits), a JSON
    object an ``evidence`` field, a PNG a text chunk, an HTML page or a Markdown or LaTeX file a
    comment. A file that already names the evidence is left alone; other kinds are not touched."""
    from PIL import Image, PngImagePlugin   # imported here: only figures need it

    path = Path(path)
    text = record["statement"]
    kind = path.suffix.lower()
    if kind == ".png":
        with Image.open(path) as image:
            if image.info.get("Description") == text:
                return
            info = PngImagePlugin.PngInfo()
            info.add_text("Description", text)
            image.load()
            image.save(path, pnginfo=info)
        return
    if kind not in (".csv", ".json", ".html", ".md", ".tex"):
        return
    content = path.read_text(encoding="utf-8")
    if text in content or f'"{short(record)}"' in content:
        return
    if kind == ".csv":
        lines = content.splitlines()
        cell = '"' + short(record).replace('"', '""') + '"'
        content = "\n".join([lines[0] + ",evidence"] + [line + "," + cell for line in lines[1:] if line]) + "\n"
    elif kind == ".json":
        data = json.loads(content)
        if not isinstance(data, dict):
            return
        content = json.dumps({**data, "evidence": record}, indent=1) + "\n"
    elif kind == ".html":
        head = content.find("<head>")
        at = head + len("<head>") if head >= 0 else 0
        content = content[:at] + f"<!-- {text} -->" + content[at:]
    else:
        content = (md_comment(record) if kind == ".md" else tex_comment(record)) + content
    atomic_write_text(path, content)
