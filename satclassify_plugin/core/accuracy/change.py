"""Land-cover change between two class rasters (QGIS env: GDAL/OGR): from-to raster, change matrix in hectares,
change polygons with a minimum mapping unit, and map update candidates.

The second raster (and the optional confidence raster) is warped with nearest neighbour onto the first one's
grid when the grids differ (:func:`.assess.open_aligned`, as the accuracy tool aligns its reference). A pixel is
compared when it holds a class in both maps (not nodata, not IGNORE, covered by the second raster).

*From-to raster*: a compact category index, 1..K over the (from, to) pairs that occur, sorted by from then to
value; unchanged pixels keep their own category ("Forest -> Forest", a paler shade of the class colour), changed
pixels take the colour of the class they became; 0 = not compared (nodata). Byte when K <= 255 (with the colour
table and category names "from -> to"), else UInt16 (category names only; the tool styles the layer on load).
The category table is also in the JSON.

*Change polygons*: the from-to raster is sieved (``gdal.SieveFilter``, 4-connected) so that every patch smaller
than the minimum mapping unit (MMU, default 5 ha as the CLC change layers) is merged into its largest neighbour,
then the changed categories are polygonized (``gdal.Polygonize``, 4-connected); polygons still below the MMU (at
the edge of the compared area) are dropped and counted. Each polygon: from/to value and name, change, area_ha.

*Map update candidates* (with a CONFIDENCE raster): pixels where the second map (the model) disagrees with the
first (the map) and the confidence is at least the threshold, sieved and polygonized the same way (same MMU).
The confidence is read in percent (0-100, as satclassify:classify writes it); a floating-point raster whose
values all lie in 0..1 is taken as fractions (x 100, logged).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
from osgeo import gdal, ogr

from .. import crs, raster
from ..contract.errors import SatClassifyError
from ..contract.feedback import Canceled, Monitor
from ..contract.paths import split_layer, temp_tag
from .assess import (
    compared_classes,
    nodata_of,
    open_aligned,
    open_class_raster,
    pixel_area_ha,
    present_values,
    refuse_image,
)
from .plan import CANDIDATES_NEED_CONFIDENCE, ChangeOptions, change_categories

ogr.UseExceptions()

DEFAULT_BLOCK = 512
CHANGE_LAYER = "change_polygons"
CANDIDATE_LAYER = "update_candidates"


def _lut(values: List[int]) -> np.ndarray:
    lut = np.full(max(values) + 1 if values else 1, -1, dtype=np.int64)
    for i, v in enumerate(values):
        lut[v] = i
    return lut


def _index(a: np.ndarray, lut: np.ndarray, skip) -> np.ndarray:
    a = a.astype(np.int64)
    out = np.full(a.shape, -1, dtype=np.int64)
    ok = (a >= 0) & (a < len(lut))
    if skip:
        ok &= ~np.isin(a, list(skip))
    out[ok] = lut[a[ok]]
    return out


class _Pair:
    """Reads the aligned blocks of both maps (+ confidence) as class indices, -1 = not compared."""

    def __init__(self, first, second, cover_band, skip_first, skip_second, lut_first, lut_second):
        self.b1, self.b2, self.cover = first.GetRasterBand(1), second.GetRasterBand(1), cover_band
        self.skip1, self.skip2, self.lut1, self.lut2 = skip_first, skip_second, lut_first, lut_second

    def read(self, x, y, w, h):
        i1 = _index(self.b1.ReadAsArray(x, y, w, h), self.lut1, self.skip1)
        i2 = _index(self.b2.ReadAsArray(x, y, w, h), self.lut2, self.skip2)
        if self.cover is not None:
            i2[self.cover.ReadAsArray(x, y, w, h) == 0] = -1
        ok = (i1 >= 0) & (i2 >= 0)
        return i1, i2, ok


def matrix_csv(first_classes, second_classes, matrix_ha) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    m = np.asarray(matrix_ha, dtype=np.float64)
    w.writerow(["from_value", "from_name"] + [f"{c['value']} {c['name']}" for c in second_classes] + ["total"])
    for i, c in enumerate(first_classes):
        w.writerow([c["value"], c["name"]] + [f"{x:.4f}" for x in m[i]] + [f"{m[i].sum():.4f}"])
    w.writerow(["total", ""] + [f"{x:.4f}" for x in m.sum(axis=0)] + [f"{m.sum():.4f}"])
    return buf.getvalue()


def _temp_tif(output: str, like: gdal.Dataset, dtype) -> str:
    """A temporary raster beside the polygon ``output`` (a GeoPackage, or one layer of it), named as its
    :class:`~.raster.AtomicOutput` names its temporary files: removed at the end, and by the next run of the same
    output when an interrupted run left it."""
    folder, name = os.path.split(os.path.abspath(split_layer(output)[0]))
    os.makedirs(folder, exist_ok=True)  # as AtomicOutput does for the outputs themselves
    path = os.path.join(folder, f".{os.path.splitext(name)[0]}.{temp_tag()}.part-sieve.tif")
    w, h, gt, wkt = raster.grid_of(like)
    raster.create_geotiff(path, w, h, 1, dtype, gt, wkt)  # closed at once: pixels come in the second pass
    return path


def _remove(path: Optional[str]) -> None:
    if path:
        for p in (path, path + ".aux.xml"):
            if os.path.exists(p):
                os.remove(p)


def _polygons(
    band_path: str,
    out_path: str,
    layer_name: str,
    categories: Dict[int, dict],
    mmu_ha: float,
    threshold_px: int,
    srs,
    extra: Optional[dict],
    monitor: Monitor,
) -> dict:
    """Sieve the category raster at ``band_path`` in place, polygonize its nonzero pixels into a GeoPackage
    layer with from/to attributes and area_ha, drop polygons below the MMU. Returns counts."""
    log = monitor.info
    ds = gdal.Open(band_path, gdal.GA_Update)
    band = ds.GetRasterBand(1)

    def cb(_complete, _msg, _data):
        return 0 if monitor.canceled() else 1

    def gdal_step(fn, *args, **kw):
        try:
            fn(*args, **kw)
        except RuntimeError:  # the callback stopped GDAL ("User terminated")
            if monitor.canceled():
                raise Canceled() from None
            raise

    if threshold_px > 1:
        gdal_step(gdal.SieveFilter, band, None, band, threshold_px, 4, callback=cb)
    # unchanged categories are no polygon (and the sieve may have merged a change patch into one of them)
    unchanged_values = [k for k, c in categories.items() if not c["changed"]]
    for x, y, w, h in raster.iter_windows(ds.RasterXSize, ds.RasterYSize, DEFAULT_BLOCK):
        a = band.ReadAsArray(x, y, w, h)
        unchanged = np.isin(a, unchanged_values)
        if unchanged.any():
            a[unchanged] = 0
            band.WriteArray(a, x, y)
    band.FlushCache()
    monitor.check()
    kept = dropped = 0
    out = ogr.GetDriverByName("GPKG").CreateDataSource(out_path)
    lyr = out.CreateLayer(layer_name, srs, ogr.wkbPolygon, options=["SPATIAL_INDEX=YES"])
    fields = [
        ("category", ogr.OFTInteger),
        ("from_value", ogr.OFTInteger),
        ("from_name", ogr.OFTString),
        ("to_value", ogr.OFTInteger),
        ("to_name", ogr.OFTString),
        ("change", ogr.OFTString),
        ("area_ha", ogr.OFTReal),
    ] + [(k, ogr.OFTReal) for k in (extra or {})]
    for name, t in fields:
        lyr.CreateField(ogr.FieldDefn(name, t))
    out.StartTransaction()
    gdal_step(gdal.Polygonize, band, band, lyr, 0, [], callback=cb)
    out.CommitTransaction()
    monitor.check()
    lyr.ResetReading()
    gt = ds.GetGeoTransform()  # polygon areas on the ground (core/crs.py: Web Mercator is not metres)
    ha_per_unit2 = crs.pixel_area_m2(ds, "change raster") / 1e4 / abs(gt[1] * gt[5] - gt[2] * gt[4])
    found = [(f.GetFID(), f.GetGeometryRef().GetArea() * ha_per_unit2) for f in lyr]
    out.StartTransaction()
    drop = []
    for fid, a_ha in found:
        if a_ha < mmu_ha * (1 - 1e-9):
            drop.append(fid)
            continue
        f = lyr.GetFeature(fid)
        c = categories[f.GetField("category")]
        f.SetField("from_value", c["from"])
        f.SetField("from_name", c["from_name"])
        f.SetField("to_value", c["to"])
        f.SetField("to_name", c["to_name"])
        f.SetField("change", c["name"])
        f.SetField("area_ha", round(a_ha, 6))
        for k, v in (extra or {}).items():
            f.SetField(k, v)
        lyr.SetFeature(f)
        kept += 1
    for fid in drop:
        lyr.DeleteFeature(fid)
    dropped = len(drop)
    out.CommitTransaction()
    out = lyr = None
    ds = band = None
    if dropped:
        log(
            f"{dropped} polygon(s) of {layer_name.replace('_', ' ')} below the minimum mapping unit of {mmu_ha:g} ha "
            "left out (at the edge of the compared area, where the sieve has no neighbour to merge them into)"
        )
    return {"polygons": kept, "dropped_below_mmu": dropped}


@dataclass(frozen=True)
class ChangeOutputs:
    """The output paths of a change comparison (None = not written)."""

    raster: Optional[str] = None
    matrix: Optional[str] = None
    json: Optional[str] = None
    polygons: Optional[str] = None
    candidates: Optional[str] = None

    @classmethod
    def take(cls, kwargs: dict) -> "ChangeOutputs":
        """The ``out_raster``, ``out_matrix``, ... keywords, removed from ``kwargs``."""
        return cls(*(kwargs.pop(f"out_{k}", None) for k in ("raster", "matrix", "json", "polygons", "candidates")))

    @property
    def folder(self) -> str:
        """Where the temporary rasters of the sieve go (beside the outputs)."""
        return os.path.dirname(
            os.path.abspath(split_layer(self.polygons or self.candidates or self.raster or self.json or ".")[0])
        )


@dataclass
class ChangeInputs:
    """Both maps (the second on the first one's grid), the optional confidence raster on that grid, the class
    values compared in each map and the reader of aligned blocks."""

    ds1: gdal.Dataset
    src2: gdal.Dataset
    ds2: gdal.Dataset  # src2 or its warp onto ds1's grid: kept open while the reader reads its bands
    area: float
    warped: bool
    v1: List[int]
    v2: List[int]
    reader: _Pair
    conf_band: Optional[gdal.Band] = None
    conf_scale: Optional[float] = None
    conf_nodata: Optional[float] = None
    conf_ds: Optional[gdal.Dataset] = None  # the confidence on ds1's grid and as opened: kept open while
    conf_src: Optional[gdal.Dataset] = None  # conf_band is read

    @classmethod
    def open(cls, first: str, second: str, confidence: Optional[str], ignore_list, log) -> "ChangeInputs":
        ds1 = open_class_raster(first, "first")
        area = pixel_area_ha(ds1, "first class raster")
        src2 = open_class_raster(second, "second")
        nd2 = src2.GetRasterBand(1).GetNoDataValue()
        ds2, opened = open_aligned(second, ds1, "second", log, target_what="first", src_nodata=nd2, dst_alpha=True)
        warped = ds2 is not opened
        cover = ds2.GetRasterBand(ds2.RasterCount) if warped else None
        cds = csrc = conf_band = conf_scale = conf_nodata = None
        if confidence:
            cds, csrc = open_aligned(
                confidence, ds1, "confidence", log, target_what="first", src_nodata=_conf_nodata(confidence)
            )
            conf_band = cds.GetRasterBand(1)
            conf_scale, conf_nodata = _confidence_scale(csrc, log)
        skip1 = set(ignore_list) | ({nodata_of(ds1)} if nodata_of(ds1) is not None else set())
        skip2 = set(ignore_list) | ({nodata_of(src2)} if nodata_of(src2) is not None else set())
        v1 = [int(v) for v in present_values(ds1) if int(v) not in skip1]
        v2 = [int(v) for v in present_values(src2) if int(v) not in skip2]
        for what, vals, ds in (("first", v1, ds1), ("second", v2, src2)):
            if not vals:
                raise SatClassifyError(
                    f"the {what} raster '{ds.GetDescription()}' has no class pixel outside nodata "
                    f"and IGNORE ({ignore_list})"
                )
            refuse_image(what, ds, len(vals))
        reader = _Pair(ds1, ds2, cover, skip1, skip2, _lut(v1), _lut(v2))
        return cls(ds1, src2, ds2, area, warped, v1, v2, reader, conf_band, conf_scale, conf_nodata, cds, csrc)

    def candidates(self, cat: np.ndarray, is_change: np.ndarray, threshold: float, x, y, w, h) -> np.ndarray:
        """Where a block's category ``cat`` is a change with a confidence of at least ``threshold`` percent."""
        # land_cover_change refuses candidates without a confidence raster
        assert self.conf_band is not None and self.conf_scale is not None
        raw = self.conf_band.ReadAsArray(x, y, w, h)
        conf = raw.astype(np.float64) * self.conf_scale
        if self.conf_nodata is not None:
            conf[raw == self.conf_nodata] = -1
        return is_change[cat] & (conf >= threshold)


def _count_pairs(src: ChangeInputs, windows, ignore_list, monitor: Monitor) -> np.ndarray:
    """Pixels of each (from, to) pair, by code = first index * len(v2) + second index: the first pass."""
    k2 = len(src.v2)
    pairs = np.zeros(len(src.v1) * k2, dtype=np.int64)
    for n, (x, y, w, h) in enumerate(windows):
        monitor.check()
        i1, i2, ok = src.reader.read(x, y, w, h)
        pairs += np.bincount((i1[ok] * k2 + i2[ok]).ravel(), minlength=len(pairs))
        monitor.progress((n + 1) / len(windows))
    if pairs.sum() == 0:
        raise SatClassifyError(
            "no pixel holds a class in both maps: check that the rasters overlap, their nodata "
            f"and IGNORE ({ignore_list})"
        )
    return pairs


def _category_type(legend) -> int:
    return gdal.GDT_Byte if len(legend) <= 255 else gdal.GDT_UInt16


def _write_categories(
    src: ChangeInputs, windows, cat_lut, legend, files: dict, metadata: dict, threshold: float, monitor: Monitor
) -> int:
    """The second pass: the from-to raster (``files["raster"]``, with ``metadata``) and the sieve's inputs
    (``files["change"]``, ``files["candidates"]``: confidence >= ``threshold``); returns the candidate pixels."""
    ds1, k2, dtype = src.ds1, len(src.v2), _category_type(legend)
    out_ds = None
    if files["raster"]:
        out_ds = raster.create_geotiff(
            files["raster"],
            ds1.RasterXSize,
            ds1.RasterYSize,
            1,
            dtype,
            ds1.GetGeoTransform(),
            ds1.GetProjection(),
            nodata=0,
            classes=legend if dtype == gdal.GDT_Byte else None,
            nodata_name="not compared",
            descriptions=["from -> to"],
            metadata=metadata,
        )
        if dtype != gdal.GDT_Byte:
            out_ds.GetRasterBand(1).SetRasterCategoryNames(["not compared"] + [c["name"] for c in legend])
    ch_ds = gdal.Open(files["change"], gdal.GA_Update) if files["change"] else None
    ca_ds = gdal.Open(files["candidates"], gdal.GA_Update) if files["candidates"] else None
    is_change = np.asarray([False] + [c["changed"] for c in legend])
    cand_pixels = 0
    for n, (x, y, w, h) in enumerate(windows):
        monitor.check()
        i1, i2, ok = src.reader.read(x, y, w, h)
        cat = np.zeros((h, w), dtype=np.int64)
        cat[ok] = cat_lut[i1[ok] * k2 + i2[ok]]
        for ds in (out_ds, ch_ds):
            if ds is not None:
                ds.GetRasterBand(1).WriteArray(cat, x, y)
        if ca_ds is not None:
            cand = src.candidates(cat, is_change, threshold, x, y, w, h)
            cand_pixels += int(cand.sum())
            ca_ds.GetRasterBand(1).WriteArray(np.where(cand, cat, 0), x, y)
        monitor.progress((n + 1) / len(windows))
    out_ds = ch_ds = ca_ds = None  # closed (flushed) here: the polygons read the files next
    return cand_pixels


def _summary(
    first, second, confidence, src: ChangeInputs, opts: ChangeOptions, c1, c2, pairs, legend, poly, cand
) -> dict:
    area = src.area
    m_px = pairs.reshape(len(src.v1), len(src.v2))
    changed_px = sum(c["pixels"] for c in legend if c["changed"])
    return {
        "first": first,
        "second": second,
        "confidence": confidence or None,
        "confidence_threshold_percent": opts.threshold if confidence else None,
        "second_warped": src.warped,
        "pixel_area_ha": area,
        "ignore": opts.ignore_list,
        "width": src.ds1.RasterXSize,
        "height": src.ds1.RasterYSize,
        "classes_first": c1,
        "classes_second": c2,
        "matrix_pixels": m_px.tolist(),
        "matrix_ha": (m_px * area).tolist(),
        "matrix_orientation": "rows = first map (from), columns = second (to)",
        "compared_ha": float(pairs.sum() * area),
        "changed_ha": float(changed_px * area),
        "unchanged_ha": float((pairs.sum() - changed_px) * area),
        "categories": legend,
        "mmu_ha": opts.mmu_ha,
        "mmu_pixels": opts.mmu_pixels(area),
        "change_polygons": poly,
        "update_candidates": cand,
        "raster_encoding": "compact category index 1..K (see categories), 0 = not compared",
    }


def land_cover_change(
    first: str,
    second: str,
    confidence: Optional[str] = None,
    options: Optional[ChangeOptions] = None,
    outputs: Optional[ChangeOutputs] = None,
    block: int = DEFAULT_BLOCK,
    monitor: Optional[Monitor] = None,
    **kwargs,
) -> dict:
    """Compare ``first`` (earlier date / the map) with ``second`` (later date / the model); returns the summary
    dict written to ``out_json``. ``outputs`` (or keywords out_raster, out_matrix, out_json, out_polygons,
    out_candidates) and ``options`` (or keywords mmu_ha, threshold, ignore, names: :class:`.plan.ChangeOptions`)."""
    monitor = monitor or Monitor()
    log = monitor.info
    outs = outputs or ChangeOutputs.take(kwargs)
    opts = options or ChangeOptions.read(candidates=bool(outs.candidates), confidence=bool(confidence), **kwargs)
    if outs.candidates and not confidence:  # also with ``options`` given (ChangeOptions.read checks it otherwise)
        raise SatClassifyError(CANDIDATES_NEED_CONFIDENCE)
    src = ChangeInputs.open(first, second, confidence, opts.ignore_list, log)
    windows = list(raster.iter_windows(src.ds1.RasterXSize, src.ds1.RasterYSize, block))
    pairs = _count_pairs(src, windows, opts.ignore_list, monitor.sub(0.0, 0.3))
    c1 = compared_classes(src.v1, opts.names_table, None, "both", src.ds1, src.src2, False, False)
    c2 = compared_classes(src.v2, opts.names_table, None, "both", src.src2, src.ds1, False, False)
    cat_lut, categories = change_categories(pairs, c1, c2, src.area)
    legend = list(categories.values())
    tmp_change = _temp_tif(outs.polygons, src.ds1, _category_type(legend)) if outs.polygons else None
    tmp_cand = _temp_tif(outs.candidates, src.ds1, _category_type(legend)) if outs.candidates else None
    # every output is written under a temporary name and renamed at the very end, all of them together: a
    # failure or a cancel at any step leaves none of them (and removes the sieve's temporary rasters)
    with contextlib.ExitStack() as stack:
        tmp = {
            k: stack.enter_context(raster.AtomicOutput(getattr(outs, k))) if getattr(outs, k) else None
            for k in ("json", "matrix", "raster", "polygons", "candidates")
        }
        stack.callback(_remove, tmp_cand)
        stack.callback(_remove, tmp_change)
        cand_pixels = _write_categories(
            src,
            windows,
            cat_lut,
            legend,
            {"raster": tmp["raster"], "change": tmp_change, "candidates": tmp_cand},
            {"SATCLASSIFY_FIRST": first, "SATCLASSIFY_SECOND": second},
            opts.threshold,
            monitor.sub(0.3, 0.6),
        )
        threshold_px, srs = opts.mmu_pixels(src.area), raster.srs_of(src.ds1)
        poly = cand = None
        tmp_poly, tmp_cand_out = tmp["polygons"], tmp["candidates"]
        if tmp_change is not None and tmp_poly is not None:  # both set iff outs.polygons
            poly = _polygons(
                tmp_change, tmp_poly, CHANGE_LAYER, categories, opts.mmu_ha, threshold_px, srs, None, monitor
            )
        monitor.progress(0.8)
        if tmp_cand is not None and tmp_cand_out is not None:  # both set iff outs.candidates
            cand = _polygons(
                tmp_cand,
                tmp_cand_out,
                CANDIDATE_LAYER,
                categories,
                opts.mmu_ha,
                threshold_px,
                srs,
                {"confidence_threshold": opts.threshold},
                monitor,
            )
            cand["pixels"] = cand_pixels
        monitor.progress(0.95)
        summary = _summary(first, second, confidence, src, opts, c1, c2, pairs, legend, poly, cand)
        if tmp["matrix"]:
            with open(tmp["matrix"], "w", encoding="utf-8", newline="") as f:
                f.write(matrix_csv(c1, c2, summary["matrix_ha"]))
        if tmp["json"]:
            with open(tmp["json"], "w", encoding="utf-8") as f:
                json.dump(summary, f, indent=1)
    monitor.progress(1.0)
    log(
        f"{summary['compared_ha']:.2f} ha compared: {summary['changed_ha']:.2f} ha changed in "
        f"{sum(1 for c in legend if c['changed'])} from-to classes"
        + (f", {poly['polygons']} change polygons >= {opts.mmu_ha:g} ha" if poly else "")
        + (f", {cand['polygons']} update candidate polygons" if cand else "")
    )
    return summary


def _conf_nodata(path: str) -> Optional[float]:
    ds = raster.open_raster(path, "confidence raster")
    return ds.GetRasterBand(1).GetNoDataValue()


def _confidence_scale(ds: gdal.Dataset, log):
    """(factor to percent, nodata) of a confidence raster: integer rasters are percent; a float raster whose
    values all lie in 0..1 holds fractions."""
    band = ds.GetRasterBand(1)
    nd = band.GetNoDataValue()
    if band.DataType in (gdal.GDT_Float32, gdal.GDT_Float64):
        try:
            hi = band.ComputeRasterMinMax(False)[1]
        except RuntimeError:  # all nodata
            hi = 0.0
        if hi <= 1.0:
            log("the confidence raster holds values 0..1: read as fractions (x 100 = percent)")
            return 100.0, nd
    return 1.0, nd
