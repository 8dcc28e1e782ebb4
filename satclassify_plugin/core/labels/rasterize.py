"""CORINE Land Cover polygons (or a CLC raster), or your own labels -> uint8 class raster on a target grid (QGIS env
only).

Two entry points share one engine: :func:`rasterize_clc` (the CLC preset: ``_ClcScheme``) and
:func:`rasterize_labels` (own labels: any polygon or point layer with a class field, a class table given or derived,
:mod:`.classtable`: ``_TableScheme``). Both take a :class:`RasterizeOptions`; a scheme only turns raw codes into
class values and names the codes it does not know. Own labels also write their class table (with codes) into the
raster's metadata (:func:`label_metadata`). Points label the pixel holding them (:func:`_rasterize_points`).

Vector input
    Any OGR source (GeoPackage, shapefile, the EEA file geodatabase). The code field is found by name
    (``code_18``, ``Code_12``, ``CODE_06``, ``code_00``, ``code_90``, ``clc_code``, ``code``; any case) unless
    given. Codes may be text or numbers ("211", 211, 211.0). Each distinct code is mapped once to its class
    value (CLC level 1/2/3 or a mapping table) and GDAL burns that value through a SQLite-dialect
    ``CASE`` expression, so the rasterization itself is GDAL's C loop: with the centre rule the pixels are
    exactly those of ``gdal_rasterize -a <value>``. Polygons are reprojected on the fly to the grid's CRS.
    Codes that are not CLC level-3 codes (e.g. "abc", 47, a fractional 211.7, never truncated) become 0 (no
    label); they are counted and reported in the log, apart from CLC codes a mapping table leaves out. Features
    without a code (empty, 999/990/995) are no label too. A CRS that cannot be read (a damaged .prj) is refused.

    Invalid geometries are rasterized as drawn: GDAL fills polygons with the even-odd scanline rule, so a
    self-intersecting "bow-tie" gets both lobes filled (what ``MakeValid`` would return) and no feature is
    dropped. Overlapping polygons: the later feature wins (centre and all-touched), as in gdal_rasterize.

Rules
    ``centre``: a pixel takes the class of the polygon containing its centre (GDAL default).
    ``all_touched``: every pixel a polygon touches (GDAL ``ALL_TOUCHED``); the later feature wins.
    ``majority``: the class covering the largest exact area of the pixel (:mod:`.coverage`: exact fractions
    on the pixels a polygon boundary crosses, the centre rule elsewhere; bands of rows read with a spatial filter,
    cut into strips of a bounded number of edges: memory follows a band, not the layer).
    Area outside every polygon counts as "no label" and loses ties; fractions within 1e-7 of the pixel tie
    and the tie goes to the lower class value. Where polygons overlap, the later one is on top. The optional
    mixed raster (uint8, 0 = pure) marks with 1 (partly covered) pixels whose dominant class (or "no label") covers
    less than ``threshold`` of the pixel, and with 2 (claimed twice) pixels where overlapping polygons of different
    classes share area (inside a pixel; for pixels wholly under overlapping polygons: the first and the last one
    differ).

Raster input
    A CLC raster with grid codes (1..44; 48, 49, 50, 128, 255 = no data) or level-3 codes (111..523;
    999, 990, 995 = no data) is resampled to the grid (nearest for ``centre``, mode for ``majority``) and
    remapped. ``all_touched`` and the mixed raster need polygons.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from osgeo import gdal, ogr, osr

from .. import raster
from ..contract import clc
from ..contract.errors import SatClassifyError
from ..contract.feedback import Monitor
from . import clean, coverage
from .classtable import ClassTable, read_table_csv, table_from_codes, table_from_rows

gdal.UseExceptions()
ogr.UseExceptions()

RULES = ("centre", "all_touched", "majority")
CODE_FIELDS = ("code_18", "code_12", "code_06", "code_00", "code_90", "clc_code", "code")
VALUE_FIELD = "satclassify_value"
#: class rasters are long runs of one value: PackBits (baseline TIFF, any reader) compresses them about as
#: well as DEFLATE at a fraction of the time
CLASS_GTIFF_OPTIONS = ("TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=PACKBITS", "BIGTIFF=IF_SAFER")
POLYGON_TYPES = {ogr.wkbPolygon, ogr.wkbMultiPolygon, ogr.wkbCurvePolygon, ogr.wkbMultiSurface, ogr.wkbUnknown}
POINT_TYPES = {ogr.wkbPoint, ogr.wkbMultiPoint}
#: MIXED raster values (0 = pure): partly covered = the dominant class (or "no label") covers less than the
#: threshold (split between classes, or partly outside every polygon); claimed twice = overlapping polygons of
#: different classes share area in the pixel. Nonzero = noisy (buildpatches MASK_IS_NOISE)
MIXED_PARTLY, MIXED_TWICE = 1, 2
MIXED_CLASSES = (
    {"value": MIXED_PARTLY, "name": "partly covered", "color": "#ff00ff"},
    {"value": MIXED_TWICE, "name": "claimed twice", "color": "#ff0000"},
)
#: dataset metadata of a class raster of own labels (:func:`label_metadata`)
CLASSES_KEY = "SATCLASSIFY_CLASSES"
LABELS_KEY = "SATCLASSIFY_LABELS"


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
        if w * h > 2**33:
            raise SatClassifyError(f"the grid would be {w} x {h} pixels: use a larger pixel size or a smaller extent")
        return cls(w, h, (xmin, float(pixel_size), 0.0, ymax, 0.0, -float(pixel_size)), wkt)


@dataclass
class RasterizeResult:
    output: str
    classes: List[clc.ClassInfo]
    features: int = 0
    unknown: Dict[str, int] = field(default_factory=dict)  # raw code -> features (or pixels) left as no label
    #: the part of ``unknown`` that are CLC level-3 codes the mapping table does not map (not bad codes)
    unmapped: Dict[str, int] = field(default_factory=dict)
    no_code: int = 0
    mixed_pixels: int = 0
    #: MIXED values -> pixels: 1 = partly covered (split between classes / partly outside every polygon),
    #: 2 = claimed twice (overlapping polygons of different classes)
    mixed_counts: Dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: own labels: the class table (:class:`~.classtable.ClassTable`); points: what became of them
    table: Optional[ClassTable] = None
    points: Dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RasterizeOptions:
    """What the user chose for a rasterization (rasterizeclc's and rasterizelabels' parameters), checked when made.

    ``level``/``mapping_csv``: the CLC preset (:func:`rasterize_clc`); ``class_table_csv``/``class_rows``: a given
    class table of own labels (:func:`rasterize_labels`; neither: derived from the field's codes)."""

    level: int = 3
    mapping_csv: Optional[str] = None
    field_name: Optional[str] = None
    layer_name: Optional[str] = None
    rule: str = "centre"
    mixed_output: Optional[str] = None
    threshold: float = 0.75
    class_table_csv: Optional[str] = None
    class_rows: Optional[Tuple[dict, ...]] = None
    class_rows_name: str = "class table layer"

    def __post_init__(self):
        if self.rule not in RULES:
            raise SatClassifyError(f"rule must be one of {', '.join(RULES)}, not {self.rule!r}")
        if self.mixed_output and self.rule != "majority":
            raise SatClassifyError("the mixed-pixel raster needs the majority rule: choose RULE = majority")
        if not 0.0 < float(self.threshold) <= 1.0:
            raise SatClassifyError(f"mixed threshold must be in (0, 1], not {self.threshold}")
        if self.class_table_csv and self.class_rows is not None:
            raise SatClassifyError("give the class table once: a CSV file or a table layer, not both")
        object.__setattr__(self, "threshold", float(self.threshold))


class _Scheme:
    """How the raw codes of a class field become class values, and how to speak about them."""

    kind = "codes"  # "features have codes that are not <kind>"
    what = "polygons"
    allows_points = False

    def __init__(self, table):
        self.table = list(table)

    def lookup(self, raw) -> int:
        """> 0 the class value, 0 no code (no label), -1 a code left as no label and reported."""
        raise NotImplementedError

    def unmapped(self, unknown: Dict[str, int]) -> Dict[str, int]:
        return {}

    def none_known(self, unknown, unmapped) -> str:
        return "choose the right class field"

    def metadata(self) -> Optional[dict]:
        return None


class _ClcScheme(_Scheme):
    kind = "CLC level-3 codes"
    what = "CLC polygons"

    def __init__(self, level: int, mapping_csv: Optional[str]):
        code2val, table = class_table(level, mapping_csv)
        super().__init__(table)
        self.code2val = code2val

    def lookup(self, raw) -> int:
        try:
            code = clc.parse_code(raw)  # a fractional code (211.7) is refused here: never truncated to 211
        except SatClassifyError:
            return -1
        if code is None:
            return 0
        return self.code2val.get(code, -1)

    def unmapped(self, unknown):
        return _unmapped(unknown)

    def none_known(self, unknown, unmapped):
        if unknown and len(unmapped) == len(unknown):
            return "the mapping table (MAPPING) maps none of these CLC codes: add them to it"
        return "choose the right code field or a mapping table"


class _TableScheme(_Scheme):
    kind = "codes of the class table"
    what = "label features"
    allows_points = True

    def __init__(self, table: ClassTable):
        super().__init__(table.classes)
        self.ct = table

    def lookup(self, raw) -> int:
        return self.ct.value_of(raw)

    def none_known(self, unknown, unmapped):
        return "check the class field (FIELD) and that the class table's codes are the field's values"

    def metadata(self) -> dict:
        return label_metadata(self.table, self.ct)


def label_metadata(classes, table: Optional[ClassTable] = None, points: bool = False) -> dict:
    """Dataset metadata of a class raster of own labels: the class table with its codes (``SATCLASSIFY_CLASSES``,
    JSON; category names cannot hold codes, and :func:`raster.classes_from_raster` reads it back), where the table
    came from, and ``SATCLASSIFY_LABELS`` = "points" for point labels (buildpatches then centres a patch on each
    labelled pixel)."""
    md = {CLASSES_KEY: json.dumps([c.to_dict() for c in classes])}
    if table is not None:
        md["SATCLASSIFY_CLASS_TABLE"] = json.dumps(table.manifest_entry())
    md[LABELS_KEY] = "points" if points else "polygons"
    return md


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


def find_code_field(layer: ogr.Layer, wanted: Optional[str] = None, required: bool = False) -> str:
    defn = layer.GetLayerDefn()
    names = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    lower = {n.lower(): n for n in names}
    if wanted:
        if wanted.lower() in lower:
            return lower[wanted.lower()]
        raise SatClassifyError(
            f"field '{wanted}' is not in layer '{layer.GetName()}' "
            f"(fields: {', '.join(names) or 'none'}): choose the " + ("class field" if required else "CLC code field")
        )
    if required:
        raise SatClassifyError(
            f"no class field given: choose the field of layer '{layer.GetName()}' that holds the "
            f"class codes (FIELD; fields: {', '.join(names) or 'none'})"
        )
    for cand in CODE_FIELDS:
        if cand in lower:
            return lower[cand]
    raise SatClassifyError(
        f"no CLC code field (code_18, code_12, code_06, ...) in layer '{layer.GetName()}' "
        f"(fields: {', '.join(names) or 'none'}): choose the code field (FIELD)"
    )


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


def _check_grid(grid: Grid, source: str, what: str) -> None:
    if grid.width <= 0 or grid.height <= 0:
        raise SatClassifyError("the target grid is empty")
    if not source:
        raise SatClassifyError(f"no {what} input given")


def rasterize_clc(
    source: str,
    output: str,
    grid: Grid,
    options: Optional[RasterizeOptions] = None,
    *,
    monitor: Optional[Monitor] = None,
    **option_kw,
) -> RasterizeResult:
    """CLC polygons or a CLC raster -> class raster on ``grid``. ``options`` (or the same names as keywords, e.g.
    ``level=2, rule="majority"``) are the user's choices (:class:`RasterizeOptions`)."""
    t0 = time.perf_counter()
    monitor = monitor or Monitor()
    o = options or RasterizeOptions(**option_kw)
    _check_grid(grid, source, "CLC")
    scheme = _ClcScheme(o.level, o.mapping_csv)
    vds, lyr = _open_vector(source, o.layer_name)
    if vds is not None:
        result = _rasterize_vector(vds, lyr, output, grid, scheme, o, monitor)
    else:
        try:
            rds = gdal.OpenEx(source, gdal.OF_RASTER)
        except RuntimeError as e:
            raise SatClassifyError(f"cannot open CLC input '{source}' as polygons or raster: {e}")
        if rds is None:
            raise SatClassifyError(f"cannot open CLC input '{source}' as polygons or raster")
        if o.rule == "all_touched":
            raise SatClassifyError(
                "the all-touched rule applies to polygons: choose centre or majority for a CLC raster"
            )
        result = _rasterize_raster(rds, output, grid, scheme.code2val, scheme.table, o.rule, monitor)
    result.seconds = time.perf_counter() - t0
    return result


def rasterize_labels(
    source: str,
    output: str,
    grid: Grid,
    options: Optional[RasterizeOptions] = None,
    *,
    monitor: Optional[Monitor] = None,
    **option_kw,
) -> RasterizeResult:
    """Own labels: any polygon (or point) layer with a class field (``field_name``, required; text or numbers)
    -> class raster on ``grid`` with the class table given (``class_table_csv`` / ``class_rows``) or derived from
    the field's codes (:mod:`.classtable`). The same engine and rules as :func:`rasterize_clc` for polygons; points
    label the pixel holding each point (:func:`_rasterize_points`)."""
    t0 = time.perf_counter()
    monitor = monitor or Monitor()
    o = options or RasterizeOptions(**option_kw)
    _check_grid(grid, source, "label")
    vds, lyr = _open_vector(source, o.layer_name)
    if vds is None:
        raise SatClassifyError(
            f"cannot open '{source}' as a vector layer: give polygons or points with a class field "
            "(a class raster needs no rasterizing: give it to buildpatches as LABELS)"
        )
    code_field = find_code_field(lyr, o.field_name, required=True)
    defn = lyr.GetLayerDefn()
    ftype = defn.GetFieldDefn(defn.GetFieldIndex(code_field)).GetType()
    numeric = ftype in (ogr.OFTInteger, ogr.OFTInteger64, ogr.OFTReal)
    distinct = None
    if o.class_table_csv:
        table = read_table_csv(o.class_table_csv, numeric)
    elif o.class_rows is not None:
        table = table_from_rows(o.class_rows, numeric, where=o.class_rows_name)
    else:
        distinct = _distinct(vds, lyr, code_field)  # read once: the table and the SQL both need it
        table = table_from_codes(
            [raw for raw, _n in distinct], numeric, where=f"field '{code_field}' of layer '{lyr.GetName()}'"
        )
    shown = ", ".join(
        f"{c.value} = {c.code}" + (f" ({c.name})" if c.name != c.code else "") for c in table.classes[:20]
    )
    monitor.info(
        f"class table ({table.source}): {shown}"
        + (f", ... ({len(table.classes)} classes)" if len(table.classes) > 20 else "")
    )
    result = _rasterize_vector(
        vds, lyr, output, grid, _TableScheme(table), o, monitor, code_field=code_field, distinct=distinct
    )
    result.table = table
    result.seconds = time.perf_counter() - t0
    return result


# -- vector ---------------------------------------------------------------------------------------
def _distinct(ds, lyr, code_field: str) -> List[Tuple[object, int]]:
    """The field's distinct raw values with their feature counts."""
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
    return distinct


def _value_sql(ds, lyr, code_field: str, scheme: _Scheme, distinct=None) -> Tuple[str, Dict[str, int], int, int, dict]:
    """SQL giving each feature its class value; also (unknown raw codes -> features, no-code features, known,
    {raw value: class value} of the known codes: the SQL's CASE as a lookup). ``distinct``: the field's
    (value, count) pairs when already read."""
    lname = lyr.GetName()
    unknown: Dict[str, int] = {}
    no_code = known = 0
    whens = []
    lut = {}
    for raw, n in distinct if distinct is not None else _distinct(ds, lyr, code_field):
        value = scheme.lookup(raw)
        if value == 0:
            no_code += n
            continue
        if value < 0:
            unknown[str(raw)] = unknown.get(str(raw), 0) + n
            continue
        known += n
        whens.append(f"WHEN {_literal(raw)} THEN {int(value)}")
        lut[raw] = int(value)
    geom_col = lyr.GetGeometryColumn() or "GEOMETRY"
    case = f"CASE {_quote(code_field)} {' '.join(whens)} ELSE 0 END" if whens else "0"
    sql = f"SELECT {_quote(geom_col)}, {case} AS {VALUE_FIELD} FROM {_quote(lname)}"
    return sql, unknown, no_code, known, lut


def _unmapped(unknown: Dict[str, int]) -> Dict[str, int]:
    """The entries of ``unknown`` that are CLC level-3 codes: left out by the mapping table, not bad codes."""
    codes = {e.code for e in clc.legend()}
    out = {}
    for raw, n in unknown.items():
        try:
            code = clc.parse_code(raw)
        except SatClassifyError:
            continue
        if code in codes:
            out[raw] = n
    return out


def _log_unknown(
    unknown: Dict[str, int], unmapped: Dict[str, int], what: str, fmt: str, log, kind: str = "CLC level-3 codes"
) -> None:
    """One warning for values that are no CLC code (text, fractional, out of the nomenclature), one for CLC codes
    the mapping table leaves out (those are valid codes: the table decides)."""
    bad = {k: n for k, n in unknown.items() if k not in unmapped}
    for part, text in (
        (bad, f"hold values that are not {kind}" if what == "pixels" else f"have codes that are not {kind}"),
        (
            unmapped,
            "hold CLC codes that the mapping table does not map"
            if what == "pixels"
            else "have CLC codes that the mapping table does not map",
        ),
    ):
        if part:
            shown = ", ".join(fmt.format(c, n) for c, n in sorted(part.items(), key=lambda kv: -kv[1])[:10])
            log(f"WARNING: {sum(part.values())} {what} {text} and are left as no label (0): {shown}")


def _layer_srs(ds, lyr, what: str = "CLC layer"):
    """The CLC (or label) layer's CRS (None when it has none). A CRS that cannot be read or used (a damaged .prj
    beside a shapefile, an unknown projection method) is refused, naming the CRS and its file, instead of failing
    later in the SQL or the reprojection with PROJ's words (blamed on the code field)."""
    prj = os.path.splitext(ds.GetDescription())[0] + ".prj"
    where = f" (its CRS file '{prj}')" if os.path.isfile(prj) else ""
    problem = None
    try:
        srs = lyr.GetSpatialRef()
        # GDAL's SQLite dialect, used to give each feature its class, needs the CRS as a PROJ string
        if srs is not None and not srs.ExportToProj4():
            problem = "GDAL/PROJ cannot use it"
    except RuntimeError as e:
        srs, problem = None, str(e).strip() or "GDAL cannot read it"
    if srs is None and not problem and where and os.path.getsize(prj) > 0:
        problem = "GDAL recognises no CRS in it"  # else the polygons would silently be taken as in the grid's CRS
    if problem:
        raise SatClassifyError(
            f"the CRS of {what} '{lyr.GetName()}'{where} is not valid ({problem}): fix or replace the CRS "
            "definition (e.g. the .prj of the CLC data as downloaded, or Layer > Set CRS in QGIS and save the layer "
            "with it)"
        )
    return srs


def _filter_rect(grid: Grid, src_srs, dst_srs, margin_px: float = 2.0):
    """The grid's bounds (plus a margin) in the source CRS, as (xmin, ymin, xmax, ymax)."""
    xmin, ymin, xmax, ymax = grid.bounds
    m = margin_px * max(abs(grid.geotransform[1]), abs(grid.geotransform[5]))
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for x, y in (
        (xmin - m, ymin - m),
        (xmax + m, ymin - m),
        (xmax + m, ymax + m),
        (xmin - m, ymax + m),
        (xmin - m, ymin - m),
    ):
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


def _band_grid(grid: Grid, y0: int, y1: int) -> Grid:
    """Rows [y0, y1) of ``grid`` as a grid of their own."""
    gt = grid.geotransform
    return Grid(grid.width, y1 - y0, (gt[0], gt[1], gt[2], gt[3] + gt[5] * y0, gt[4], gt[5]), grid.wkt)


def _gdal_callback(monitor: Monitor, start: float, span: float):
    def cb(frac, msg, data):
        if monitor.canceled():
            return 0
        monitor.progress(start + span * frac)
        return 1

    return cb


def _class_raster(tmp: str, grid: Grid, classes, metadata: Optional[Dict[str, str]] = None) -> gdal.Dataset:
    """The uint8 class raster on ``grid`` (nodata 0 = no label), its colour table, names and metadata set before
    any pixel: what every rasterize path writes."""
    return raster.create_geotiff(
        tmp,
        grid.width,
        grid.height,
        1,
        gdal.GDT_Byte,
        grid.geotransform,
        grid.wkt,
        nodata=0,
        options=CLASS_GTIFF_OPTIONS,
        classes=classes,
        metadata=metadata,
    )


def _rasterize_vector(
    vds,
    lyr,
    output,
    grid,
    scheme: _Scheme,
    o: RasterizeOptions,
    monitor: Monitor,
    code_field: Optional[str] = None,
    distinct=None,
) -> RasterizeResult:
    gtype = ogr.GT_Flatten(lyr.GetGeomType())
    if gtype == ogr.wkbUnknown:  # a layer of any geometry type (GeoJSON, a GPKG 'GEOMETRY'): its first feature's
        lyr.ResetReading()
        first = lyr.GetNextFeature()
        lyr.ResetReading()
        if first is not None and first.GetGeometryRef() is not None:
            gtype = ogr.GT_Flatten(first.GetGeometryRef().GetGeometryType())
    points = scheme.allows_points and gtype in POINT_TYPES
    if gtype not in POLYGON_TYPES and not points:
        raise SatClassifyError(
            f"layer '{lyr.GetName()}' has {ogr.GeometryTypeToName(gtype)} geometries: "
            + (
                "give polygons (or points, for patch labels)"
                if scheme.allows_points
                else "CORINE Land Cover needs polygons"
            )
        )
    if points and o.mixed_output:
        raise SatClassifyError("the mixed-pixel raster (MIXED) applies to polygons, not to points: leave it empty")
    nfeat = lyr.GetFeatureCount()
    if nfeat == 0:
        raise SatClassifyError(f"layer '{lyr.GetName()}' has no features: nothing to rasterize")
    code_field = code_field or find_code_field(lyr, o.field_name)
    layer_what = "CLC layer" if isinstance(scheme, _ClcScheme) else "label layer"
    monitor.info(
        f"{layer_what} '{lyr.GetName()}': {nfeat} features, "
        f"{'code' if layer_what[0] == 'C' else 'class'} field '{code_field}'"
    )
    src_srs = _layer_srs(vds, lyr, layer_what)  # before any SQL: a broken CRS would fail there, blamed on the field
    sql, unknown, no_code, known, lut = _value_sql(vds, lyr, code_field, scheme, distinct)
    result = RasterizeResult(
        output, list(scheme.table), features=nfeat, unknown=unknown, no_code=no_code, unmapped=scheme.unmapped(unknown)
    )
    _log_unknown(unknown, result.unmapped, "features", "'{}' ({})", monitor.info, scheme.kind)
    if no_code:
        monitor.info(
            f"{no_code} features have no code (empty, NULL"
            + (" or CLC no-data 999/990/995" if isinstance(scheme, _ClcScheme) else "")
            + "): no label"
        )
    if known == 0:
        raise SatClassifyError(
            f"none of the {nfeat} features of layer '{lyr.GetName()}' has a known "
            + ("CLC code" if isinstance(scheme, _ClcScheme) else "code of the class table")
            + f" in field '{code_field}' (values such as {', '.join(list(unknown)[:5])}): "
            + scheme.none_known(unknown, result.unmapped)
        )
    dst_srs = raster.srs_from_wkt(grid.wkt)
    if src_srs is None:
        monitor.info(f"WARNING: the {layer_what} has no CRS; its coordinates are taken to be in the output grid's CRS")
    elif dst_srs is None:
        monitor.info("WARNING: the output grid has no CRS; the polygons are not reprojected")
    rect = _filter_rect(grid, src_srs, dst_srs)
    lyr.SetSpatialFilterRect(*rect)
    n_inside = lyr.GetFeatureCount()
    lyr.SetSpatialFilter(None)
    if n_inside == 0:
        e = lyr.GetExtent()
        raise SatClassifyError(
            f"no {'point' if points else 'polygon'} of layer '{lyr.GetName()}' overlaps the output grid (grid bounds "
            f"in the layer's CRS: {rect[0]:.0f}, {rect[1]:.0f}, {rect[2]:.0f}, {rect[3]:.0f}; layer extent: "
            f"{e[0]:.0f}, {e[2]:.0f}, {e[1]:.0f}, {e[3]:.0f}): check the reference raster or extent, and the CRS of "
            "both"
        )
    monitor.info(f"{n_inside} features around the output grid")
    if points:
        if o.rule != "centre":
            monitor.info(f"points label the pixel that holds them: the rule ({o.rule}) does not apply")
        md = label_metadata(scheme.table, scheme.ct, points=True)
        with raster.AtomicOutput(output) as tmp:
            out = _class_raster(tmp, grid, scheme.table, md)
            result.points = _rasterize_points(vds, sql, rect, grid, out.GetRasterBand(1), monitor)
            out.FlushCache()
            out = None
        monitor.progress(1.0)
        return result
    with raster.AtomicOutput(output) as tmp:
        out = _class_raster(tmp, grid, scheme.table, scheme.metadata())
        band = out.GetRasterBand(1)
        if o.rule in ("centre", "all_touched"):
            filt = ogr.CreateGeometryFromWkt(
                f"POLYGON(({rect[0]} {rect[1]},{rect[2]} {rect[1]},{rect[2]} {rect[3]},{rect[0]} {rect[3]},"
                f"{rect[0]} {rect[1]}))"
            )
            res = vds.ExecuteSQL(sql, spatialFilter=filt, dialect="SQLITE")
            try:
                opts = [f"ATTRIBUTE={VALUE_FIELD}"]
                if o.rule == "all_touched":
                    opts.append("ALL_TOUCHED=TRUE")
                try:
                    gdal.RasterizeLayer(out, [1], res, options=opts, callback=_gdal_callback(monitor, 0.0, 1.0))
                except RuntimeError as e:
                    monitor.check()
                    raise SatClassifyError(f"rasterizing layer '{lyr.GetName()}' failed: {e}")
            finally:
                vds.ReleaseResultSet(res)
        else:
            same_crs = src_srs is None or dst_srs is None or bool(src_srs.IsSame(dst_srs))
            direct = (lyr, code_field, lut) if same_crs else None
            with _MixedWriter(o.mixed_output, grid) as mixed:
                result.mixed_counts = _majority(
                    vds,
                    sql,
                    rect,
                    grid,
                    band,
                    mixed,
                    o.threshold,
                    monitor,
                    direct,
                    n_inside,
                    lambda y0, y1: _filter_rect(_band_grid(grid, y0, y1), src_srs, dst_srs),
                )
                result.mixed_pixels = sum(result.mixed_counts.values())
        out.FlushCache()
        out = None
    if o.rule == "majority" and o.mixed_output:
        monitor.info(
            f"mixed pixels: {result.mixed_pixels} ({result.mixed_counts.get(MIXED_PARTLY, 0)} partly covered, "
            f"{result.mixed_counts.get(MIXED_TWICE, 0)} claimed twice by overlapping polygons of different classes)"
        )
    monitor.progress(1.0)
    return result


def _rasterize_points(vds, sql, rect, grid: Grid, band, monitor: Monitor) -> Dict[str, int]:
    """Point labels: each point labels the pixel that holds it (points reprojected to the grid's CRS like the
    polygons). Several points of one class in a pixel count once; points of different classes in one pixel leave it
    unlabelled (reported); points outside the grid are counted. Returns the counts."""
    mem = _memory_layer(vds, sql, rect, grid, what="points")
    lyr = mem.GetLayer(0)
    vi = lyr.GetLayerDefn().GetFieldIndex(VALUE_FIELD)
    gt = grid.geotransform
    cells: Dict[Tuple[int, int], int] = {}
    counts = {"points": 0, "labelled_pixels": 0, "outside": 0, "duplicates": 0, "conflicts": 0, "no_label": 0}
    conflict = set()
    for n, f in enumerate(lyr):
        if n % 4096 == 0:
            monitor.check()
        g = f.GetGeometryRef()
        v = f.GetField(vi)
        if g is None:
            continue
        parts = [g.GetGeometryRef(i) for i in range(g.GetGeometryCount())] if g.GetGeometryCount() else [g]
        for pt in parts:
            if pt is None or pt.IsEmpty():
                continue
            counts["points"] += 1
            if not v:
                counts["no_label"] += 1
                continue
            col = int(math.floor((pt.GetX() - gt[0]) / gt[1]))
            row = int(math.floor((pt.GetY() - gt[3]) / gt[5]))
            if not (0 <= col < grid.width and 0 <= row < grid.height):
                counts["outside"] += 1
                continue
            old = cells.get((row, col))
            if old is None:
                cells[(row, col)] = int(v)
            elif old == int(v):
                counts["duplicates"] += 1
            else:
                conflict.add((row, col))
    for rc in conflict:
        cells.pop(rc, None)
    counts["conflicts"] = len(conflict)
    counts["labelled_pixels"] = len(cells)
    if not cells:
        raise SatClassifyError(
            "no labelled point lies on the output grid (outside it: "
            f"{counts['outside']}, without a known code: {counts['no_label']}): check the grid and "
            "the class field"
        )
    by_row: Dict[int, List[Tuple[int, int]]] = {}
    for (r, c), v in cells.items():
        by_row.setdefault(r, []).append((c, v))
    rows = max(1, min(grid.height, (8 * 2**20) // max(1, grid.width)))
    for y0 in range(0, grid.height, rows):
        r = min(rows, grid.height - y0)
        a = np.zeros((r, grid.width), np.uint8)
        for y in range(y0, y0 + r):
            for c, v in by_row.get(y, ()):
                a[y - y0, c] = v
        band.WriteArray(a, 0, y0)
    monitor.info(
        f"points: {counts['points']} read, {counts['labelled_pixels']} pixels labelled"
        + (
            f", {counts['duplicates']} in a pixel already holding a point of their class"
            if counts["duplicates"]
            else ""
        )
        + (f", {counts['outside']} outside the grid" if counts["outside"] else "")
    )
    if conflict:
        monitor.info(f"WARNING: {len(conflict)} pixels hold points of different classes: left as no label (0)")
    return counts


class _MixedWriter:
    """Optional uint8 mixed-pixel raster (0 pure, 1 partly covered, 2 claimed twice) written atomically beside the
    class raster."""

    def __init__(self, path: Optional[str], grid: Grid):
        self.path, self.grid, self.ctx, self.ds, self.band = path, grid, None, None, None

    def __enter__(self):
        if self.path:
            self.ctx = raster.AtomicOutput(self.path)
            tmp = self.ctx.__enter__()
            self.ds = raster.create_geotiff(
                tmp,
                self.grid.width,
                self.grid.height,
                1,
                gdal.GDT_Byte,
                self.grid.geotransform,
                self.grid.wkt,
                options=CLASS_GTIFF_OPTIONS,
                descriptions=["mixed"],
                nodata_name="pure",
                classes=MIXED_CLASSES,
            )
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


def _memory_layer(vds, sql, rect, grid, what="polygons"):
    opts = dict(
        format="Memory", SQLStatement=sql, SQLDialect="SQLITE", spatFilter=list(rect), geometryType="PROMOTE_TO_MULTI"
    )
    if grid.wkt:
        opts["dstSRS"] = grid.wkt
    try:
        mem = gdal.VectorTranslate("", vds, **opts)
    except RuntimeError as e:
        raise SatClassifyError(f"cannot read the {what}: {e}")
    return mem


def _reversed_copy(mem):
    """The same polygons in reverse layer order (for the overlap test of the mixed raster)."""
    name = mem.GetLayer(0).GetName().replace('"', '""')
    try:
        return gdal.VectorTranslate("", mem, format="Memory", SQLStatement=f'SELECT * FROM "{name}" ORDER BY FID DESC')
    except RuntimeError as e:
        raise SatClassifyError(f"cannot reorder the CLC polygons: {e}")


#: memory bounds of the majority rule: the polygons are read band by band (a band of rows holding about
#: BAND_FEATURES features, read with a spatial filter: features crossing two bands are read twice), and a strip
#: (the unit of work of the two worker threads) holds at most about STRIP_EDGES polygon edges: a dense layer
#: (a million polygons of a few pixels) gets shorter strips. A layer of CLC density (polygons of ~50 px) is one
#: band of ~2 M pixel strips, as before
BAND_FEATURES = 50_000
STRIP_EDGES = 100_000


def _bands(h: int, rows: int, n_features: int, skew: float = 0.0) -> List[Tuple[int, int]]:
    """Row bands [(y0, y1)] of a grid of ``h`` rows with ``n_features`` polygons around it (taken as evenly
    spread), each about BAND_FEATURES features: a whole number of strips of ``rows`` rows where a band holds
    several. ``skew``: the rows a band's filter rectangle adds (margins; a grid rotated against the layer's CRS
    has a taller rectangle in it): a band is at least twice that, so that a feature is read at most ~2 times."""
    if n_features <= BAND_FEATURES:
        return [(0, h)]
    n = max(1, int(BAND_FEATURES * h / n_features))
    if n >= rows:
        n -= n % rows
    n = max(n, int(math.ceil(2 * skew)))
    return [(y, min(h, y + n)) for y in range(0, h, n)]


def _majority(
    vds, sql, rect, grid, band, mixed, threshold, monitor: Monitor, direct=None, n_features: int = 0, rect_of=None
) -> Dict[int, int]:
    """Exact majority (and mixed mask) in row strips (:mod:`.coverage`): exact coverage fractions for the pixels
    a polygon boundary crosses, the class of the polygon covering the others (GDAL's centre rule where polygons
    overlap); two strips at a time in worker threads. ``direct`` = (layer, code field, {raw code: class value})
    when the layer is in the grid's CRS: its polygons are then read as they are, and the memory copy of them
    (for GDAL's burns and the geometry fallback, which only irregular strips need) is made when first needed.
    Bands of rows (:func:`_bands`; ``n_features`` around the grid, ``rect_of(y0, y1)`` the filter rectangle of
    rows [y0, y1) in the layer's CRS) are read and computed one after the other: memory follows a band, not the
    layer."""
    w, h = grid.width, grid.height
    # ~2 M pixels per strip: the boundary pieces of a strip (a few hundred thousand) stay a few tens of MB;
    # at most 255 rows, so that (row, class) fits the 16-bit radix sort of coverage._order
    rows0 = max(1, min(h, 255, (2 * 2**20) // max(1, w)))
    skew = 0.0
    if rect_of is not None and h > 1 and n_features > BAND_FEATURES:
        one, whole = rect_of(0, 1), rect_of(0, h)  # the layer's units per row, and the extra height of a band
        per_row = (whole[3] - whole[1] - (one[3] - one[1])) / (h - 1)
        skew = max(0.0, (one[3] - one[1]) / per_row - 1) if per_row > 0 else float(h)
    bands = _bands(h, rows0, n_features, skew)
    need_mixed = mixed.band is not None
    out_rows = _TileRows(band)
    mixed_rows = _TileRows(mixed.band) if need_mixed else None
    state = {"irregular": 0, "mixed": np.zeros(3, np.int64)}
    pool = ThreadPoolExecutor(max_workers=2)
    try:
        for ya, yb in bands:
            brect = rect if len(bands) == 1 or rect_of is None else rect_of(ya, yb)
            _majority_band(
                vds, sql, brect, grid, ya, yb, rows0, out_rows, mixed_rows, threshold, monitor, direct, pool, state
            )
        out_rows.close()
        if mixed_rows is not None:
            mixed_rows.close()
    finally:
        pool.shutdown(wait=True)
    if state["irregular"]:
        monitor.info(
            f"{state['irregular']} pixels under overlapping or invalid polygons: class areas recomputed "
            "with the later polygon on top"
        )
    n_mixed = state["mixed"]
    return {MIXED_PARTLY: int(n_mixed[MIXED_PARTLY]), MIXED_TWICE: int(n_mixed[MIXED_TWICE])} if need_mixed else {}


def _majority_band(
    vds, sql, rect, grid, ya, yb, rows0, out_rows, mixed_rows, threshold, monitor: Monitor, direct, pool, state
) -> None:
    """Rows [ya, yb) of :func:`_majority`: the polygons read in ``rect`` (the layer's CRS), then the band's strips
    computed (two at a time) and written in order."""
    w, h = grid.width, grid.height
    gt = grid.geotransform
    mem_box: list = []
    mem_lock = threading.Lock()

    def mem_ds():
        with mem_lock:
            if not mem_box:
                mem_box.append(_memory_layer(vds, sql, rect, grid))
            return mem_box[0]

    def strip_rows(n_edges: int) -> int:
        """Today's strip height, or fewer rows where the band's edges would put more than STRIP_EDGES in one."""
        if n_edges * rows0 <= STRIP_EDGES * (yb - ya):
            return rows0
        return max(1, (STRIP_EDGES * (yb - ya)) // max(1, n_edges))

    if direct is not None:
        lyr, code_field, lut = direct
        defn = lyr.GetLayerDefn()
        others = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
        lyr.SetIgnoredFields([n for n in others if n != code_field])
        lyr.SetSpatialFilterRect(*rect)
        try:
            edges = coverage.read_edges(lyr, code_field, gt, yb - ya, w, strip_rows, lut, y_start=ya)
        finally:
            lyr.SetSpatialFilter(None)
            lyr.SetIgnoredFields([])
    else:
        edges = coverage.read_edges(mem_ds().GetLayer(0), VALUE_FIELD, gt, yb - ya, w, strip_rows, y_start=ya)
    rows = edges.rows
    drv = gdal.GetDriverByName("MEM")
    need_mixed = mixed_rows is not None
    x0w, x1w = gt[0], gt[0] + gt[1] * w
    extra = {}  # lazily made: the reversed layer (mixed interior overlaps), the painter fallback

    def burn_strip(y0, layer):
        r = min(rows, yb - y0)
        sgt = (gt[0], gt[1], 0.0, gt[3] + gt[5] * y0, 0.0, gt[5])
        ya_w, yb_w = gt[3] + gt[5] * y0, gt[3] + gt[5] * (y0 + r)
        srect = (min(x0w, x1w), min(ya_w, yb_w), max(x0w, x1w), max(ya_w, yb_w))
        return _burn(drv, w, r, sgt, grid.wkt, layer, srect)

    starts = list(range(ya, yb, rows))

    def strip_task(s, y0):
        """Classes of strip ``s`` (in a worker: numpy and GDAL release the GIL, so two strips are computed at once
        on two cores). On a clean coverage (:mod:`.clean`) the centre rule plus exact areas where the majority
        can differ from it; else exact fractions for every boundary pixel (:mod:`.coverage`), the pixels between
        them from the fractions' own prefix sums, and only a strip with overlapping or invalid polygons burnt by
        GDAL (centre rule, later polygon on top) for them. The forward layer is used by one task at a time."""
        r = min(rows, yb - y0)
        strip = edges.strip(s)
        res = clean.strip_majority(*strip, y0, r, w, threshold if need_mixed else None)
        if res is None:
            res = coverage.strip_fractions(*strip, y0, r, w)
        if res.irregular_runs or (res.irregular.any() and not res.clean):
            with burn_lock:
                centre = burn_strip(y0, mem_ds().GetLayer(0))
            centre.reshape(-1)[res.cells] = res.value
        else:
            centre = res.raster  # the boundary pixels' values are in it already
        m = res.mixed
        if need_mixed and m is None:  # here rather than in the writing thread: the two workers run at once
            m = np.zeros((r, w), np.uint8)
            m.reshape(-1)[res.cells] = res.dominant < threshold - coverage.EPS
        return centre, m, res

    burn_lock = threading.Lock()
    ahead_n = 3  # strips computed ahead of the one being written (the workers never wait for the writer)
    ahead = [pool.submit(strip_task, i, starts[i]) for i in range(min(ahead_n, len(starts)))]
    try:
        for s, y0 in enumerate(starts):
            monitor.check()
            centre, m, res = ahead.pop(0).result()
            if s + ahead_n < len(starts):
                ahead.append(pool.submit(strip_task, s + ahead_n, starts[s + ahead_n]))
            r = min(rows, yb - y0)
            flat = centre.reshape(-1)
            bad = np.flatnonzero(res.irregular)
            if bad.size:
                n_irregular = state["irregular"]
                if n_irregular < 20000 <= n_irregular + bad.size:
                    monitor.info(
                        "WARNING: many pixels lie under overlapping or invalid polygons; each is recomputed "
                        "with geometry operations (about 0.5 ms a pixel): for a faster run, repair the layer "
                        "first (Fix geometries, then Dissolve or remove the overlaps)"
                    )
                state["irregular"] = n_irregular + bad.size
                if "painter" not in extra:
                    extra["painter"] = coverage.PainterFallback(mem_ds().GetLayer(0), VALUE_FIELD, gt)
                cells = res.cells[bad]
                with burn_lock:  # it reads the forward layer, which a worker may be burning (no copy of it)
                    v, dom, ovl = extra["painter"].pixels(cells // w + y0, cells % w)
                flat[cells] = v
                if m is not None:
                    m.reshape(-1)[cells] = np.where(ovl, MIXED_TWICE, (dom < threshold - coverage.EPS) * MIXED_PARTLY)
            if m is not None and res.irregular_runs:
                # pixels wholly under overlapping polygons: mixed where the first and the last one differ
                if "rev" not in extra:
                    with burn_lock:
                        extra["rev"] = _reversed_copy(mem_ds())
                rev = burn_strip(y0, extra["rev"].GetLayer(0))
                interior = np.ones(r * w, bool)
                interior[res.cells] = False
                m.reshape(-1)[interior & (rev.reshape(-1) != flat)] = MIXED_TWICE
            out_rows.add(centre)
            if m is not None:
                mixed_rows.add(m)
                state["mixed"] += np.bincount(m.ravel(), minlength=3)[:3]
            monitor.progress((y0 + r) / h)
    finally:
        for f in ahead:  # (on an error or cancel: the band's strips in flight end before its layers go)
            f.cancel()
        for f in ahead:
            if not f.cancelled():
                f.exception()


class _TileRows:
    """Rows written to a tiled band in whole rows of tiles, each flushed at once: the tiles are compressed and
    written while the next strips are computed (GDAL's block cache would otherwise keep them all for the final
    flush), and no tile is flushed half-written (rewriting a compressed tile appends it to the file again)."""

    def __init__(self, band):
        self.band = band
        self.tile = max(1, band.GetBlockSize()[1])
        self.y = 0
        self.rows: List[np.ndarray] = []
        self.n = 0

    def add(self, arr: np.ndarray) -> None:
        self.rows.append(arr)
        self.n += arr.shape[0]
        if self.n >= self.tile:
            self._write((self.n // self.tile) * self.tile)

    def _write(self, n: int) -> None:
        data = self.rows[0] if len(self.rows) == 1 else np.concatenate(self.rows)
        self.band.WriteArray(data[:n], 0, self.y)
        self.band.FlushCache()
        self.y += n
        self.rows = [data[n:]] if n < data.shape[0] else []
        self.n = data.shape[0] - n

    def close(self) -> None:
        if self.n:
            self._write(self.n)


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
def _float_counts(band, monitor: Monitor) -> Tuple[List[int], Dict[str, int]]:
    """(pixels per whole value 0..1023 as GetHistogram gives them, {fractional value: pixels}) of a float CLC
    raster band, nodata and NaN left out. Read in row strips."""
    hist = np.zeros(1024, np.int64)
    fractions: Dict[str, int] = {}
    nd = band.GetNoDataValue()
    w, h = band.XSize, band.YSize
    rows = max(1, (8 * 2**20) // max(1, w))
    for y0 in range(0, h, rows):
        monitor.check()
        a = band.ReadAsArray(0, y0, w, min(rows, h - y0)).ravel()
        a = a[np.isfinite(a)]
        if nd is not None:
            a = a[a != nd]
        whole = a == np.floor(a)
        inside = a[whole & (a >= 0) & (a < 1024)].astype(np.int64)
        hist += np.bincount(inside, minlength=1024)
        other = a[~whole | (a < 0) | (a >= 1024)]
        if other.size:
            vals, counts = np.unique(other, return_counts=True)
            for v, n in zip(vals.tolist(), counts.tolist()):
                key = f"{v:g}" if not float(v).is_integer() else str(int(v))
                fractions[key] = fractions.get(key, 0) + n
    return hist.tolist(), fractions


def _rasterize_raster(rds, output, grid, code2val, table, rule, monitor: Monitor) -> RasterizeResult:
    if rds.RasterCount < 1:
        raise SatClassifyError(f"CLC raster '{rds.GetDescription()}' has no bands")
    band = rds.GetRasterBand(1)
    is_float = band.DataType in (gdal.GDT_Float32, gdal.GDT_Float64)
    if is_float:  # fractional values (211.7) are no codes: counted apart, never rounded or truncated
        hist, fractions = _float_counts(band, monitor)
    else:
        hist, fractions = band.GetHistogram(-0.5, 1023.5, 1024, include_out_of_range=1, approx_ok=0), {}
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
    if source == "code":
        unknown = {str(v): hist[v] for v in present if v not in code2val and v not in nodata and v != 0}
        unmapped = _unmapped(unknown)
    else:
        unknown = {str(v): hist[v] for v in present if v not in known and v not in nodata and v != 0}
        unmapped = {str(g): hist[g] for g in present if g in g2c and g2c[g] not in code2val}
        unknown.update(unmapped)
    unknown.update(fractions)
    monitor.info(f"CLC raster: values are {'level-3 codes' if source == 'code' else 'grid codes'}")
    _log_unknown(
        unknown,
        unmapped,
        "pixels",
        "{} ({})",
        monitor.info,
        "CLC grid codes (1..44)" if source == "grid" else "CLC level-3 codes",
    )
    ref = gdal.GetDriverByName("MEM").Create("", grid.width, grid.height, 1, gdal.GDT_Byte)
    ref.SetGeoTransform(grid.geotransform)
    if grid.wkt:
        ref.SetProjection(grid.wkt)
    nd = band.GetNoDataValue()
    warped = raster.warp_to_grid(rds, ref, resample="near" if rule == "centre" else "mode", src_nodata=nd)
    wband = warped.GetRasterBand(1)
    result = RasterizeResult(
        output,
        list(table),
        unknown={k: int(v) for k, v in unknown.items()},
        unmapped={k: int(v) for k, v in unmapped.items()},
    )
    with raster.AtomicOutput(output) as tmp:
        out = _class_raster(tmp, grid, table)
        ob = out.GetRasterBand(1)
        rows = max(1, (8 * 2**20) // max(1, grid.width))
        for y0 in range(0, grid.height, rows):
            monitor.check()
            r = min(rows, grid.height - y0)
            a = wband.ReadAsArray(0, y0, grid.width, r)
            if is_float:
                bad = ~np.isfinite(a) | (a != np.floor(a))  # fractional or NaN: no code (never truncated)
                a = np.where(bad, 0, a)
            a = a.astype(np.int64)
            a[(a < 0) | (a > 1023)] = 0
            ob.WriteArray(lut[a], 0, y0)
            monitor.progress((y0 + r) / grid.height)
        out.FlushCache()
        ob = None
        out = None
    return result
