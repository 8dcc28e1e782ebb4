"""Patch classification of a raster (``satclassify:classifypatches``, QGIS env): a patch classifier (CNN-class,
e.g. trained on BigEarthNet or EuroSAT) mapped over the raster's patch grid -> one polygon per grid cell.

* The grid: cells of the model's patch size (its fixed input, else the card's ``tile_size``) from the top-left
  corner of the raster (or of EXTENT's window), every patch size pixels; only whole cells (a partial row or
  column at the right / bottom edge is left out and logged).
* Each cell's class probabilities: the mean of the model's output over the cell's pixels (a patch classifier
  gives one value per tile, broadcast: the mean is that value). A multilabel (sigmoid) head labels a cell with
  every class whose probability reaches its threshold (the card's per-class thresholds tuned on validation, 0.5
  without them, or THRESHOLD for all classes); a multiclass (softmax) head with its top class.
* Cells whose pixels are all nodata are left out; ``valid`` is the fraction of valid pixels (nodata as the
  classify tool defines it: the bands' nodata value, DN 0 in Sentinel-2 stacks without one).
* Output: a GeoPackage layer ``patches`` in the raster's CRS with ``row``, ``col``, ``labels`` (class names
  joined by "; "), ``top_value``, ``top_label``, ``top_p``, ``valid`` and one ``p_<value>`` (0-1) per class,
  written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from osgeo import gdal, ogr

from .. import crs, raster
from ..contract.errors import SatClassifyError
from ..contract.feedback import Monitor
from .inference import Model, input_bounds, map_bands, scale_coefficients
from .options import ClassifyOptions
from .pipeline import (
    _fold_scaling,
    _nodata_values,
    check_pixel_size,
    extent_to_window,
    gdal_scaling,
    invalid_pixels,
    negative_dn_invalid,
    open_model,
)

gdal.UseExceptions()
ogr.UseExceptions()

LAYER = "patches"
DEFAULT_BATCH = 16


@dataclass
class PatchesResult:
    output: str
    cells: int
    skipped_nodata: int
    patch_size: int
    multilabel: bool
    thresholds: List[float]
    classes: list
    provider: str
    seconds: float
    top_counts: dict = field(default_factory=dict)


def cell_labels(probs: np.ndarray, multilabel: bool, thresholds: Sequence[float]):
    """Per cell (rows of ``probs`` (N, K)): the indices of its labels and its top class index. A multilabel cell's
    labels are the classes with probability >= their threshold (highest first); a multiclass cell's its top class."""
    top = probs.argmax(1)
    if not multilabel:
        return [[int(t)] for t in top], top
    th = np.asarray(thresholds, np.float64)
    out = []
    for row in probs:
        idx = np.nonzero(row >= th)[0]
        out.append([int(i) for i in idx[np.argsort(-row[idx], kind="stable")]])
    return out, top


def classify_patches(
    path: str,
    model: Union[str, Model],
    output: str,
    threshold: Optional[float] = None,
    options: Optional[ClassifyOptions] = None,
    monitor: Optional[Monitor] = None,
) -> PatchesResult:
    """Classify the patch grid of ``path`` with ``model`` (a path or a loaded :class:`Model`) into the GeoPackage
    ``output``. Of ``options`` the bands, extent, device, batch size and threads apply (the patches are the
    model's input size: a tile size or resampling is refused)."""
    options = options or ClassifyOptions()
    monitor = monitor or Monitor()
    log = monitor.info
    if options.tile_size or options.resample:
        raise SatClassifyError(
            "classify patches runs on patches of the model's input size: leave the tile size at "
            "0 and resampling off (resample the raster to the model's resolution first)"
        )
    t0 = time.time()
    if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
        raise SatClassifyError(f"THRESHOLD {threshold} must be a probability between 0 and 1")
    ds = raster.open_raster(path, "input raster")
    model = open_model(model, options, monitor)
    card = model.card
    head = card.heads[0]
    if len(card.heads) > 1:
        log(f"the model has {len(card.heads)} heads: the patches use the first, '{head.name}'")
    multilabel = head.multilabel
    thresholds = [float(threshold)] * head.num_classes if threshold is not None else head.class_thresholds()
    if threshold is not None and not multilabel:
        log("THRESHOLD ignored: the model is single-label (softmax): each cell gets its top class")
    grid = _PatchGrid.plan(ds, model, options, log)
    records, skipped = _score_cells(ds, model, grid, options, monitor)
    probs = np.array([rec[2] for rec in records])
    labels, top = cell_labels(probs, multilabel, thresholds)
    classes = head.classes
    counts: Dict[str, int] = {}
    for t in top:
        counts[classes[int(t)].name] = counts.get(classes[int(t)].name, 0) + 1
    p, (x0, y0) = grid.p, grid.origin
    with raster.AtomicOutput(output) as tmp:
        _write(tmp, ds.GetProjection(), grid.gt, x0, y0, p, records, labels, top, classes)
    log(
        f"{len(records)} patches of {p} x {p} pixels ({grid.nrow} x {grid.ncol} grid) -> {output}"
        + (f"; {skipped} all-nodata patches left out" if skipped else "")
        + "; top labels: "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    )
    monitor.progress(1.0)
    return PatchesResult(
        output,
        len(records),
        skipped,
        p,
        multilabel,
        thresholds,
        [c.to_dict() for c in classes],
        model.providers[0] if model.providers else "",
        time.time() - t0,
        counts,
    )


@dataclass
class _PatchGrid:
    """The cells of one run: patch size ``p``, ``nrow`` x ``ncol`` cells from ``origin`` (pixel column, row),
    the model bands' numbers, nodata, scaling and clip, and the input's geotransform."""

    p: int
    origin: tuple
    nrow: int
    ncol: int
    band_numbers: list
    nodata: list
    scale: tuple
    bounds: Optional[tuple]
    negative_invalid: bool
    gt: tuple

    @classmethod
    def plan(cls, ds, model: Model, options: ClassifyOptions, log) -> "_PatchGrid":
        card = model.card
        p = model.fixed_hw[0] if model.fixed_hw and model.fixed_hw[0] == model.fixed_hw[1] else card.tile_size
        if model.fixed_hw and model.fixed_hw[0] != model.fixed_hw[1]:
            raise SatClassifyError(
                f"the model takes {model.fixed_hw[0]} x {model.fixed_hw[1]} pixels: patches are "
                "square, use a model with a square input"
            )
        if card.architecture != "cnn_class":
            log(
                f"note: '{card.architecture}' is not a patch classifier: each cell gets the mean of its pixels' "
                "probabilities"
            )
        band_numbers = map_bands(card.bands, raster.band_names(ds), options.bands, log)
        nodata = _nodata_values(ds, band_numbers, model)
        scale = _fold_scaling(scale_coefficients(card), gdal_scaling(ds, band_numbers, log))
        gt = ds.GetGeoTransform()
        crs.north_up(gt, "input raster")
        negative_invalid = negative_dn_invalid(ds, band_numbers, model)
        extent = options.extent
        x0, y0, w, h = extent_to_window(ds, extent) if extent else (0, 0, ds.RasterXSize, ds.RasterYSize)
        nrow, ncol = h // p, w // p
        if nrow == 0 or ncol == 0:
            raise SatClassifyError(
                f"the {'extent' if extent else 'raster'} is {w} x {h} pixels, smaller than one "
                f"{p} x {p} patch of the model: choose a larger EXTENT or raster"
            )
        if h % p or w % p:
            log(
                f"{w % p} column(s) and {h % p} row(s) of pixels at the right / bottom edge do not fill a whole "
                f"{p} x {p} patch and are left out"
            )
        check_pixel_size(
            ds,
            card.resolution_m,
            log,
            fix="each patch covers another ground area than in training; "
            "resample the raster to the model's resolution first",
        )
        return cls(p, (x0, y0), nrow, ncol, band_numbers, nodata, scale, input_bounds(card), negative_invalid, gt)


def _score_cells(ds, model: Model, grid: _PatchGrid, options: ClassifyOptions, monitor: Monitor):
    """The model over every cell with a valid pixel, one row of cells at a time: (records (row, col, class
    probabilities, valid fraction) of the cells with finite scores, cells left out as all nodata)."""
    log = monitor.info
    p, (x0, y0), nrow, ncol = grid.p, grid.origin, grid.nrow, grid.ncol
    (a, b), bounds, n_bands = grid.scale, grid.bounds, len(grid.band_numbers)
    bs = model.batch_dim or int(options.batch_size) or DEFAULT_BATCH
    records = []
    skipped = negatives = nonfinite = 0
    for r in range(nrow):
        monitor.check()
        strip = np.stack([ds.GetRasterBand(bn).ReadAsArray(x0, y0 + r * p, ncol * p, p) for bn in grid.band_numbers])
        invalid, n_neg = invalid_pixels(strip, grid.nodata, strip.dtype.kind == "f", grid.negative_invalid)
        negatives += n_neg
        x = strip.astype(np.float32) * a[:, None, None] + b[:, None, None]
        if bounds is not None:
            np.clip(x, bounds[0][:, None, None], bounds[1][:, None, None], out=x)
        x[:, invalid] = 0.0
        cells = x.reshape(n_bands, p, ncol, p).transpose(2, 0, 1, 3)  # (ncol, C, p, p)
        valid = 1.0 - invalid.reshape(p, ncol, p).mean(axis=(0, 2))
        keep = np.nonzero(valid > 0)[0]
        skipped += ncol - len(keep)
        for s in range(0, len(keep), bs):
            idx = keep[s : s + bs]
            batch = np.ascontiguousarray(cells[idx])
            n = len(idx)
            if model.batch_dim and n < model.batch_dim:
                batch = np.concatenate([batch, np.zeros((model.batch_dim - n,) + batch.shape[1:], np.float32)])
            out = model.run(batch)[0][:n]
            probs = out.reshape(n, out.shape[1], -1).mean(axis=2).astype(np.float64)
            for c, pr in zip(idx, probs):
                if not np.isfinite(pr).all():  # NaN / infinite scores are no class: the cell is left out
                    nonfinite += 1
                    continue
                records.append((r, int(c), pr, float(valid[c])))
        monitor.progress(0.9 * (r + 1) / nrow)
    if negatives:
        log(
            f"warning: {negatives} pixels hold a negative value in a model band, which is no valid Sentinel-2 "
            "digital number (a fill value, or a stack written with another convention): they are nodata"
        )
    if nonfinite and not records:
        raise SatClassifyError(
            f"the model gave no finite score (NaN or infinite) for any of the {nonfinite} patches: no output was "
            "written. The model or its card's preprocessing is broken (e.g. a std of 0, NaN weights, or input values "
            "outside what it was trained on): re-export the model, or check its mean/std and input_scale"
        )
    if nonfinite:
        log(
            f"warning: the model gave non-finite scores (NaN or infinite) for {nonfinite} of "
            f"{nonfinite + len(records)} patches: they are left out (no class is read from them)"
        )
    if not records:
        raise SatClassifyError(
            "every patch of the raster is nodata: nothing to classify (check the raster, its nodata value and EXTENT)"
        )
    return records, skipped


def _write(path, wkt, gt, x0, y0, p, records, labels, top, classes):
    fields = (
        ("row", ogr.OFTInteger),
        ("col", ogr.OFTInteger),
        ("labels", ogr.OFTString),
        ("top_value", ogr.OFTInteger),
        ("top_label", ogr.OFTString),
        ("top_p", ogr.OFTReal),
        ("valid", ogr.OFTReal),
    )
    features = (
        (
            y0 + r * p,
            x0 + c * p,
            {
                "row": int(r),
                "col": int(c),
                "labels": "; ".join(classes[i].name for i in labs),
                "top_value": int(classes[int(t)].value),
                "top_label": classes[int(t)].name,
                "top_p": float(pr[int(t)]),
                "valid": round(float(valid), 6),
            },
            pr,
        )
        for (r, c, pr, valid), labs, t in zip(records, labels, top)
    )
    raster.write_squares(path, LAYER, wkt, gt, p, fields, "p_", classes, features)
