"""CORINE Land Cover polygons (or a CLC raster) -> uint8 class raster on a target grid (QGIS env only).

Vector input
    Any OGR source (GeoPackage, shapefile, the EEA file geodatabase). The code field is found by name
    (``code_18``, ``Code_12``, ``CODE_06``, ``code_00``, ``code_90``, ``clc_code``, ``code``; any case) unless
    given. Codes may be text or numbers ("211", 211, 211.0). Each distinct code is mapped once to its class
    value (CLC level 1/2/3 or a mapping table) and GDAL burns that value through a SQLite-dialect
    ``CASE`` expression, so the rasterization itself is GDAL's C loop: with the centre rule the pixels are
    exactly those of ``gdal_rasterize -a <value>``. Polygons are reprojected on the fly to the grid's CRS.
    Codes that are not CLC level-3 codes (e.g. "999", "abc", 47) become 0 (no label); they are counted and
    reported in the log. Features without a code are no label too.

    Invalid geometries are rasterized as drawn: GDAL fills polygons with the even-odd scanline rule, so a
    self-intersecting "bow-tie" gets both lobes filled (what ``MakeValid`` would return) and no feature is
    dropped. Overlapping polygons: the later feature wins (centre and all-touched), as in gdal_rasterize.

Rules
    ``centre``: a pixel takes the class of the polygon containing its centre (GDAL default).
    ``all_touched``: every pixel a polygon touches (GDAL ``ALL_TOUCHED``); the later feature wins.
    ``majority``: the class covering most of the pixel, estimated on ``supersample`` x ``supersample``
    sub-pixels (row strips, memory stays flat). Area outside every polygon counts as "no label" and loses
    ties; ties between classes go to the lower value. The optional mixed raster (uint8, 1 = mixed) marks
    pixels whose dominant class covers less than ``threshold`` of the pixel and pixels where sub-pixels are
    claimed by overlapping polygons of different classes (the first and the last polygon in layer order
    covering a sub-pixel differ).

Raster input
    A CLC raster with grid codes (1..44; 48, 49, 50, 128, 255 = no data) or level-3 codes (111..523;
    999, 990, 995 = no data) is resampled to the grid (nearest for ``centre``, mode for ``majority``) and
    remapped. ``all_touched`` and the mixed raster need polygons.
"""
from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from osgeo import gdal, ogr, osr

from .. import raster
from ..contract import clc
from ..contract.errors import SatClassifyError
from ..contract.feedback import Canceled

gdal.UseExceptions()
ogr.UseExceptions()

RULES = ("centre", "all_touched", "majority")
CODE_FIELDS = ("code_18", "code_12", "code_06", "code_00", "code_90", "clc_code", "code")
VALUE_FIELD = "satclassify_value"
#: class rasters are long runs of one value: PackBits (baseline TIFF, any reader) compresses them about as
#: well as DEFLATE at a fraction of the time
CLASS_GTIFF_OPTIONS = ("TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=PACKBITS", "BIGTIFF=IF_SAFER")
POLYGON_TYPES = {ogr.wkbPolygon, ogr.wkbMultiPolygon, ogr.wkbCurvePolygon, ogr.wkbMultiSurface, ogr.wkbUnknown}


@dataclass
class Grid:
    width: int
    height: int
    geotransform: Tuple[float, ...]
    wkt: str

    @property
    def bounds(self):
        gt = self.geotransform
        return (gt[0], gt[3] + gt[5] * self.height, gt[0] + gt[1] * self.width, gt[3])

    @classmethod
    def from_raster(cls, path: str) -> "Grid":
        ds = raster.open_raster(path, "reference raster")
        w, h, gt, wkt = raster.grid_of(ds)
        if gt[2] or gt[4]:
            raise SatClassifyError(f"reference raster '{path}' is rotated: warp it to a north-up grid first")
        return cls(w, h, tuple(gt), wkt)

    @classmethod
    def from_extent(cls, extent: Sequence[float], wkt: str, pixel_size: float) -> "Grid":
        """Grid with its origin at the extent's top-left corner, covering the extent (rounded up)."""
        xmin, ymin, xmax, ymax = [float(v) for v in extent]
        if not pixel_size or pixel_size <= 0:
            raise SatClassifyError(f"pixel size must be positive, not {pixel_size}")
        if xmax <= xmin or ymax <= ymin:
            raise SatClassifyError(f"extent {tuple(extent)} is empty: give xmin < xmax and ymin < ymax")
        if not wkt:
            raise SatClassifyError("no target CRS given: choose a CRS for the output grid")
        w = int(math.ceil((xmax - xmin) / pixel_size - 1e-9))
        h = int(math.ceil((ymax - ymin) / pixel_size - 1e-9))
        if w * h > 2 ** 33:
            raise SatClassifyError(f"the grid would be {w} x {h} pixels: use a larger pixel size or a smaller extent")
        return cls(w, h, (xmin, float(pixel_size), 0.0, ymax, 0.0, -float(pixel_size)), wkt)


@dataclass
class RasterizeResult:
    output: str
    classes: List[clc.ClassInfo]
    features: int = 0
    unknown: Dict[str, int] = field(default_factory=dict)  # raw code -> features
    no_code: int = 0
    mixed_pixels: int = 0
    seconds: float = 0.0


def class_table(level: int = 3, mapping_csv: Optional[str] = None):
    """(level-3 code -> value, class table) for a CLC level or a mapping table CSV."""
    if mapping_csv:
        return clc.read_mapping_csv(mapping_csv)
    return clc.code_to_value(level), clc.classes(level)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(raw) -> str:
    if isinstance(raw, str):
        return "'" + raw.replace("'", "''") + "'"
    return repr(raw)


def find_code_field(layer: ogr.Layer, wanted: Optional[str] = None) -> str:
    defn = layer.GetLayerDefn()
    names = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    lower = {n.lower(): n for n in names}
    if wanted:
        if wanted.lower() in lower:
            return lower[wanted.lower()]
        raise SatClassifyError(f"field '{wanted}' is not in layer '{layer.GetName()}' "
                               f"(fields: {', '.join(names) or 'none'}): choose the CLC code field")
    for cand in CODE_FIELDS:
        if cand in lower:
            return lower[cand]
    raise SatClassifyError(f"no CLC code field (code_18, code_12, code_06, ...) in layer '{layer.GetName()}' "
                           f"(fields: {', '.join(names) or 'none'}): choose the code field (FIELD)")


def _open_vector(path: str, layer_name: Optional[str]):
    try:
        ds = gdal.OpenEx(path, gdal.OF_VECTOR)
    except RuntimeError:
        return None, None
    if ds is None or ds.GetLayerCount() == 0:
        return None, None
    if layer_name:
        lyr = ds.GetLayerByName(layer_name)
        if lyr is None:
            names = [ds.GetLayer(i).GetName() for i in range(ds.GetLayerCount())]
            raise SatClassifyError(f"'{path}' has no layer '{layer_name}' (layers: {', '.join(names)})")
    else:
        lyr = ds.GetLayer(0)
    return ds, lyr


def rasterize_clc(source: str, output: str, grid: Grid, level: int = 3, mapping_csv: Optional[str] = None,
                  field_name: Optional[str] = None, layer_name: Optional[str] = None, rule: str = "centre",
                  supersample: int = 4, mixed_output: Optional[str] = None, threshold: float = 0.75,
                  progress: Optional[Callable[[float], None]] = None,
                  is_canceled: Optional[Callable[[], bool]] = None,
                  log: Optional[Callable[[str], None]] = None) -> RasterizeResult:
    t0 = time.perf_counter()
    log = log or (lambda m: None)
    progress = progress or (lambda f: None)
    is_canceled = is_canceled or (lambda: False)
    if rule not in RULES:
        raise SatClassifyError(f"rule must be one of {', '.join(RULES)}, not {rule!r}")
    if mixed_output and rule != "majority":
        raise SatClassifyError("the mixed-pixel raster needs the majority rule: choose RULE = majority")
    if not 0.0 < float(threshold) <= 1.0:
        raise SatClassifyError(f"mixed threshold must be in (0, 1], not {threshold}")
    if not 1 <= int(supersample) <= 16:
        raise SatClassifyError(f"supersampling must be 1..16 sub-pixels per side, not {supersample}")
    if grid.width <= 0 or grid.height <= 0:
        raise SatClassifyError("the target grid is empty")
    code2val, table = class_table(level, mapping_csv)
    if not source:
        raise SatClassifyError("no CLC input given")
    vds, lyr = _open_vector(source, layer_name)
    if vds is not None:
        result = _rasterize_vector(vds, lyr, output, grid, code2val, table, field_name, rule, int(supersample),
                                   mixed_output, float(threshold), progress, is_canceled, log)
    else:
        try:
            rds = gdal.OpenEx(source, gdal.OF_RASTER)
        except RuntimeError as e:
            raise SatClassifyError(f"cannot open CLC input '{source}' as polygons or raster: {e}")
        if rds is None:
            raise SatClassifyError(f"cannot open CLC input '{source}' as polygons or raster")
        if rule == "all_touched":
            raise SatClassifyError("the all-touched rule applies to polygons: choose centre or majority "
                                   "for a CLC raster")
        result = _rasterize_raster(rds, output, grid, code2val, table, rule, progress, is_canceled, log)
    result.seconds = time.perf_counter() - t0
    return result


# -- vector ---------------------------------------------------------------------------------------
def _value_sql(ds, lyr, code_field: str, code2val: Dict[int, int], log) -> Tuple[str, Dict[str, int], int, int]:
    """SQL giving each feature its class value; also (unknown raw codes -> features, no-code features, known)."""
    lname = lyr.GetName()
    q = f"SELECT {_quote(code_field)} AS c, COUNT(*) AS n FROM {_quote(lname)} GROUP BY {_quote(code_field)}"
    try:
        res = ds.ExecuteSQL(q, dialect="SQLITE")
    except RuntimeError as e:
        raise SatClassifyError(f"cannot read field '{code_field}' of layer '{lname}': {e}")
    distinct = []
    try:
        for f in res:
            distinct.append((f.GetField(0), f.GetField(1)))
    finally:
        ds.ReleaseResultSet(res)
    unknown: Dict[str, int] = {}
    no_code = known = 0
    whens = []
    for raw, n in distinct:
        try:
            code = clc.parse_code(raw)
        except SatClassifyError:
            unknown[str(raw)] = unknown.get(str(raw), 0) + n
            continue
        if code is None:
            no_code += n
            continue
        value = code2val.get(code)
        if value is None:
            unknown[str(raw)] = unknown.get(str(raw), 0) + n
            continue
        known += n
        whens.append(f"WHEN {_literal(raw)} THEN {int(value)}")
    geom_col = lyr.GetGeometryColumn() or "GEOMETRY"
    case = f"CASE {_quote(code_field)} {' '.join(whens)} ELSE 0 END" if whens else "0"
    sql = f"SELECT {_quote(geom_col)}, {case} AS {VALUE_FIELD} FROM {_quote(lname)}"
    return sql, unknown, no_code, known


def _filter_rect(grid: Grid, src_srs, dst_srs, margin_px: float = 2.0):
    """The grid's bounds (plus a margin) in the source CRS, as (xmin, ymin, xmax, ymax)."""
    xmin, ymin, xmax, ymax = grid.bounds
    m = margin_px * max(abs(grid.geotransform[1]), abs(grid.geotransform[5]))
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for x, y in ((xmin - m, ymin - m), (xmax + m, ymin - m), (xmax + m, ymax + m), (xmin - m, ymax + m),
                 (xmin - m, ymin - m)):
        ring.AddPoint_2D(x, y)
    poly = ogr.Geometry(ogr.wkbPolygon)
    poly.AddGeometry(ring)
    if src_srs is not None and dst_srs is not None and not src_srs.IsSame(dst_srs):
        poly.Segmentize(max(xmax - xmin, ymax - ymin) / 64.0)
        try:
            poly.Transform(osr.CoordinateTransformation(dst_srs, src_srs))
        except RuntimeError as e:
            raise SatClassifyError(f"cannot transform the output grid to the CLC layer's CRS: {e}")
    e = poly.GetEnvelope()
    return e[0], e[2], e[1], e[3]


def _gdal_callback(progress, is_canceled, start: float, span: float):
    def cb(frac, msg, data):
        if is_canceled():
            return 0
        progress(start + span * frac)
        return 1
    return cb


def _rasterize_vector(vds, lyr, output, grid, code2val, table, field_name, rule, k, mixed_output, threshold,
                      progress, is_canceled, log) -> RasterizeResult:
    gtype = ogr.GT_Flatten(lyr.GetGeomType())
    if gtype not in POLYGON_TYPES:
        raise SatClassifyError(f"layer '{lyr.GetName()}' has {ogr.GeometryTypeToName(gtype)} geometries: "
                               "CORINE Land Cover needs polygons")
    nfeat = lyr.GetFeatureCount()
    if nfeat == 0:
        raise SatClassifyError(f"layer '{lyr.GetName()}' has no features: nothing to rasterize")
    code_field = find_code_field(lyr, field_name)
    log(f"CLC layer '{lyr.GetName()}': {nfeat} features, code field '{code_field}'")
    sql, unknown, no_code, known = _value_sql(vds, lyr, code_field, code2val, log)
    result = RasterizeResult(output, list(table), features=nfeat, unknown=unknown, no_code=no_code)
    if unknown:
        shown = ", ".join(f"'{c}' ({n})" for c, n in sorted(unknown.items(), key=lambda kv: -kv[1])[:10])
        log(f"WARNING: {sum(unknown.values())} features have codes that are not CLC level-3 codes and are left "
            f"as no label (0): {shown}")
    if no_code:
        log(f"{no_code} features have no code (empty, NULL or CLC no-data 999/990/995): no label")
    if known == 0:
        raise SatClassifyError(f"none of the {nfeat} features of layer '{lyr.GetName()}' has a known CLC code in "
                               f"field '{code_field}' (values such as {', '.join(list(unknown)[:5])}): "
                               "choose the right code field or a mapping table")
    src_srs = lyr.GetSpatialRef()
    dst_srs = raster.srs_from_wkt(grid.wkt)
    if src_srs is None:
        log("WARNING: the CLC layer has no CRS; its coordinates are taken to be in the output grid's CRS")
    elif dst_srs is None:
        log("WARNING: the output grid has no CRS; the polygons are not reprojected")
    rect = _filter_rect(grid, src_srs, dst_srs)
    lyr.SetSpatialFilterRect(*rect)
    n_inside = lyr.GetFeatureCount()
    lyr.SetSpatialFilter(None)
    if n_inside == 0:
        e = lyr.GetExtent()
        raise SatClassifyError(
            f"no polygon of layer '{lyr.GetName()}' overlaps the output grid (grid bounds in the layer's CRS: "
            f"{rect[0]:.0f}, {rect[1]:.0f}, {rect[2]:.0f}, {rect[3]:.0f}; layer extent: {e[0]:.0f}, {e[2]:.0f}, "
            f"{e[1]:.0f}, {e[3]:.0f}): check the reference raster or extent, and the CRS of both")
    log(f"{n_inside} features around the output grid")
    with raster.AtomicOutput(output) as tmp:
        out = raster.create_geotiff(tmp, grid.width, grid.height, 1, gdal.GDT_Byte, grid.geotransform, grid.wkt,
                                     nodata=0, options=CLASS_GTIFF_OPTIONS, classes=table)
        band = out.GetRasterBand(1)
        if rule in ("centre", "all_touched"):
            filt = ogr.CreateGeometryFromWkt(
                f"POLYGON(({rect[0]} {rect[1]},{rect[2]} {rect[1]},{rect[2]} {rect[3]},{rect[0]} {rect[3]},"
                f"{rect[0]} {rect[1]}))")
            res = vds.ExecuteSQL(sql, spatialFilter=filt, dialect="SQLITE")
            try:
                opts = [f"ATTRIBUTE={VALUE_FIELD}"]
                if rule == "all_touched":
                    opts.append("ALL_TOUCHED=TRUE")
                try:
                    gdal.RasterizeLayer(out, [1], res, options=opts,
                                        callback=_gdal_callback(progress, is_canceled, 0.0, 1.0))
                except RuntimeError as e:
                    if is_canceled():
                        raise Canceled()
                    raise SatClassifyError(f"rasterizing layer '{lyr.GetName()}' failed: {e}")
            finally:
                vds.ReleaseResultSet(res)
        else:
            with _MixedWriter(mixed_output, grid) as mixed:
                result.mixed_pixels = _majority(vds, sql, rect, grid, band, k, mixed, threshold, progress,
                                                is_canceled, log)
        out.FlushCache()
        out = None
    if rule == "majority" and mixed_output:
        log(f"mixed pixels: {result.mixed_pixels}")
    progress(1.0)
    return result


class _MixedWriter:
    """Optional uint8 0/1 raster written atomically beside the class raster."""

    def __init__(self, path: Optional[str], grid: Grid):
        self.path, self.grid, self.ctx, self.ds, self.band = path, grid, None, None, None

    def __enter__(self):
        if self.path:
            self.ctx = raster.AtomicOutput(self.path)
            tmp = self.ctx.__enter__()
            self.ds = raster.create_geotiff(tmp, self.grid.width, self.grid.height, 1, gdal.GDT_Byte,
                                             self.grid.geotransform, self.grid.wkt, options=CLASS_GTIFF_OPTIONS,
                                             descriptions=["mixed"], nodata_name="pure",
                                             classes=[{"value": 1, "name": "mixed", "color": "#ff00ff"}])
            self.band = self.ds.GetRasterBand(1)
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.ctx is not None:
            if self.ds is not None:
                self.ds.FlushCache()
            self.band = None
            self.ds = None
            self.ctx.__exit__(exc_type, exc, tb)
        return False


def _memory_layer(vds, sql, rect, grid, reverse=False):
    opts = dict(format="Memory", SQLStatement=sql, SQLDialect="SQLITE", spatFilter=list(rect),
                geometryType="PROMOTE_TO_MULTI")
    if grid.wkt:
        opts["dstSRS"] = grid.wkt
    try:
        mem = gdal.VectorTranslate("", vds, **opts)
    except RuntimeError as e:
        raise SatClassifyError(f"cannot read the CLC polygons: {e}")
    return mem


def _reversed_copy(mem):
    """The same polygons in reverse layer order (for the overlap test of the mixed raster)."""
    name = mem.GetLayer(0).GetName().replace('"', '""')
    try:
        return gdal.VectorTranslate("", mem, format="Memory",
                                    SQLStatement=f'SELECT * FROM "{name}" ORDER BY FID DESC')
    except RuntimeError as e:
        raise SatClassifyError(f"cannot reorder the CLC polygons: {e}")


def _majority(vds, sql, rect, grid, band, k, mixed, threshold, progress, is_canceled, log) -> int:
    mem = _memory_layer(vds, sql, rect, grid)
    mlyr = mem.GetLayer(0)
    rev = _reversed_copy(mem) if mixed.band is not None else None
    rlyr = rev.GetLayer(0) if rev is not None else None
    w, h = grid.width, grid.height
    gt = grid.geotransform
    fine_w = w * k
    rows = max(1, min(h, (32 * 2 ** 20) // max(1, fine_w * k)))  # ~32 MB of sub-pixels per strip
    drv = gdal.GetDriverByName("MEM")
    n_mixed = 0
    need_thresh = mixed.band is not None
    x0w, x1w = gt[0], gt[0] + gt[1] * w

    def burn_strip(y0, layer):
        """Sub-pixel raster of one strip. Runs in worker threads (GDAL releases the GIL): the next strip is
        rasterized while numpy reduces this one; each OGR layer is used by one thread at a time."""
        r = min(rows, h - y0)
        fgt = (gt[0], gt[1] / k, 0.0, gt[3] + gt[5] * y0, 0.0, gt[5] / k)
        ya, yb = gt[3] + gt[5] * y0, gt[3] + gt[5] * (y0 + r)
        rect = (min(x0w, x1w), min(ya, yb), max(x0w, x1w), max(ya, yb))
        return _burn(drv, fine_w, r * k, fgt, grid.wkt, layer, rect)

    starts = list(range(0, h, rows))
    pool = ThreadPoolExecutor(max_workers=2 if need_thresh else 1)

    def submit(y0):
        return (pool.submit(burn_strip, y0, mlyr), pool.submit(burn_strip, y0, rlyr) if need_thresh else None)

    try:
        ahead = submit(starts[0])
        for n_strip, y0 in enumerate(starts):
            if is_canceled():
                raise Canceled()
            fine = ahead[0].result()
            rfine = ahead[1].result() if ahead[1] is not None else None
            if n_strip + 1 < len(starts):
                ahead = submit(starts[n_strip + 1])
            r = min(rows, h - y0)
            n_mixed += _majority_strip(fine, rfine, r, k, w, y0, band, mixed, threshold, need_thresh)
            progress((y0 + r) / h)
    finally:
        pool.shutdown(wait=True)
    return n_mixed


def _majority_strip(fine, rfine, r, k, w, y0, band, mixed, threshold, need_thresh) -> int:
    kk = k * k
    blocks = fine.reshape(r, k, w, k)
    impure = _impure_blocks(fine, r, k, w)
    outv = blocks[:, k // 2, :, k // 2].copy()
    mixed_strip = np.zeros((r, w), np.uint8) if need_thresh else None
    ri, ci = np.nonzero(impure)
    if ri.size:
        if k in _WORD:  # gather one machine word per block row
            sub = fine.view(_WORD[k]).reshape(r, k, w)[ri, :, ci].view(np.uint8).reshape(ri.size, kk)
        else:
            sub = blocks.transpose(0, 2, 1, 3)[ri, ci].reshape(ri.size, kk)
        # most mixed blocks hold exactly two values: count them directly
        lo, hi = sub.min(axis=1), sub.max(axis=1)
        n_lo = (sub == lo[:, None]).sum(axis=1)
        two = (n_lo + (sub == hi[:, None]).sum(axis=1)) == kk
        n_hi = kk - n_lo
        # "no label" (0) loses ties; otherwise the lower value wins ties
        pick_hi = (n_hi > n_lo) | ((n_hi == n_lo) & (lo == 0))
        best_v = np.where(pick_hi, hi, lo)
        best_n = np.where(pick_hi, n_hi, n_lo)
        outv[ri, ci] = best_v  # blocks with 3+ values are overwritten just below
        if need_thresh:
            mixed_strip[ri, ci] = best_n < threshold * kk
        rest = np.nonzero(~two)[0]
        if rest.size:
            _mode_many(sub[rest], ri[rest], ci[rest], kk, outv, mixed_strip, threshold)
    band.WriteArray(outv, 0, y0)
    if need_thresh:
        mixed_strip[_differing_blocks(fine, rfine, r, k, w)] = 1
        mixed.band.WriteArray(mixed_strip, 0, y0)
        return int(mixed_strip.sum())
    return 0


def _mode_many(sub, ri, ci, kk, outv, mixed_strip, threshold):
    """Majority of blocks holding three or more values (histogram per block)."""
    vals = np.nonzero(np.bincount(sub.ravel(), minlength=256))[0]
    lut = np.zeros(256, np.int32)
    lut[vals] = np.arange(vals.size)
    m = vals.size
    for s in range(0, ri.size, 65536):
        part = sub[s:s + 65536]
        n = part.shape[0]
        idx = lut[part] + (np.arange(n, dtype=np.int32) * m)[:, None]
        counts = np.bincount(idx.ravel(), minlength=n * m).reshape(n, m)
        score = counts * 2 + (vals != 0)[None, :]
        best = score.argmax(axis=1)
        outv[ri[s:s + n], ci[s:s + n]] = vals[best]
        if mixed_strip is not None:
            mixed_strip[ri[s:s + n], ci[s:s + n]] = counts[np.arange(n), best] < threshold * kk


_WORD = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _impure_blocks(fine: np.ndarray, r: int, k: int, w: int) -> np.ndarray:
    """(r, w) bool: the k x k sub-pixel blocks of ``fine`` that hold more than one value."""
    dt = _WORD.get(k)
    if dt is None:
        blocks = fine.reshape(r, k, w, k)
        return (blocks != blocks[:, :1, :, :1]).any(axis=(1, 3))
    rows = fine.view(dt).reshape(r, k, w)  # one machine word per block row
    first = rows[:, 0]
    rep = np.array(sum(1 << (8 * i) for i in range(k)), dtype=dt)
    impure = first != (first & dt(0xff)) * rep
    for j in range(1, k):
        impure |= rows[:, j] != first
    return impure


def _differing_blocks(a: np.ndarray, b: np.ndarray, r: int, k: int, w: int) -> np.ndarray:
    dt = _WORD.get(k)
    if dt is None:
        return (a != b).reshape(r, k, w, k).any(axis=(1, 3))
    return (a.view(dt) != b.view(dt)).reshape(r, k, w).any(axis=1)


def _burn(drv, width, height, gt, wkt, layer, rect) -> np.ndarray:
    ds = drv.Create("", width, height, 1, gdal.GDT_Byte)
    ds.SetGeoTransform(gt)
    if wkt:
        ds.SetProjection(wkt)
    layer.SetSpatialFilterRect(*rect)
    gdal.RasterizeLayer(ds, [1], layer, options=[f"ATTRIBUTE={VALUE_FIELD}"])
    layer.SetSpatialFilter(None)
    arr = ds.GetRasterBand(1).ReadAsArray()
    ds = None
    return arr


# -- raster ---------------------------------------------------------------------------------------
def _rasterize_raster(rds, output, grid, code2val, table, rule, progress, is_canceled, log) -> RasterizeResult:
    if rds.RasterCount < 1:
        raise SatClassifyError(f"CLC raster '{rds.GetDescription()}' has no bands")
    band = rds.GetRasterBand(1)
    hist = band.GetHistogram(-0.5, 1023.5, 1024, include_out_of_range=1, approx_ok=0)
    present = [v for v, n in enumerate(hist) if n]
    codes = [v for v in present if v not in clc.NODATA_GRID_CODES and v > 50]
    source = "code" if codes or any(v > 255 for v in present) else "grid"
    lut = np.zeros(1024, np.uint8)
    if source == "code":
        for code, value in code2val.items():
            lut[code] = value
        known = set(code2val)
        nodata = clc.NODATA_CODES
    else:
        g2c = clc.grid_code_to_code()
        for g, code in g2c.items():
            if code in code2val:
                lut[g] = code2val[code]
        known = set(g2c)
        nodata = clc.NODATA_GRID_CODES
    unknown = {str(v): hist[v] for v in present if v not in known and v not in nodata and v != 0}
    log(f"CLC raster: values are {'level-3 codes' if source == 'code' else 'grid codes'}")
    if unknown:
        log(f"WARNING: {sum(unknown.values())} pixels hold values that are not CLC "
            f"{'codes' if source == 'code' else 'grid codes'} and become no label: "
            + ", ".join(f"{v} ({n})" for v, n in list(unknown.items())[:10]))
    ref = gdal.GetDriverByName("MEM").Create("", grid.width, grid.height, 1, gdal.GDT_Byte)
    ref.SetGeoTransform(grid.geotransform)
    if grid.wkt:
        ref.SetProjection(grid.wkt)
    nd = band.GetNoDataValue()
    warped = raster.warp_to_grid(rds, ref, resample="near" if rule == "centre" else "mode", src_nodata=nd)
    wband = warped.GetRasterBand(1)
    result = RasterizeResult(output, list(table), unknown={k: int(v) for k, v in unknown.items()})
    with raster.AtomicOutput(output) as tmp:
        out = raster.create_geotiff(tmp, grid.width, grid.height, 1, gdal.GDT_Byte, grid.geotransform, grid.wkt,
                                     nodata=0, options=CLASS_GTIFF_OPTIONS, classes=table)
        ob = out.GetRasterBand(1)
        rows = max(1, (8 * 2 ** 20) // max(1, grid.width))
        for y0 in range(0, grid.height, rows):
            if is_canceled():
                raise Canceled()
            r = min(rows, grid.height - y0)
            a = wband.ReadAsArray(0, y0, grid.width, r).astype(np.int64)
            a[(a < 0) | (a > 1023)] = 0
            ob.WriteArray(lut[a], 0, y0)
            progress((y0 + r) / grid.height)
        out.FlushCache()
        ob = None
        out = None
    return result
