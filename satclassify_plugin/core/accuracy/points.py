"""Accuracy and area from a reference sample of points (QGIS env: GDAL): the stratified estimator of Olofsson et
al. (2014) in :mod:`.estimator`, strata = the classified map's classes.

:func:`assess_points` counts the mapped pixels of each class (block by block, MASK / IGNORE / RECLASSIFY / LEVEL
as for a reference raster), reads the map class under every point, and builds the error matrix of sample counts
(rows = map stratum, columns = reference class). Points are never silently used or dropped: each one left out is
counted under ``sample`` in the metrics (outside the map, on nodata / an ignored or unmapped map value, masked
out, empty reference, unknown reference class, ignored reference value) and a ``stratum`` attribute that disagrees
with the map is reported (``stratum_mismatch``; the map decides the stratum).

The metrics dict keeps the keys of the raster comparison (``compute_metrics`` run on the estimated
area-proportion matrix, so OA, kappa, precision = user's accuracy, recall = producer's accuracy, F1, IoU are the
population estimates; ``support`` / ``predicted`` / ``confusion_matrix`` are sample counts) and adds
``estimator``, the 95 % confidence half-widths, ``area_proportion_matrix`` (rows = map, columns = reference),
``area_estimates`` and ``sample``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
from osgeo import gdal

from .. import raster
from ..contract.errors import SatClassifyError
from ..contract.feedback import Monitor
from . import estimator
from . import tables as accuracy
from .assess import (
    DEFAULT_BLOCK,
    AccuracyResult,
    compared_classes,
    nodata_of,
    open_aligned,
    open_class_raster,
    pixel_area_ha,
    present_values,
)
from .plan import (
    MapOptions,
    SampleTally,
    error_matrix,
    known_reference_classes,
    reference_class,
    sample_metrics,
)


def parse_reference(value):
    """A reference attribute -> int, None (empty) or the string "unknown" (not a whole number)."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return int(value) if value == int(value) else "unknown"
    text = str(value).strip()
    if text == "" or text.upper() in ("NULL", "NONE", "NAN"):
        return None
    try:
        f = float(text)
    except ValueError:
        return "unknown"
    return int(f) if f == int(f) else "unknown"


def reference_field(names: List[str], field: str, log=lambda m: None) -> str:
    """The points' field that holds the reference class: REFERENCE_FIELD when given (it must exist among ``names``),
    else the field 'reference' (logged); refused with the fields the layer has. One rule for the Processing tool and
    the ``satclassify assess`` command."""
    if not field:
        if "reference" not in names:
            raise SatClassifyError(
                "no REFERENCE_FIELD given: name the field of the points that holds the "
                f"reference class (the layer has: {', '.join(names) or 'no field'})"
            )
        field = "reference"
        log("REFERENCE_FIELD is empty: using the points' field 'reference'")
    if field not in names:
        raise SatClassifyError(f"the reference points have no field '{field}' (fields: {', '.join(names)})")
    return field


def _cell_of(gt, x, y):
    col = math.floor((x - gt[0]) / gt[1])
    row = math.floor((y - gt[3]) / gt[5])
    return row, col


@dataclass
class MapInputs:
    """The classified raster of a point assessment (its transform, grid and pixel area) and the optional mask
    on its grid."""

    cls_ds: gdal.Dataset
    area: float
    nodata: Optional[int]
    tc: accuracy.MapTransform
    mask_ds: Optional[gdal.Dataset]
    mask_nodata: Optional[int]
    mask_src: Optional[gdal.Dataset] = None  # the mask as opened (kept open while its warp is read)

    @property
    def gt(self):
        return self.cls_ds.GetGeoTransform()

    @property
    def band(self):
        return self.cls_ds.GetRasterBand(1)

    @property
    def mband(self):
        return self.mask_ds.GetRasterBand(1) if self.mask_ds is not None else None

    @classmethod
    def open(cls, classified: str, mask: Optional[str], opts: MapOptions, log) -> "MapInputs":
        cls_ds = open_class_raster(classified, "classified")
        area = pixel_area_ha(cls_ds, "classified raster")
        gt = cls_ds.GetGeoTransform()
        if abs(gt[2]) > 0 or abs(gt[4]) > 0:
            raise SatClassifyError("rotated rasters are not supported: warp the classified raster to a north-up grid")
        nodata = nodata_of(cls_ds)
        tc = opts.transform("classified", nodata, present_values(cls_ds).tolist())
        mask_ds = mask_src = None
        if mask:
            mask_ds, mask_src = open_aligned(mask, cls_ds, "mask", log)
        mask_nodata = nodata_of(mask_src) if mask_src is not None else None
        return cls(cls_ds, area, nodata, tc, mask_ds, mask_nodata, mask_src)

    def masked(self, mk: np.ndarray) -> np.ndarray:
        """Where the mask values ``mk`` leave pixels out (0 or the mask's nodata)."""
        out = mk == 0
        if self.mask_nodata is not None:
            out |= mk == self.mask_nodata
        return out


def _count_strata(src: MapInputs, opts: MapOptions, block: int, monitor: Monitor):
    """(mapped pixels by transformed class value, masked pixels, strata): the pass over the windows."""
    counts = np.zeros(accuracy.MAX_VALUE + 1, dtype=np.int64)
    band, mband = src.band, src.mband
    windows = list(raster.iter_windows(src.cls_ds.RasterXSize, src.cls_ds.RasterYSize, block))
    masked_pixels = 0
    for n, (x, y, w, h) in enumerate(windows):
        monitor.check()
        valid = None
        if mband is not None:
            valid = ~src.masked(mband.ReadAsArray(x, y, w, h))
            masked_pixels += int((~valid).sum())
        c = src.tc.apply(band.ReadAsArray(x, y, w, h), valid)
        c = c[c >= 0]
        if c.size:
            counts[: int(c.max()) + 1] += np.bincount(c)
        monitor.progress((n + 1) / len(windows))
    strata = [int(v) for v in np.flatnonzero(counts)]
    if not strata:
        raise SatClassifyError(
            f"the classified raster has no pixel left as a stratum (IGNORE = {opts.ignore_list}, "
            f"nodata = {src.nodata}, mask, reclassify table / LEVEL): nothing to estimate"
        )
    return counts, masked_pixels, strata


def _tally_points(points: List[dict], parsed, src: MapInputs, strata, tr, known, opts: MapOptions) -> SampleTally:
    """Each point's map stratum (read under it) and reference class, or why it is left out."""
    tally = SampleTally()
    gt, band, mband, tc = src.gt, src.band, src.mband, src.tc
    height, width = src.cls_ds.RasterYSize, src.cls_ds.RasterXSize
    for p, ref in zip(points, parsed):
        x, y = p.get("x"), p.get("y")
        if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
            tally.skip("outside_map", p)
            continue
        row, col = _cell_of(gt, x, y)
        if not (0 <= row < height and 0 <= col < width):
            tally.skip("outside_map", p)
            continue
        if mband is not None and src.masked(mband.ReadAsArray(col, row, 1, 1))[0, 0]:
            tally.skip("masked_out", p)
            continue
        raw_map = int(band.ReadAsArray(col, row, 1, 1)[0, 0])
        m = int(tc._map(np.array([raw_map if raw_map not in tc.ignore else -1], np.int64))[0][0])
        if m < 0 or m not in strata:
            tally.skip("on_map_nodata", p, f" (map value {raw_map})")
            continue
        stratum_attr = parse_reference(p.get("stratum"))
        if isinstance(stratum_attr, int) and stratum_attr != raw_map:
            tally.stratum_mismatch(p, stratum_attr, raw_map)
        kind, detail, r = reference_class(ref, p.get("reference"), tr, opts.ignore_list, known)
        if kind:
            tally.skip(kind, p, detail)
            continue
        tally.pairs.append((m, r))
    return tally


def assess_points(
    classified: str,
    points: List[dict],
    mask: Optional[str] = None,
    block: int = DEFAULT_BLOCK,
    points_source: str = "",
    reference_field: str = "",
    options: Optional[MapOptions] = None,
    monitor: Optional[Monitor] = None,
    **choices,
) -> AccuracyResult:
    """``points``: dicts with ``x``, ``y`` (in the classified raster's CRS; None when the point could not be
    transformed), ``reference`` (the attribute as read), optional ``stratum`` and ``id``. ``options`` (or its
    names as keywords: ignore, reclassify, names, level, level_maps) are the user's choices
    (:class:`.plan.MapOptions`)."""
    monitor = monitor or Monitor()
    log = monitor.info
    opts = options or MapOptions.read(**choices)
    if not points:
        raise SatClassifyError(
            "the reference point layer has no point: give the sample points (e.g. from "
            "satclassify:samplingdesign) with their reference class filled in"
        )
    src = MapInputs.open(classified, mask, opts, log)
    counts, masked_pixels, strata = _count_strata(src, opts, block, monitor.sub(0.0, 0.9))
    # reference values: the reference map's transform (RECLASSIFY rows, LEVEL), and the classes that can exist
    parsed = [parse_reference(p.get("reference")) for p in points]
    tr = opts.transform("reference", None, [v for v in sorted({v for v in parsed if isinstance(v, int)}) if v >= 0])
    known = known_reference_classes(strata, opts, raster.categories(src.cls_ds))
    tally = _tally_points(points, parsed, src, strata, tr, known, opts)
    monitor.progress(0.95)
    for warning in tally.warnings():
        log(warning)
    if not tally.pairs:
        raise SatClassifyError(
            f"no usable reference point: of {len(points)} points "
            + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in tally.skipped.items() if v)
            + f". Fill in the reference field '{reference_field}' with class values of the map, and check that the "
            "points lie on the classified raster"
        )
    values, index, n_ij = error_matrix(tally.pairs, strata)
    est = estimator.stratified_estimates(n_ij, [counts[v] for v in values], values, src.area)
    if est["single_point_strata"]:
        log(
            f"WARNING: stratum/strata {est['single_point_strata']} hold a single point: their variance cannot be "
            "estimated (counted as 0, so the confidence intervals are too narrow); add points there"
        )
    table = compared_classes(
        values,
        opts.names_table,
        opts.level,
        opts.level_maps,
        src.cls_ds,
        src.cls_ds,
        opts.transformed("classified"),
        True,
    )
    metrics = sample_metrics(n_ij, values, index, est, table)
    metrics["sample"] = {
        "points": len(points),
        "used": len(tally.pairs),
        **tally.skipped,
        "stratum_mismatch": tally.mismatch,
        "single_point_strata": est["single_point_strata"],
        "examples": {k: v for k, v in tally.examples.items() if v},
    }
    tc = src.tc
    metrics["inputs"] = {
        "classified": classified,
        "reference_points": points_source or None,
        "reference_field": reference_field,
        "mask": mask or None,
        "ignore": opts.ignore_list,
        "nodata_classified": src.nodata,
        **opts.inputs(),
        "clc_source": {w: t.level_source for w, t in (("classified", tc), ("reference", tr)) if t.level} or None,
        "scale": 1,
        "width": src.cls_ds.RasterXSize,
        "height": src.cls_ds.RasterYSize,
        "pixel_size": abs(src.gt[1]),
        "pixel_area_ha": src.area,
        "total_area_ha": est["total_area_ha"],
    }
    metrics["excluded"] = {
        "masked_out": masked_pixels,
        "ignored_in_classified": tc.ignored,
        "unmapped_in_classified": tc.unmapped,
    }
    monitor.progress(1.0)
    return AccuracyResult(metrics)
