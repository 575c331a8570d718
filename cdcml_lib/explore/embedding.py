"""Exploring the shared latent space of a trained run.

CDCML (Zhao et al. 2020) maps images and music clips into one embedding space, and its metric
losses (Eqs. 2-5) ask distances in that space to follow distances between valence-arousal (VA)
labels. This module measures and draws how far they do:

- :func:`load_run_embeddings` reads a run's ``embeddings_test.npz`` (``docs/ARCHITECTURE.md``);
- :func:`fit_umap` projects the embeddings to 2-D; :func:`save_coords` / :func:`load_coords`
  keep the coordinates as an artifact, because UMAP is not bit-stable across machines and every
  figure must be redrawn from the saved numbers;
- :func:`distance_correlations`, :func:`umap_trustworthiness`, :func:`modality_gap` and
  :func:`modality_mixing` (how often a point's neighbours on the map share its modality) are the
  numbers of the space;
- :func:`best_matches` (from :mod:`cdcml_lib.explore.match`) is the matching function of the
  paper's Figure 3 for a new file;
- :func:`write_map_html` writes the interactive map (one standalone HTML file).
"""
from __future__ import annotations

import base64
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from cdcml_lib.explore import match
from cdcml_lib.runs.folder import EMBEDDINGS
from cdcml_lib.workflow.paths import atomic_path, atomic_write_text

MODALITIES = ("image", "music")
NPZ_FIELDS = ("ids", "modality", "valence", "arousal", "pred_valence", "pred_arousal", "embedding")
COORD_COLUMNS = ("id", "modality", "valence", "arousal", "umap_x", "umap_y")


# --- reading a run's embeddings --------------------------------------------------------------

@dataclass
class RunEmbeddings:
    """The test items of one run in the shared space: labels, predictions and embeddings."""

    items: pd.DataFrame       # id, modality, valence, arousal, pred_valence, pred_arousal
    embedding: np.ndarray     # float [N, D], row i belongs to items.iloc[i]
    source: Path | None = None

    @property
    def va(self) -> np.ndarray:
        return self.items[["valence", "arousal"]].to_numpy(dtype=np.float64)

    @property
    def modality(self) -> np.ndarray:
        return self.items["modality"].to_numpy()


def load_run_embeddings(run_dir: str | os.PathLike) -> RunEmbeddings:
    """Read ``<run_dir>/embeddings_test.npz`` and check every field against the contract."""
    path = Path(run_dir) / EMBEDDINGS
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such file. Fix: train the run first (make reproduce, or "
            f"python -m cdcml_lib.runs.train) so that it writes its test embeddings.")
    with np.load(path, allow_pickle=False) as npz:
        missing = [f for f in NPZ_FIELDS if f not in npz.files]
        if missing:
            raise ValueError(f"{path}: missing field(s) {missing}; present: {sorted(npz.files)}. "
                             "Fix: re-run training with the current cdcml_lib.runs.train.")
        data = {}
        for f in NPZ_FIELDS:
            try:
                data[f] = npz[f]
            except ValueError as err:  # object arrays need pickle, which we do not load
                raise ValueError(f"{path}: field '{f}' is an object array ({err}). Fix: save it "
                                 "as a plain array, e.g. np.asarray(values, dtype=str).") from None
    emb = np.asarray(data["embedding"], dtype=np.float64)
    n = len(data["ids"])
    if emb.ndim != 2 or emb.shape[0] != n:
        raise ValueError(f"{path}: field 'embedding' has shape {emb.shape}, expected [{n}, D] "
                         f"(one row per id). Fix: re-run training.")
    for f in NPZ_FIELDS[:-1]:
        if len(data[f]) != n:
            raise ValueError(f"{path}: field '{f}' has {len(data[f])} rows, 'ids' has {n}.")
    items = pd.DataFrame({f: data[f] for f in NPZ_FIELDS[:-1]}).rename(columns={"ids": "id"})
    items["id"] = items["id"].astype(str)
    items["modality"] = items["modality"].astype(str)
    bad = ~items["modality"].isin(MODALITIES)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"{path}: row {row} (id {items['id'].iloc[row]}) has modality "
                         f"{items['modality'].iloc[row]!r}; expected 'image' or 'music'.")
    if not np.all(np.isfinite(emb)):
        row = int(np.flatnonzero(~np.isfinite(emb).all(axis=1))[0])
        raise ValueError(f"{path}: row {row} (id {items['id'].iloc[row]}) of 'embedding' holds "
                         "NaN or infinite values; the run diverged. Fix: retrain with a lower lr.")
    return RunEmbeddings(items=items, embedding=emb, source=path)


# --- UMAP and its coordinates as an artifact --------------------------------------------------

def fit_umap(emb: np.ndarray, n_neighbors: int = 15, seed: int = 0, min_dist: float = 0.1,
             metric: str = "euclidean") -> np.ndarray:
    """2-D UMAP coordinates ``[N, 2]`` of the rows of ``emb`` (McInnes et al. 2018).

    With a seed, umap-learn runs single-threaded and gives the same coordinates on one machine;
    across machines (numba, BLAS) they differ slightly, hence :func:`save_coords`.
    """
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 2:
        raise ValueError(f"fit_umap: expected embeddings [N, D], got shape {emb.shape}")
    if not 2 <= n_neighbors < len(emb):
        raise ValueError(f"fit_umap: n_neighbors={n_neighbors} must be at least 2 and below the "
                         f"number of points ({len(emb)}). Fix: lower n_neighbors in params.")
    import umap  # imported here: umap-learn compiles with numba on import (~20 s)

    reducer = umap.UMAP(n_neighbors=n_neighbors, n_components=2, min_dist=min_dist,
                        metric=metric, random_state=seed, n_jobs=1)
    return np.asarray(reducer.fit_transform(emb), dtype=np.float64)


def coords_frame(run: RunEmbeddings, coords: np.ndarray) -> pd.DataFrame:
    """The run's items with their UMAP coordinates ``umap_x, umap_y``."""
    coords = np.asarray(coords)
    if coords.shape != (len(run.items), 2):
        raise ValueError(f"coords of shape {coords.shape} do not fit {len(run.items)} items")
    frame = run.items.copy()
    frame["umap_x"], frame["umap_y"] = coords[:, 0], coords[:, 1]
    return frame


def save_coords(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write UMAP coordinates to CSV (atomically); figures are redrawn from this file."""
    missing = [c for c in COORD_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"save_coords: frame lacks column(s) {missing}; needs {list(COORD_COLUMNS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    return path


def load_coords(path: str | os.PathLike) -> pd.DataFrame:
    """Read coordinates written by :func:`save_coords`, checking columns and values."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such coordinates file. Fix: run "
                                "notebooks/04_embeddings.ipynb, which fits UMAP and writes it.")
    frame = pd.read_csv(path, dtype={"id": str, "modality": str})
    missing = [c for c in COORD_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {list(COORD_COLUMNS)}. "
                         "Fix: rewrite it with cdcml_lib.explore.embedding.save_coords.")
    for col in ("valence", "arousal", "umap_x", "umap_y"):
        bad = ~np.isfinite(pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{path}: row {row + 2} (id {frame['id'].iloc[row]}), column '{col}' "
                             f"is {frame[col].iloc[row]!r}, not a number. Fix: rewrite the file.")
    bad = ~frame["modality"].isin(MODALITIES)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"{path}: row {row + 2}, column 'modality' is "
                         f"{frame['modality'].iloc[row]!r}; expected 'image' or 'music'.")
    return frame


# --- numbers of the space ---------------------------------------------------------------------

def _pair_distances(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distances of all unordered pairs within ``a`` (i < j), or all of ``a`` x ``b``."""
    # scipy's pdist/cdist: no [n, n, D] temporary (9 GB for 1,500 items of 512-d)
    from scipy.spatial.distance import cdist, pdist

    return pdist(a) if b is None else cdist(a, b).ravel()


def distance_correlations(emb: np.ndarray, va: np.ndarray, modality: Sequence[str],
                          max_items: int = 1500, seed: int = 0) -> pd.DataFrame:
    """How well embedding distances follow VA-label distances, per block of pairs.

    For every pair of items (i, j) take the Euclidean distance of their embeddings
    ||f_i - f_j||_2 and of their VA labels ||y_i - y_j||_2 (the distance inside Eq. 1 of
    Zhao et al. 2020; the ratio losses, Eqs. 2, 4 and 5, ask the first to follow the second).
    Returns one row per block: ``image-image`` and ``music-music`` (unordered pairs within one
    modality) and ``image-music`` (every cross pair), with the Spearman and Pearson correlations
    and the number of pairs. A modality with more than ``max_items`` items is subsampled (seeded)
    to keep the pair count quadratic-but-bounded.
    """
    from scipy.stats import pearsonr, spearmanr

    emb = np.asarray(emb, dtype=np.float64)
    va = np.asarray(va, dtype=np.float64)
    modality = np.asarray(modality).astype(str)
    if not (len(emb) == len(va) == len(modality)):
        raise ValueError(f"distance_correlations: {len(emb)} embeddings, {len(va)} labels and "
                         f"{len(modality)} modalities; they must be the same items")
    rng = np.random.default_rng(seed)
    index = {}
    for m in MODALITIES:
        idx = np.flatnonzero(modality == m)
        if len(idx) > max_items:
            idx = np.sort(rng.choice(idx, max_items, replace=False))
        index[m] = idx
    blocks = [("image-image", "image", None), ("music-music", "music", None),
              ("image-music", "image", "music")]
    rows = []
    for name, m1, m2 in blocks:
        i1 = index[m1]
        i2 = index[m2] if m2 else None
        if m2 is None:
            d_emb, d_va = _pair_distances(emb[i1]), _pair_distances(va[i1])
        else:
            d_emb, d_va = _pair_distances(emb[i1], emb[i2]), _pair_distances(va[i1], va[i2])
        ok = len(d_emb) >= 3 and np.ptp(d_emb) > 0 and np.ptp(d_va) > 0
        rows.append({"pairs": name, "n_pairs": len(d_emb),
                     "spearman": float(spearmanr(d_emb, d_va)[0]) if ok else np.nan,
                     "pearson": float(pearsonr(d_emb, d_va)[0]) if ok else np.nan})
    return pd.DataFrame(rows)


def umap_trustworthiness(emb: np.ndarray, coords: np.ndarray, n_neighbors: int = 5) -> float:
    """Trustworthiness of the 2-D map (Venna & Kaski 2001), in [0, 1]; 1 means every point's
    ``n_neighbors`` nearest neighbours on the map are also near it in the embedding space.

    A thin wrapper of ``sklearn.manifold.trustworthiness`` that checks the neighbourhood size
    (sklearn requires ``n_neighbors < N / 2``).
    """
    from sklearn.manifold import trustworthiness

    emb = np.asarray(emb, dtype=np.float64)
    coords = np.asarray(coords, dtype=np.float64)
    if len(emb) != len(coords):
        raise ValueError(f"umap_trustworthiness: {len(emb)} embeddings but {len(coords)} coordinates")
    if not 1 <= n_neighbors < len(emb) / 2:
        raise ValueError(f"umap_trustworthiness: n_neighbors={n_neighbors} must be in "
                         f"[1, N/2) with N={len(emb)} points")
    return float(trustworthiness(emb, coords, n_neighbors=n_neighbors))


def modality_gap(emb: np.ndarray, modality: Sequence[str]) -> dict[str, float]:
    """The distance between the two modalities' centres relative to their spread.

    With c_I, c_M the means of the image and music embeddings, and the spread of a modality
    r_X = sqrt(mean_i ||f_i - c_X||^2) (the root-mean-square distance of its points to its own
    centre), the gap is

        gap = ||c_I - c_M||_2 / sqrt((r_I^2 + r_M^2) / 2).

    0 means the two clouds share a centre; around 1 the centres lie one typical radius apart;
    well above 1 the modalities sit in separate regions of the "shared" space, which is what a
    model without cross-modal metric losses (Eqs. 2-3 of Zhao et al. 2020) tends to learn.
    Returns ``centre_distance``, ``spread_image``, ``spread_music`` and ``gap``.
    """
    emb = np.asarray(emb, dtype=np.float64)
    modality = np.asarray(modality).astype(str)
    parts = {m: emb[modality == m] for m in MODALITIES}
    for m, part in parts.items():
        if len(part) == 0:
            raise ValueError(f"modality_gap: no {m} embeddings; both modalities are needed")
    centres = {m: p.mean(axis=0) for m, p in parts.items()}
    spreads = {m: float(np.sqrt(np.mean(np.sum((p - centres[m]) ** 2, axis=1))))
               for m, p in parts.items()}
    centre_distance = float(np.linalg.norm(centres["image"] - centres["music"]))
    pooled = np.sqrt((spreads["image"] ** 2 + spreads["music"] ** 2) / 2)
    return {"centre_distance": centre_distance, "spread_image": spreads["image"],
            "spread_music": spreads["music"],
            "gap": centre_distance / pooled if pooled > 0 else float("inf")}


def modality_mixing(coords: np.ndarray, modality: Sequence[str], k: int = 15) -> dict[str, float]:
    """How mixed the two modalities are on a map: for each point, the fraction of its ``k``
    nearest neighbours (Euclidean, on ``coords``; itself excluded) that share its modality.

    Returns ``same_modality_share`` (the mean over all points), ``same_modality_share_<m>`` for
    each modality, and ``chance_share``: the same mean when the modality labels are assigned at
    random, sum_m n_m (n_m - 1) / (N (N - 1)). 1.0 means every point's neighbours are of its own
    modality (two separate clouds); near ``chance_share`` the modalities are fully mixed.
    """
    from scipy.spatial import cKDTree

    coords = np.asarray(coords, dtype=np.float64)
    modality = np.asarray(modality).astype(str)
    n = len(coords)
    if len(modality) != n:
        raise ValueError(f"modality_mixing: {n} points but {len(modality)} modality labels")
    if not 1 <= k < n:
        raise ValueError(f"modality_mixing: k={k} must be in [1, N) with N={n} points")
    _, idx = cKDTree(coords).query(coords, k=k + 1)
    # drop each point itself (the first hit, or wherever it sits among exact duplicates)
    neighbours = np.array([[j for j in row if j != i][:k] for i, row in enumerate(idx)])
    same = (modality[neighbours] == modality[:, None]).mean(axis=1)
    out = {"same_modality_share": float(same.mean())}
    counts = {m: int((modality == m).sum()) for m in MODALITIES}
    for m in MODALITIES:
        out[f"same_modality_share_{m}"] = float(same[modality == m].mean()) if counts[m] else np.nan
    out["chance_share"] = float(sum(c * (c - 1) for c in counts.values()) / (n * (n - 1)))
    return out


def space_numbers(run: RunEmbeddings, coords: np.ndarray, n_neighbors: int) -> dict[str, float]:
    """Every number of one run's space in one flat dict (for the notebook's table and JSON)."""
    corr = distance_correlations(run.embedding, run.va, run.modality)
    out: dict[str, float] = {}
    for _, row in corr.iterrows():
        out[f"spearman_{row['pairs']}"] = row["spearman"]
        out[f"pearson_{row['pairs']}"] = row["pearson"]
    k = max(1, min(n_neighbors, (len(coords) - 1) // 2))
    out["trustworthiness"] = umap_trustworthiness(run.embedding, coords, k)
    gap = modality_gap(run.embedding, run.modality)
    out["modality_gap"] = gap["gap"]
    out["centre_distance"] = gap["centre_distance"]
    out["spread_image"], out["spread_music"] = gap["spread_image"], gap["spread_music"]
    out.update(modality_mixing(coords, run.modality, max(1, min(n_neighbors, len(coords) - 1))))
    return out


# --- matching: the best partners of a new image or clip --------------------------------------
# best_matches lives with the rest of matching a user's files in explore/match.py (a song read
# over its whole length, images through the training loader); kept importable from here.
best_matches = match.best_matches


# --- the interactive map ----------------------------------------------------------------------

def png_data_uri(image: np.ndarray) -> str:
    """A uint8 ``[H,W,3]`` image as a ``data:image/png;base64,...`` URI (for HTML tooltips)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# Installed first in <head>, before Bokeh's own scripts, so that it sees every error. It writes
# what a headless browser test needs into the DOM: the errors, the rendered point count and the
# colouring in use. "#colour=arousal" in the URL switches the colouring through the widget, so a
# test exercises the CustomJS callback too.
_STATUS_SCRIPT = """
<script>
(function () {
  window.__mapErrors = [];
  window.onerror = function (msg, src, line) { window.__mapErrors.push(msg + " @" + line); };
  window.addEventListener("unhandledrejection", function (e) {
    window.__mapErrors.push("unhandled rejection: " + e.reason);
  });
  function status() {
    var el = document.getElementById("map-status");
    if (!el) { el = document.createElement("div"); el.id = "map-status";
               el.style.display = "none"; document.body.appendChild(el); }
    return el;
  }
  function publish(points, colour, ready) {
    var el = status();
    el.setAttribute("data-errors", String(window.__mapErrors.length));
    el.setAttribute("data-points", String(points));
    el.setAttribute("data-colour", colour);
    el.setAttribute("data-ready", ready ? "1" : "0");
    el.textContent = window.__mapErrors.join("\\n");
  }
  var tries = 0;
  function poll() {
    tries += 1;
    var doc = window.Bokeh && Bokeh.documents && Bokeh.documents[0];
    var src = doc && doc.get_model_by_name("umap-points");
    var sel = doc && doc.get_model_by_name("colour-select");
    // a Bokeh plot draws into a canvas inside its shadow DOM once its view is built
    var views = document.querySelectorAll(".bk-Figure, .bk-root, [class*=bk-]").length;
    if (src && sel && views > 0) {
      var want = (location.hash.match(/colour=(\\w+)/) || [])[1];
      if (want && sel.value !== want) { sel.value = want; }
      setTimeout(function () {
        var r = doc.get_model_by_name("umap-renderer");
        var field = r ? (r.glyph.fill_color.field || "") : "";
        publish(src.data.umap_x.length, field, true);
      }, 200);
      return;
    }
    publish(0, "", false);
    if (tries < 200) { setTimeout(poll, 50); }
  }
  document.addEventListener("DOMContentLoaded", function () { setTimeout(poll, 50); });
})();
</script>
"""


def write_map_html(frame: pd.DataFrame, path: str | os.PathLike, thumbnails: dict | None = None,
                   title: str = "The shared space (UMAP)") -> Path:
    """Write an interactive UMAP map as one standalone HTML page (Bokeh, resources inline).

    ``frame`` has ``id, modality, valence, arousal, umap_x, umap_y`` (as from
    :func:`coords_frame` or :func:`load_coords`; ``pred_valence``/``pred_arousal`` are shown when
    present). ``thumbnails`` maps an image id to a uint8 ``[H,W,3]`` array shown in its tooltip.

    The reader pans and zooms, picks the colouring (valence, arousal or modality) in a select
    widget, and hovers a point to see its id, modality and VA, with a thumbnail for an image.

    Why Bokeh and not Plotly: Bokeh's hover tooltips render custom HTML, so a tooltip can show
    an image (a base64 PNG data URI), and its widgets switch colour mappers in the browser
    through CustomJS with no server; Bokeh's JavaScript is embedded inline (``INLINE``
    resources), so the page opens from a file with no network.
    """
    from bokeh.embed import file_html
    from bokeh.layouts import column
    from bokeh.models import (CategoricalColorMapper, ColorBar, ColumnDataSource, CustomJS,
                              Div, HoverTool, LinearColorMapper, Select)
    from bokeh.palettes import Cividis256, Colorblind3, Viridis256
    from bokeh.plotting import figure
    from bokeh.resources import INLINE
    from bokeh.transform import factor_mark

    missing = [c for c in COORD_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"write_map_html: frame lacks column(s) {missing}")
    thumbnails = thumbnails or {}
    data = {c: frame[c].to_numpy() for c in COORD_COLUMNS}
    data["id"] = data["id"].astype(str)
    data["modality"] = data["modality"].astype(str)
    for c in ("pred_valence", "pred_arousal"):
        data[c] = frame[c].to_numpy() if c in frame.columns else np.full(len(frame), np.nan)
    data["thumb"] = [
        f'<img src="{png_data_uri(thumbnails[i])}" width="64" height="64" '
        f'style="image-rendering: pixelated; border: 1px solid #888">' if i in thumbnails else ""
        for i in data["id"]]
    source = ColumnDataSource(data, name="umap-points")

    mappers = {
        "valence": LinearColorMapper(palette=Viridis256, low=0, high=1),
        "arousal": LinearColorMapper(palette=Cividis256, low=0, high=1),
        "modality": CategoricalColorMapper(palette=list(Colorblind3[:2]), factors=list(MODALITIES)),
    }
    fig = figure(title=title, width=760, height=620, tools="pan,wheel_zoom,box_zoom,reset,save",
                 active_scroll="wheel_zoom", x_axis_label="UMAP 1", y_axis_label="UMAP 2")
    renderer = fig.scatter("umap_x", "umap_y", source=source, size=8, alpha=0.85,
                           marker=factor_mark("modality", ["circle", "triangle"], list(MODALITIES)),
                           fill_color={"field": "valence", "transform": mappers["valence"]},
                           line_color=None, name="umap-renderer", legend_field="modality")
    fig.legend.title = "marker"
    fig.legend.location = "top_left"
    bar = ColorBar(color_mapper=mappers["valence"], title="valence", width=12)
    fig.add_layout(bar, "right")
    fig.add_tools(HoverTool(renderers=[renderer], tooltips="""
        <div style="font: 12px sans-serif; max-width: 220px">
          <b>@id</b> (@modality)<br>
          valence @valence{0.00}, arousal @arousal{0.00}<br>
          predicted @pred_valence{0.00}, @pred_arousal{0.00}<br>
          @thumb{safe}
        </div>"""))
    select = Select(title="Colour by", value="valence", options=list(mappers), name="colour-select")
    select.js_on_change("value", CustomJS(args=dict(r=renderer, bar=bar, mappers=mappers), code="""
        const f = cb_obj.value;
        r.glyph.fill_color = {field: f, transform: mappers[f]};
        bar.color_mapper = mappers[f];
        bar.title = f;
    """))
    note = Div(text="Drag to pan, scroll to zoom, hover a point for its labels. "
                    "Circles are images, triangles music clips.")
    html = file_html(column(select, fig, note), resources=INLINE, title=title)
    if "<head>" not in html:
        raise RuntimeError("bokeh's page template has no <head>; cannot install the status script")
    html = html.replace("<head>", "<head>" + _STATUS_SCRIPT, 1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, html)
    return path


def write_numbers(numbers: dict[str, dict[str, float]], out_dir: str | os.PathLike) -> pd.DataFrame:
    """Write ``{run: {number: value}}`` to ``numbers.json`` and ``numbers.csv`` in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(numbers)
    atomic_write_text(out_dir / "numbers.json", json.dumps(
        {r: {k: (None if not np.isfinite(v) else float(v)) for k, v in d.items()}
         for r, d in numbers.items()}, indent=2) + "\n")
    atomic_write_text(out_dir / "numbers.csv",
                      table.to_csv(index_label="number", float_format="%.4f"))
    return table
