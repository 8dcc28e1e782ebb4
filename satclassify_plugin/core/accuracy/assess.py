"""Accuracy assessment of a class raster against a reference raster, streamed by blocks (QGIS env: GDAL).

:func:`assess` reads both maps (the reference, and an optional mask, warped with nearest neighbour onto the
classified raster's grid when the grids differ) window by window, transforms each map's values
(:class:`.accuracy.MapTransform`: ignore, reclassify, CLC level), optionally takes the mode of k x k blocks
(:func:`.accuracy.block_mode`), and feeds :class:`.metrics.ConfusionMatrix`. Memory depends on the block
size only. :func:`write_outputs` writes the matrix CSV, the metrics JSON and the HTML report (+ heat-map PNG)
through :class:`.raster.AtomicOutput`.

The class values are known before the pass from each raster's exact histogram (GDAL, C speed).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Literal, Optional, Tuple, overload

import numpy as np
from osgeo import gdal, osr

from .. import crs, raster
from ..contract.errors import SatClassifyError
from ..contract.feedback import Monitor
from ..contract.metrics import ConfusionMatrix, compute_metrics
from . import tables as accuracy
from .plan import MapOptions, class_table, compared_values

INTEGER_TYPES = {gdal.GDT_Byte, gdal.GDT_UInt16, gdal.GDT_Int16, gdal.GDT_UInt32, gdal.GDT_Int32}
DEFAULT_BLOCK = 512


@dataclass
class AccuracyResult:
    metrics: dict

    @property
    def overall_accuracy(self):
        return self.metrics["overall_accuracy"]


def _open(path: str, what: str) -> gdal.Dataset:
    try:
        return raster.open_raster(path, f"{what} raster")
    except SatClassifyError:
        # a plain file path that is not there: say so; GDAL strings (/vsi..., NETCDF:"f":v) keep GDAL's message
        if path and not os.path.exists(path) and not path.startswith("/vsi") and ":" not in os.path.basename(path):
            raise SatClassifyError(f"the {what} raster '{path}' does not exist")
        raise


def open_class_raster(path: str, what: str) -> gdal.Dataset:
    ds = _open(path, what)
    dt = ds.GetRasterBand(1).DataType
    if dt not in INTEGER_TYPES:
        raise SatClassifyError(
            f"the {what} raster '{path}' holds {gdal.GetDataTypeName(dt)} values, but a class raster must hold "
            "integers: convert it (e.g. Raster > Conversion > Translate with output type Byte or UInt16)"
        )
    return ds


def nodata_of(ds: gdal.Dataset) -> Optional[int]:
    nd = ds.GetRasterBand(1).GetNoDataValue()
    if nd is None or nd != nd or nd != int(nd):
        return None
    return int(nd)


def present_values(ds: gdal.Dataset) -> np.ndarray:
    """Sorted integer values occurring in band 1 (exact histogram, nodata excluded).

    Computed on a second handle opened with PAM disabled, so GDAL does not cache the histogram in the
    input's .aux.xml (the input files are never modified)."""
    old = gdal.GetConfigOption("GDAL_PAM_ENABLED")
    gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")
    try:
        view = gdal.Open(ds.GetDescription())
        return _histogram_values(view)
    finally:
        gdal.SetConfigOption("GDAL_PAM_ENABLED", old)


def _histogram_values(view: gdal.Dataset) -> np.ndarray:
    band = view.GetRasterBand(1)
    if band.DataType == gdal.GDT_Byte:
        lo, hi = 0, 255
    elif band.DataType == gdal.GDT_UInt16:
        lo, hi = 0, 65535
    else:
        try:
            lo, hi = (int(v) for v in band.ComputeRasterMinMax(False))
        except RuntimeError:  # all nodata
            return np.zeros(0, dtype=np.int64)
        if hi - lo > 1 << 20:
            raise SatClassifyError(
                f"'{view.GetDescription()}' holds values from {lo} to {hi}: that is no class raster "
                "(class values must be in 0..65535)"
            )
    hist = band.GetHistogram(lo - 0.5, hi + 0.5, hi - lo + 1, include_out_of_range=0, approx_ok=0)
    return lo + np.nonzero(np.asarray(hist))[0].astype(np.int64)


def _bounds(ds: gdal.Dataset) -> Tuple[float, float, float, float]:
    w, h, gt, _ = raster.grid_of(ds)
    xs = [gt[0], gt[0] + gt[1] * w]
    ys = [gt[3], gt[3] + gt[5] * h]
    return min(xs), min(ys), max(xs), max(ys)


def _check_overlap(target: gdal.Dataset, other: gdal.Dataset, what: str, target_what: str = "classified") -> None:
    ts, os_ = raster.srs_of(target), raster.srs_of(other)
    if (ts is None) != (os_ is None):
        lacking = target_what if ts is None else what
        raise SatClassifyError(
            f"the {lacking} raster has no CRS, so it cannot be aligned with the other one: assign "
            "its CRS (Raster > Projections > Assign Projection) or give rasters on the same grid"
        )
    b = _bounds(other)
    if ts is not None and not ts.IsSame(os_):
        ct = osr.CoordinateTransformation(os_, ts)
        try:
            b = ct.TransformBounds(b[0], b[1], b[2], b[3], 21)
        except RuntimeError as e:
            raise SatClassifyError(f"cannot transform the {what} extent to the {target_what} raster's CRS: {e}")
    t = _bounds(target)
    if b[0] >= t[2] or b[2] <= t[0] or b[1] >= t[3] or b[3] <= t[1]:
        raise SatClassifyError(
            f"the {what} raster does not overlap the {target_what} raster ({target_what} extent {_fmt_box(t)}, "
            f"{what} extent {_fmt_box(b)} in the {target_what} raster's CRS): choose rasters covering the same area"
        )


def open_aligned(path: str, target: gdal.Dataset, what: str, log, target_what: str = "classified", **warp):
    """(dataset on ``target``'s grid, the dataset as opened): the raster at ``path``, warped with nearest
    neighbour onto ``target``'s grid (a VRT) when the grids differ (CRS, resolution or extent)."""
    src = _open(path, what)
    if raster.same_grid(target, src):
        return src, src
    _check_overlap(target, src, what, target_what)
    log(f"the {what} raster is on another grid: warped with nearest neighbour onto the {target_what} grid")
    return raster.warp_to_grid(src, target, "near", **warp), src


@overload
def pixel_area_ha(ds: gdal.Dataset, what: str = ..., strict: Literal[True] = ...) -> float: ...
@overload
def pixel_area_ha(ds: gdal.Dataset, what: str = ..., strict: bool = ...) -> Optional[float]: ...


def pixel_area_ha(ds: gdal.Dataset, what: str = "class raster", strict: bool = True) -> Optional[float]:
    """Area of one pixel in hectares. A geographic CRS (pixel sizes in degrees) is refused, or gives None when
    not ``strict``."""
    srs = raster.srs_of(ds)
    if srs is not None and srs.IsGeographic():
        if not strict:
            return None
        raise SatClassifyError(
            f"the {what} '{ds.GetDescription()}' is in a geographic CRS (degrees), so its pixel areas in hectares are "
            "unknown: reproject it to a projected CRS in metres first (Raster > Projections > Warp, e.g. the UTM "
            "zone or EPSG:3035)"
        )
    # on the ground: a CRS whose map units are not ground metres (Web Mercator) is measured on the ellipsoid
    # (core/crs.py), refused where its pixel areas vary over the raster; no CRS: map units taken as metres
    try:
        return crs.pixel_area_m2(ds, f"{what} '{ds.GetDescription()}'") / 10000.0
    except SatClassifyError:
        if strict:
            raise
        return None


def _fmt_box(b) -> str:
    return "(" + ", ".join(f"{v:.1f}" for v in b) + ")"


def compared_classes(
    values: List[int],
    names_table,
    level: Optional[int],
    level_maps: str,
    cls_ds,
    ref_ds,
    cls_transformed: bool,
    ref_transformed: bool,
) -> List[dict]:
    """value, name, color for each compared class: NAMES table, else CLC tables (LEVEL), else the classified
    raster's categories/colour table, else the reference's (when its values were not transformed), else
    'class N' with a default colour (:func:`.plan.class_table`)."""
    sources = []
    if not (level and level_maps in ("both", "classified")):
        sources.append(raster.categories(cls_ds))
    if not ref_transformed:
        sources.append(raster.categories(ref_ds))
    return class_table(values, names_table, level, sources)


_PLACEHOLDER = re.compile(r"^\s*(class|value|category)?[\s_-]*\d+\s*$", re.IGNORECASE)

#: more distinct values than this in a map without a legend: it may be an image (reflectances), not a class raster
MAX_DISTINCT_CLASSES = 256
#: ... and above this many (or fewer than MIN_PIXELS_PER_CLASS pixels per value) it is one
MAX_UNNAMED_CLASSES = 1024
MIN_PIXELS_PER_CLASS = 4
#: a class raster whose legend (category names or colour table entries) covers its values: any UInt16 class count
MAX_LEGEND_CLASSES = 65536


def legend_size(ds: gdal.Dataset) -> int:
    """Classes band 1's legend names: its named categories, or its colour table's entries (0 without either)."""
    ct = ds.GetRasterBand(1).GetRasterColorTable()
    return max(len(raster.categories(ds)), ct.GetCount() if ct is not None else 0)


def refuse_image(which: str, ds: gdal.Dataset, n: int) -> None:
    """Refuse a raster given as a class map that holds an image (e.g. a reflectance stack): ``n`` distinct values
    are a class raster when n <= MAX_DISTINCT_CLASSES; when its legend names at least n classes (a from-to raster
    of satclassify:landcoverchange, a UInt16 map of hundreds of classes), up to MAX_LEGEND_CLASSES; without a
    legend up to MAX_UNNAMED_CLASSES values with MIN_PIXELS_PER_CLASS pixels per value on average. Reflectances
    hold thousands of distinct values, about one per few pixels."""
    if n <= MAX_DISTINCT_CLASSES:
        return
    legend = legend_size(ds)
    if legend >= n and n <= MAX_LEGEND_CLASSES:
        return
    pixels = ds.RasterXSize * ds.RasterYSize
    if not legend and n <= MAX_UNNAMED_CLASSES and n * MIN_PIXELS_PER_CLASS <= pixels:
        return
    bands = f" (band 1 of {ds.RasterCount})" if ds.RasterCount > 1 else ""
    raise SatClassifyError(
        f"the {which} raster '{ds.GetDescription()}' holds {n} distinct values{bands}: that is an image, "
        "not a class map (a class raster holds one value per class, a few dozen at most; one of more than "
        f"{MAX_DISTINCT_CLASSES} classes needs a legend naming them, as the from-to raster of "
        "satclassify:landcoverchange has). Choose the class raster, e.g. the OUTPUT of satclassify:classify or "
        "satclassify:rasterizeclc"
    )


def check_comparable(present, transforms, datasets, transformed: bool, log) -> None:
    """Refuse comparisons that can only give a meaningless matrix, and say which fix applies:
    an image passed as a class map, two maps without a common class value, or two maps whose category names
    say that the same value means different classes (e.g. a CLC level-1 map against a level-2 reference)."""
    for which, ds in datasets.items():
        refuse_image(which, ds, len(present[which]))
    vals = {
        w: set(transforms[w].map_values([v for v in present[w].tolist() if v not in transforms[w].ignore]))
        for w in datasets
    }
    vals = {w: {v for v in vs if v >= 0} for w, vs in vals.items()}
    if vals["classified"] and vals["reference"] and vals["classified"].isdisjoint(vals["reference"]):
        show = {
            w: ", ".join(str(v) for v in sorted(vs)[:12]) + (" ..." if len(vs) > 12 else "") for w, vs in vals.items()
        }
        raise SatClassifyError(
            f"the classified and reference maps have no class value in common (classified: {show['classified']}; "
            f"reference: {show['reference']}): they use different class codes, so every pixel would disagree. "
            "Compare them at a common CLC level (LEVEL) or map one onto the other (RECLASSIFY)"
        )
    if not transformed:
        # placeholder names ("class 3", "3") say nothing about what a value means: only real names are compared
        names = {
            w: {v: n.strip().lower() for v, (n, _) in raster.categories(ds).items() if not _PLACEHOLDER.match(n)}
            for w, ds in datasets.items()
        }
        shared = sorted(
            v for v in vals["classified"] & vals["reference"] if v in names["classified"] and v in names["reference"]
        )
        differ = [v for v in shared if names["classified"][v] != names["reference"][v]]
        if shared and len(differ) * 2 > len(shared):
            v = differ[0]
            name_c = raster.categories(datasets["classified"])[v][0]
            name_r = raster.categories(datasets["reference"])[v][0]
            raise SatClassifyError(
                f"the two maps use different class tables: value {v} is '{name_c}' "
                f"in the classified map but '{name_r}' in the reference "
                f"({len(differ)} of {len(shared)} shared values are named differently; e.g. a CLC level-1 map "
                "against a level-2 reference). Compare maps of one class table: rasterize the reference at the "
                "classified map's CLC level (satclassify:rasterizeclc LEVEL), set LEVEL when a map holds CLC "
                "level-3 classes, or map one onto the other with a RECLASSIFY table"
            )
        if differ:
            log(
                f"WARNING: {len(differ)} class value(s) are named differently in the two maps: "
                + ", ".join(f"{v} ('{names['classified'][v]}' vs '{names['reference'][v]}')" for v in differ[:5])
            )
    only = {w: sorted(vals[w] - vals[o]) for w, o in (("classified", "reference"), ("reference", "classified"))}
    for w, vs in only.items():
        if vs:
            log(f"WARNING: class value(s) {', '.join(map(str, vs[:20]))} occur only in the {w} map")


@dataclass
class AlignedInputs:
    """The opened rasters of one assessment: the classified raster, the reference (as opened, and on the
    classified grid with an alpha band of coverage when warped) and the optional mask on the classified grid."""

    cls_ds: gdal.Dataset
    ref_src: gdal.Dataset
    ref_ds: gdal.Dataset
    ref_warped: bool
    mask_ds: Optional[gdal.Dataset] = None
    mask_src: Optional[gdal.Dataset] = None

    @property
    def size(self) -> Tuple[int, int]:
        return self.cls_ds.RasterXSize, self.cls_ds.RasterYSize

    @classmethod
    def open(cls, classified: str, reference: str, mask: Optional[str], k: int, log) -> "AlignedInputs":
        cls_ds = open_class_raster(classified, "classified")
        ref_src = open_class_raster(reference, "reference")
        for ds, what in ((cls_ds, "classified"), (ref_src, "reference")):
            if ds.RasterCount > 1:
                log(f"the {what} raster has {ds.RasterCount} bands: band 1 is compared")
        width, height = cls_ds.RasterXSize, cls_ds.RasterYSize
        if k > max(width, height):
            raise SatClassifyError(
                f"SCALE {k} is larger than the classified raster ({width} x {height} pixels): the "
                f"whole map would be one block; use a SCALE below {max(width, height)}"
            )
        ref_warped = not raster.same_grid(cls_ds, ref_src)
        ref_ds = ref_src
        if ref_warped:
            _check_overlap(cls_ds, ref_src, "reference")
            log("the reference raster is on another grid: warped with nearest neighbour onto the classified grid")
            ref_ds = raster.warp_to_grid(
                ref_src, cls_ds, "near", src_nodata=ref_src.GetRasterBand(1).GetNoDataValue(), dst_alpha=True
            )
        mask_ds = mask_src = None
        if mask:
            mask_ds, mask_src = open_aligned(mask, cls_ds, "mask", log)
        return cls(cls_ds, ref_src, ref_ds, ref_warped, mask_ds, mask_src)


def _map_transforms(src: AlignedInputs, opts: MapOptions, log):
    """(transforms, nodata, comparison values) of both maps, after refusing what cannot be compared."""
    nodata = {"classified": nodata_of(src.cls_ds), "reference": nodata_of(src.ref_src)}
    present = {"classified": present_values(src.cls_ds), "reference": present_values(src.ref_src)}
    transforms = {}
    for which in accuracy.MAPS:
        transforms[which] = t = opts.transform(which, nodata[which], present[which].tolist())
        if t.level:
            log(
                f"{which} map: CLC level-3 {'grid codes 1..44' if t.level_source == 'grid' else 'codes 111..523'} "
                f"aggregated to level {t.level}"
            )
    check_comparable(
        present,
        transforms,
        {"classified": src.cls_ds, "reference": src.ref_src},
        transformed=bool(opts.recl.classified or opts.recl.reference or opts.level),
        log=log,
    )
    values = compared_values(present, transforms)
    if not values:
        raise SatClassifyError(
            "no pixel left to compare: every value of the classified or reference raster is "
            f"ignored (IGNORE = {opts.ignore_list}, nodata = classified {nodata['classified']}, "
            f"reference {nodata['reference']}) or unmapped by the reclassify table / LEVEL"
        )
    return transforms, nodata, values


def _count(src: AlignedInputs, transforms, values, k: int, block: int, monitor: Monitor):
    """(confusion matrix, masked pixels, pixels outside the reference): the pass over the windows."""
    cm = ConfusionMatrix(values, ignore=())
    step = block if k == 1 else max(k, (block // k) * k)
    windows = list(raster.iter_windows(*src.size, step))
    cls_band, ref_band = src.cls_ds.GetRasterBand(1), src.ref_ds.GetRasterBand(1)
    alpha_band = src.ref_ds.GetRasterBand(src.ref_ds.RasterCount) if src.ref_warped else None
    mask_band = src.mask_ds.GetRasterBand(1) if src.mask_ds is not None else None
    mask_nodata = nodata_of(src.mask_src) if src.mask_src is not None else None
    masked = outside = 0
    for n, (x, y, w, h) in enumerate(windows):
        monitor.check()
        valid = np.ones((h, w), bool)
        if mask_band is not None:
            mk = mask_band.ReadAsArray(x, y, w, h)
            mv = mk != 0
            if mask_nodata is not None:
                mv &= mk != mask_nodata
            masked += int((~mv).sum())
            valid &= mv
        c = transforms["classified"].apply(cls_band.ReadAsArray(x, y, w, h), valid)
        ref_valid = valid
        if alpha_band is not None:
            cov = alpha_band.ReadAsArray(x, y, w, h) > 0
            outside += int((valid & ~cov).sum())
            ref_valid = valid & cov
        r = transforms["reference"].apply(ref_band.ReadAsArray(x, y, w, h), ref_valid)
        if k > 1:
            c, r = accuracy.block_mode(c, k), accuracy.block_mode(r, k)
        ok = (c >= 0) & (r >= 0)
        cm.update(np.where(ok, r, 0), np.where(ok, c, 0), ok)
        monitor.progress((n + 1) / len(windows))
    return cm, masked, outside


def _excluded(transforms, masked: int, outside: int, log) -> dict:
    tc, tr = transforms["classified"], transforms["reference"]
    for t in (tc, tr):
        if t.unmapped:
            log(
                f"{t.unmapped} {t.which} pixels have values without a reclassify row or CLC class and were left out: "
                f"{sorted(t.unmapped_values)[:20]}"
            )
    return {
        "masked_out": masked,
        "outside_reference": outside,
        "ignored_in_classified": tc.ignored,
        "ignored_in_reference": tr.ignored,
        "unmapped_in_classified": tc.unmapped,
        "unmapped_in_reference": tr.unmapped,
    }


def assess(
    classified: str,
    reference: str,
    mask: Optional[str] = None,
    scale=1,
    block: int = DEFAULT_BLOCK,
    options: Optional[MapOptions] = None,
    monitor: Optional[Monitor] = None,
    **choices,
) -> AccuracyResult:
    """Compare ``classified`` with ``reference``; returns the metrics dict (compute_metrics + inputs etc.).
    ``options`` (or its names as keywords: ignore, reclassify, names, level, level_maps) are the user's
    choices (:class:`.plan.MapOptions`)."""
    monitor = monitor or Monitor()
    log = monitor.info
    k = accuracy.check_scale(scale)
    opts = options or MapOptions.read(**choices)
    src = AlignedInputs.open(classified, reference, mask, k, log)
    transforms, nodata, values = _map_transforms(src, opts, log)
    cm, masked, outside = _count(src, transforms, values, k, block, monitor)
    excluded = _excluded(transforms, masked, outside, log)
    width, height = src.size
    if int(cm.matrix.sum()) == 0:
        parts = [f"{v} {k_.replace('_', ' ')}" for k_, v in excluded.items() if v]
        raise SatClassifyError(
            f"no pixel left to compare: of {width * height} pixels, "
            + ", ".join(parts or ["none compared"])
            + f" (IGNORE = {opts.ignore_list}); check the mask, IGNORE, the reclassify table and that the maps overlap"
        )
    keep = [i for i in range(len(values)) if cm.matrix[i].sum() + cm.matrix[:, i].sum() > 0]
    kept_values = [values[i] for i in keep]
    table = compared_classes(
        kept_values,
        opts.names_table,
        opts.level,
        opts.level_maps,
        src.cls_ds,
        src.ref_src,
        opts.transformed("classified"),
        opts.transformed("reference"),
    )
    metrics = compute_metrics(cm.matrix[np.ix_(keep, keep)], kept_values, {c["value"]: c["name"] for c in table})
    for c, info in zip(metrics["classes"], table):
        c["color"] = info["color"]
    px = abs(src.cls_ds.GetGeoTransform()[1])
    metrics["inputs"] = {
        "classified": classified,
        "reference": reference,
        "mask": mask or None,
        "ignore": opts.ignore_list,
        "nodata_classified": nodata["classified"],
        "nodata_reference": nodata["reference"],
        **opts.inputs(),
        "clc_source": {w: transforms[w].level_source for w in accuracy.MAPS if transforms[w].level} or None,
        "scale": k,
        "reference_warped": src.ref_warped,
        "width": width,
        "height": height,
        "pixel_size": px,
        "comparison_pixel_size": px * k,
        "pixel_area_ha": pixel_area_ha(src.cls_ds, strict=False),
    }
    metrics["excluded"] = excluded
    return AccuracyResult(metrics)


def heatmap_png(metrics: dict) -> bytes:
    """The heat-map PNG bytes (numpy image written through GDAL's MEM + PNG drivers)."""
    img = accuracy.heatmap_rgb(metrics["confusion_matrix"], [c["color"] for c in metrics["classes"]])
    mem = gdal.GetDriverByName("MEM").Create("", img.shape[2], img.shape[1], 3, gdal.GDT_Byte)
    for i in range(3):
        mem.GetRasterBand(i + 1).WriteArray(img[i])
    name = f"/vsimem/satclassify_heatmap_{id(img)}.png"
    gdal.GetDriverByName("PNG").CreateCopy(name, mem)
    try:
        f = gdal.VSIFOpenL(name, "rb")
        gdal.VSIFSeekL(f, 0, 2)
        size = gdal.VSIFTellL(f)
        gdal.VSIFSeekL(f, 0, 0)
        data = gdal.VSIFReadL(1, size, f)
        gdal.VSIFCloseL(f)
    finally:
        gdal.Unlink(name)
        if gdal.VSIStatL(name + ".aux.xml"):
            gdal.Unlink(name + ".aux.xml")
    return bytes(data)


def png_path_for(report_path: str) -> str:
    return os.path.splitext(report_path)[0] + "_matrix.png"


def write_outputs(
    result: AccuracyResult, matrix_path: Optional[str], metrics_path: Optional[str], report_path: Optional[str]
) -> Dict[str, Optional[str]]:
    """Write the CSV, JSON and HTML report (+ PNG beside it); each file appears complete or not at all."""
    m = result.metrics
    written: Dict[str, Optional[str]] = {"matrix": None, "metrics": None, "report": None, "png": None}
    if matrix_path:
        with raster.AtomicOutput(matrix_path) as tmp:
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                f.write(accuracy.matrix_csv(m))
        written["matrix"] = os.path.abspath(matrix_path)
    if metrics_path:
        with raster.AtomicOutput(metrics_path) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(m, f, indent=1)
        written["metrics"] = os.path.abspath(metrics_path)
    if report_path:
        png = heatmap_png(m)
        png_path = png_path_for(os.path.abspath(report_path))
        with raster.AtomicOutput(png_path) as tmp:
            with open(tmp, "wb") as f:
                f.write(png)
        with raster.AtomicOutput(report_path) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(accuracy.report_html(m, png, os.path.basename(png_path)))
        written["report"] = os.path.abspath(report_path)
        written["png"] = png_path
    return written
