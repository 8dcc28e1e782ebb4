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
from typing import Callable, List, Optional

import numpy as np

from .. import raster
from ..contract import clc
from ..contract.errors import SatClassifyError
from ..contract.feedback import Canceled
from ..contract.metrics import compute_metrics
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
    read_options,
)

SKIPPED = ("outside_map", "on_map_nodata", "masked_out", "empty_reference", "unknown_reference",
           "ignored_reference")


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


def _transform(which, ignore_list, nodata, recl, level, level_maps, raw_values):
    ign = set(ignore_list) | ({nodata} if nodata is not None else set())
    base = accuracy.MapTransform(which, ign, None, recl.for_map(which))
    use = level if (level and level_maps in ("both", which)) else None
    source = "grid"
    if use:
        source = accuracy.detect_clc_source(base.map_values([v for v in raw_values if v not in ign]), which)
    return accuracy.MapTransform(which, ign, None, recl.for_map(which), use, source, ignore_after=ignore_list)


def _cell_of(gt, x, y):
    col = math.floor((x - gt[0]) / gt[1])
    row = math.floor((y - gt[3]) / gt[5])
    return row, col


def assess_points(classified: str, points: List[dict], mask: Optional[str] = None, ignore="0",
                  reclassify: Optional[str] = None, names: Optional[str] = None, level=None,
                  level_maps: str = "both", block: int = DEFAULT_BLOCK, points_source: str = "",
                  reference_field: str = "", progress: Optional[Callable[[float], None]] = None,
                  is_canceled: Optional[Callable[[], bool]] = None,
                  log: Optional[Callable[[str], None]] = None) -> AccuracyResult:
    """``points``: dicts with ``x``, ``y`` (in the classified raster's CRS; None when the point could not be
    transformed), ``reference`` (the attribute as read), optional ``stratum`` and ``id``."""
    log = log or (lambda m: None)
    pr = progress or (lambda f: None)
    lv, ignore_list, recl, names_table = read_options(level, level_maps, ignore, reclassify, names)
    if not points:
        raise SatClassifyError("the reference point layer has no point: give the sample points (e.g. from "
                               "satclassify:samplingdesign) with their reference class filled in")
    cls_ds = open_class_raster(classified, "classified")
    area = pixel_area_ha(cls_ds, "classified raster")
    width, height = cls_ds.RasterXSize, cls_ds.RasterYSize
    gt = cls_ds.GetGeoTransform()
    if abs(gt[2]) > 0 or abs(gt[4]) > 0:
        raise SatClassifyError("rotated rasters are not supported: warp the classified raster to a north-up grid")
    nodata = nodata_of(cls_ds)
    tc = _transform("classified", ignore_list, nodata, recl, lv, level_maps, present_values(cls_ds).tolist())
    mask_ds = mask_src = None
    if mask:
        mask_ds, mask_src = open_aligned(mask, cls_ds, "mask", log)
    mask_nodata = nodata_of(mask_src) if mask_src is not None else None

    # strata: mapped pixels of each (transformed) class
    counts = np.zeros(accuracy.MAX_VALUE + 1, dtype=np.int64)
    band = cls_ds.GetRasterBand(1)
    mband = mask_ds.GetRasterBand(1) if mask_ds is not None else None
    windows = list(raster.iter_windows(width, height, block))
    masked_pixels = 0
    for n, (x, y, w, h) in enumerate(windows):
        if is_canceled and is_canceled():
            raise Canceled()
        valid = None
        if mband is not None:
            mk = mband.ReadAsArray(x, y, w, h)
            valid = mk != 0
            if mask_nodata is not None:
                valid &= mk != mask_nodata
            masked_pixels += int((~valid).sum())
        c = tc.apply(band.ReadAsArray(x, y, w, h), valid)
        c = c[c >= 0]
        if c.size:
            counts[:int(c.max()) + 1] += np.bincount(c)
        pr(0.9 * (n + 1) / len(windows))
    strata = [int(v) for v in np.flatnonzero(counts)]
    if not strata:
        raise SatClassifyError(f"the classified raster has no pixel left as a stratum (IGNORE = {ignore_list}, nodata "
                               f"= {nodata}, mask, reclassify table / LEVEL): nothing to estimate")

    # reference values: the reference map's transform (RECLASSIFY rows, LEVEL), and the classes that can exist
    parsed = [parse_reference(p.get("reference")) for p in points]
    ints = sorted({v for v in parsed if isinstance(v, int)})
    tr = _transform("reference", ignore_list, None, recl, lv, level_maps, [v for v in ints if v >= 0])
    known = set(strata) | set(names_table or {})
    if lv:
        known |= {c.value for c in clc.classes(lv)}
    if not (recl.classified or (lv and level_maps in ("both", "classified"))):
        known |= set(raster.categories(cls_ds))
    skipped = {k: 0 for k in SKIPPED}
    examples = {k: [] for k in SKIPPED + ("stratum_mismatch",)}
    mismatch = 0
    pairs = []  # (map value, reference value)

    def skip(kind, p, detail=""):
        skipped[kind] += 1
        if len(examples[kind]) < 10:
            examples[kind].append(f"{p.get('id', '?')}{detail}")

    for p, ref in zip(points, parsed):
        x, y = p.get("x"), p.get("y")
        if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
            skip("outside_map", p)
            continue
        row, col = _cell_of(gt, x, y)
        if not (0 <= row < height and 0 <= col < width):
            skip("outside_map", p)
            continue
        if mband is not None:
            mv = int(mband.ReadAsArray(col, row, 1, 1)[0, 0])
            if mv == 0 or (mask_nodata is not None and mv == mask_nodata):
                skip("masked_out", p)
                continue
        raw_map = int(band.ReadAsArray(col, row, 1, 1)[0, 0])
        m = int(tc._map(np.array([raw_map if raw_map not in tc.ignore else -1], np.int64))[0][0])
        if m < 0 or m not in strata:
            skip("on_map_nodata", p, f" (map value {raw_map})")
            continue
        stratum_attr = parse_reference(p.get("stratum"))
        if isinstance(stratum_attr, int) and stratum_attr != raw_map:
            mismatch += 1
            if len(examples["stratum_mismatch"]) < 10:
                examples["stratum_mismatch"].append(f"{p.get('id', '?')} (stratum {stratum_attr}, map {raw_map})")
        if ref is None:
            skip("empty_reference", p)
            continue
        if ref == "unknown" or ref < 0:
            skip("unknown_reference", p, f" ({p.get('reference')!r})")
            continue
        if ref in tr.ignore:
            skip("ignored_reference", p, f" ({ref})")
            continue
        r = int(tr._map(np.array([ref], np.int64))[0][0])
        if r < 0 and ref in ignore_list:
            skip("ignored_reference", p, f" ({ref})")
            continue
        if r < 0 or r not in known:
            skip("unknown_reference", p, f" ({ref})")
            continue
        pairs.append((m, r))
    pr(0.95)
    for kind in SKIPPED:
        if skipped[kind]:
            log(f"WARNING: {skipped[kind]} point(s) left out, {kind.replace('_', ' ')}: "
                + ", ".join(examples[kind]) + (" ..." if skipped[kind] > len(examples[kind]) else ""))
    if mismatch:
        log(f"WARNING: {mismatch} point(s) have a 'stratum' attribute that disagrees with the map under them (the map "
            "decides the stratum; was the sample drawn from another map?): " + ", ".join(examples["stratum_mismatch"]))
    if not pairs:
        raise SatClassifyError(
            f"no usable reference point: of {len(points)} points " + ", ".join(
                f"{v} {k.replace('_', ' ')}" for k, v in skipped.items() if v)
            + f". Fill in the reference field '{reference_field}' with class values of the map, and check that the "
              "points lie on the classified raster")

    values = sorted(set(strata) | {r for _, r in pairs})
    index = {v: i for i, v in enumerate(values)}
    n_ij = np.zeros((len(values), len(values)), dtype=np.int64)
    for m, r in pairs:
        n_ij[index[m], index[r]] += 1
    est = estimator.stratified_estimates(n_ij, [counts[v] for v in values], values, area)
    if est["single_point_strata"]:
        log(f"WARNING: stratum/strata {est['single_point_strata']} hold a single point: their variance cannot be "
            "estimated (counted as 0, so the confidence intervals are too narrow); add points there")

    table = compared_classes(values, names_table, lv, level_maps, cls_ds, cls_ds,
                        bool(recl.classified) or bool(lv and level_maps in ("both", "classified")), True)
    by_value = {c["value"]: c for c in table}
    p = np.asarray(est["area_proportion_matrix"])
    metrics = compute_metrics(p.T, values, {c["value"]: c["name"] for c in table})  # rows = reference
    counts_ref_rows = n_ij.T
    metrics["confusion_matrix"] = counts_ref_rows.tolist()
    metrics["pixels"] = int(n_ij.sum())
    for c in metrics["classes"]:
        c["color"] = by_value[c["value"]]["color"]
        c["support"] = int(n_ij[:, index[c["value"]]].sum())
        c["predicted"] = int(n_ij[index[c["value"]]].sum())
    metrics["overall_accuracy"] = est["overall_accuracy"]
    metrics["overall_accuracy_se"] = est["overall_accuracy_se"]
    metrics["overall_accuracy_ci95"] = est["overall_accuracy_ci95"]
    metrics["estimator"] = "stratified (Olofsson et al. 2014, Remote Sensing of Environment 148, 42-57)"
    metrics["area_proportion_matrix"] = est["area_proportion_matrix"]
    metrics["area_proportion_matrix_orientation"] = "rows = map (classified), columns = reference"
    metrics["area_estimates"] = [{
        "value": e["value"], "name": by_value[e["value"]]["name"], "color": by_value[e["value"]]["color"],
        "mapped_pixels": int(e["mapped_pixels"]), "mapped_area_ha": e["mapped_area_ha"], "weight": e["weight"],
        "sample_points": e["sample_points"], "reference_points": int(n_ij[:, i].sum()),
        "estimated_area_ha": e["estimated_area_ha"], "estimated_area_se_ha": e["estimated_area_se_ha"],
        "ci95_ha": e["ci95_ha"], "area_proportion": e["area_proportion"],
        "users_accuracy": e["users_accuracy"], "users_accuracy_ci95": e["users_accuracy_ci95"],
        "producers_accuracy": e["producers_accuracy"], "producers_accuracy_ci95": e["producers_accuracy_ci95"],
    } for i, e in enumerate(est["classes"])]
    metrics["sample"] = {"points": len(points), "used": len(pairs), **skipped, "stratum_mismatch": mismatch,
                         "single_point_strata": est["single_point_strata"],
                         "examples": {k: v for k, v in examples.items() if v}}
    metrics["inputs"] = {
        "classified": classified, "reference_points": points_source or None, "reference_field": reference_field,
        "mask": mask or None, "ignore": ignore_list, "nodata_classified": nodata, "reclassify": reclassify or None,
        "names": names or None, "level": lv, "level_maps": level_maps if lv else None,
        "clc_source": {w: t.level_source for w, t in (("classified", tc), ("reference", tr)) if t.level} or None,
        "scale": 1, "width": width, "height": height, "pixel_size": abs(gt[1]), "pixel_area_ha": area,
        "total_area_ha": est["total_area_ha"],
    }
    metrics["excluded"] = {"masked_out": masked_pixels, "ignored_in_classified": tc.ignored,
                           "unmapped_in_classified": tc.unmapped}
    pr(1.0)
    return AccuracyResult(metrics)
