"""Stratified random sampling design on a class raster (QGIS env: GDAL/OGR), for good-practice accuracy and
area estimation (Olofsson et al. 2014; estimator and allocation in :mod:`.estimator`).

Strata are the map classes (nodata and IGNORE values are no stratum). Two passes over the raster, block by
block, so memory does not grow with its size: the first counts the pixels of each stratum (N_i), then n_i
distinct ranks in 0..N_i-1 are drawn for each stratum (numpy ``Generator.choice`` without replacement, seeded:
the same SEED gives the same points, whatever the block size); the second pass walks the raster in the same
row-major order (full-width strips) and turns the ranks into pixels. Each point lies at its pixel's centre,
in the raster's CRS: the pixel is the sampling unit, the one the interpreter labels.

The points are written to a GeoPackage layer ``sample_points`` (``point_id``, ``stratum``, ``stratum_name``,
``reference`` integer, empty, to be filled in, ``row``, ``col``); the strata table (pixels, hectares, weights,
allocation) goes into the layer's metadata (item ``SATCLASSIFY_STRATA``, JSON) and into a side JSON file.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Union

import numpy as np
from osgeo import gdal, ogr

from .. import raster
from ..contract.errors import SatClassifyError
from ..contract.feedback import Monitor
from . import estimator
from . import tables as accuracy
from .assess import nodata_of, open_class_raster, pixel_area_ha, refuse_image

ogr.UseExceptions()

DEFAULT_BLOCK = 512
METHODS = ("target_se", "total", "counts")
RULES = ("proportional", "equal")
LAYER = "sample_points"


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


@dataclass(frozen=True)
class SamplingOptions:
    """How :func:`sampling_design` sizes and draws the sample (everything but the raster and the output files).

    ``ignore``: class values that are no stratum ("0, 255"; nodata is always left out). ``method``: one of
    :data:`METHODS`: ``target_se`` (the total from ``target_se`` and ``expected_ua``, one value or per class from
    ``expected_ua_table``, CSV value,expected_ua), ``total`` (``total`` points) or ``counts`` (points per class from
    ``counts_table``, CSV value,count). ``rule``: allocation, one of :data:`RULES`, with at least ``minimum`` points
    per class. ``seed``: the same seed gives the same points. ``names``: CSV value,name,color. ``block``: pixels per
    side of the blocks read (the sample does not depend on it). Checked when made.
    """

    ignore: Union[str, int, None] = "0"
    method: str = "target_se"
    target_se: float = 0.01
    expected_ua: float = 0.8
    expected_ua_table: Optional[str] = None
    total: int = 500
    rule: str = "proportional"
    minimum: int = 50
    counts_table: Optional[str] = None
    seed: int = 1
    names: Optional[str] = None
    block: int = DEFAULT_BLOCK

    def __post_init__(self):
        accuracy.parse_ignore(self.ignore)  # a clear message for a bad list, before any raster is read
        if self.method not in METHODS:
            raise SatClassifyError(f"METHOD must be one of {', '.join(METHODS)}, not {self.method!r}")
        if self.rule not in RULES:
            raise SatClassifyError(f"allocation must be proportional or equal, not {self.rule!r}")
        if self.method == "target_se" and not 0 < float(self.target_se) < 0.5:
            raise SatClassifyError(
                f"the target standard error of overall accuracy must be between 0 and 0.5 "
                f"(exclusive), got {self.target_se}"
            )
        if self.method == "target_se" and not 0 < float(self.expected_ua) < 1:
            raise SatClassifyError(
                f"expected user's accuracies must be between 0 and 1 (exclusive), got {float(self.expected_ua)}"
            )
        if self.method == "total" and (not _is_int(self.total) or self.total < 1):
            raise SatClassifyError(f"TOTAL must be at least 1 point, got {self.total}")
        if self.method == "counts" and not self.counts_table:
            raise SatClassifyError("METHOD 'counts per class' needs the COUNTS table (CSV value,count)")
        if not _is_int(self.minimum) or self.minimum < 0:
            raise SatClassifyError(f"the minimum number of points per class must be >= 0, got {self.minimum}")
        if not _is_int(self.seed) or self.seed < 0:
            raise SatClassifyError(f"SEED must be an integer >= 0, got {self.seed}")
        if not _is_int(self.block) or self.block < 1:
            raise SatClassifyError(f"block must be a positive number of pixels, got {self.block}")


def strips(width: int, height: int, block: int):
    """Full-width strips of about ``block`` x ``block`` pixels: the pixels come in row-major order whatever the
    strip height, so a pixel's rank within its stratum (and the sample for a SEED) does not depend on ``block``."""
    rows = max(1, min(height, (block * block) // max(width, 1)))
    return [(0, y, width, min(rows, height - y)) for y in range(0, height, rows)]


def count_strata(
    ds: gdal.Dataset,
    ignore,
    block: int = DEFAULT_BLOCK,
    monitor: Optional[Monitor] = None,
    mask_ds: Optional[gdal.Dataset] = None,
) -> Dict[int, int]:
    """Pixels per class value of band 1 (nodata, IGNORE values and, with ``mask_ds``, masked-out pixels
    left out), read block by block."""
    monitor = monitor or Monitor()
    band = ds.GetRasterBand(1)
    nd = nodata_of(ds)
    skip = set(ignore) | ({nd} if nd is not None else set())
    counts = np.zeros(0, dtype=np.int64)
    windows = strips(ds.RasterXSize, ds.RasterYSize, block)
    mband = mask_ds.GetRasterBand(1) if mask_ds is not None else None
    for k, (x, y, w, h) in enumerate(windows):
        monitor.check()
        a = band.ReadAsArray(x, y, w, h).astype(np.int64).ravel()
        keep = a >= 0
        if skip:
            keep &= ~np.isin(a, list(skip))
        if mband is not None:
            keep &= mband.ReadAsArray(x, y, w, h).ravel() != 0
        v = a[keep]
        if v.size:
            if v.max() > accuracy.MAX_VALUE:
                raise SatClassifyError(
                    f"'{ds.GetDescription()}' holds the value {int(v.max())}: class values must be "
                    f"in 0..{accuracy.MAX_VALUE}"
                )
            c = np.bincount(v)
            if len(c) > len(counts):
                c[: len(counts)] += counts
                counts = c
            else:
                counts[: len(c)] += c
        monitor.progress((k + 1) / len(windows))
    return {int(i): int(c) for i, c in enumerate(counts) if c > 0}


def read_class_table(path: str, column: str, what: str, kind=float) -> Dict[int, float]:
    """CSV ``value,<column>`` (comma, semicolon or tab; # comments) -> {value: number}."""
    rows = accuracy._read_csv_rows(path, what)
    header = rows[0]["__header__"]
    if "value" not in header or column not in header:
        raise SatClassifyError(
            f"{what} '{path}': the first line must be the header 'value,{column}', found '{','.join(header)}'"
        )
    out = {}
    for row in rows[1:]:
        v = accuracy._int_cell(row, "value", f"{what} '{path}'")
        text = row.get(column, "")
        try:
            x = kind(float(text)) if kind is int else float(text)
            if kind is int and float(text) != int(float(text)):
                raise ValueError
        except ValueError:
            raise SatClassifyError(
                f"{what} '{path}' line {row['__line__']}: {column} '{text}' is not a "
                f"{'whole number' if kind is int else 'number'}"
            )
        out[v] = x
    if not out:
        raise SatClassifyError(f"{what} '{path}' has no rows: add lines 'value,{column}'")
    return out


#: expected user's accuracy: one for all classes, or per class value with an optional "default" entry
ExpectedUA = Union[float, Dict[Union[int, str], float]]


def design(
    values: List[int],
    pixels: List[int],
    method: str = "target_se",
    target_se: float = 0.01,
    expected_ua: ExpectedUA = 0.8,
    total: int = 0,
    rule: str = "proportional",
    minimum: int = 50,
    counts: Optional[Mapping[int, float]] = None,
    log=None,
) -> Dict[str, Any]:
    """Sample size and allocation: points per stratum plus what they came from."""
    log = log or (lambda m: None)
    if method not in METHODS:
        raise SatClassifyError(f"METHOD must be one of {', '.join(METHODS)}, not {method!r}")
    w = np.asarray(pixels, dtype=np.float64) / float(sum(pixels))
    info: Dict[str, Any] = {"method": method}  # the design as written to the JSON
    if method == "counts":
        if not counts:
            raise SatClassifyError("METHOD 'counts per class' needs the COUNTS table (CSV value,count)")
        unknown = sorted(set(counts) - set(values))
        if unknown:
            log(f"WARNING: the COUNTS table names class value(s) {unknown[:20]} that the map does not hold: skipped")
        missing = [v for v in values if v not in counts]
        if missing:
            log(f"WARNING: the COUNTS table has no row for class value(s) {missing[:20]}: no points there")
        n_i = []
        for v, c in zip(values, pixels):
            want = int(counts.get(v, 0))
            if want < 0:
                raise SatClassifyError(f"COUNTS: class {v} asks for {want} points; counts must be >= 0")
            if want > c:
                log(f"WARNING: class {v} has {c} pixels, fewer than the {want} points asked: all {c} are taken")
            n_i.append(min(want, c))
        if sum(n_i) == 0:
            raise SatClassifyError("the COUNTS table asks for no point in any class of the map")
        info["counts"] = {str(k): int(v) for k, v in sorted(counts.items())}
    else:
        if method == "target_se":
            ua = [
                float(expected_ua.get(v, expected_ua.get("default", 0.8)))
                if isinstance(expected_ua, dict)
                else float(expected_ua)
                for v in values
            ]
            n = estimator.sample_size_for_se(w, ua, target_se)
            info.update(
                {
                    "target_se": float(target_se),
                    "expected_users_accuracy": dict(zip(map(str, values), ua)),
                    "n_from_target_se": n,
                }
            )
            log(
                f"sample size for a standard error of overall accuracy of {target_se:g} (Olofsson et al. 2014, "
                f"eq. 13): n = {n}"
            )
        else:
            n = int(total)
            if n < 1:
                raise SatClassifyError(f"TOTAL must be at least 1 point, got {total}")
        n_i = estimator.allocate(n, w, pixels, minimum, rule)
        info.update({"allocation": rule, "minimum_per_class": int(minimum), "requested_total": n})
        if sum(n_i) > n:
            log(f"the minimum of {minimum} points per class raises the sample from {n} to {sum(n_i)} points")
    short = [(v, c) for v, c, k in zip(values, pixels, n_i) if k == c and c < minimum]
    for v, c in short:
        log(f"WARNING: class {v} has only {c} pixels: all of them are sample points")
    empty = [v for v, k in zip(values, n_i) if k == 0]
    if empty:
        log(
            f"WARNING: class value(s) {empty[:20]} get no sample point: their area and accuracy cannot be estimated "
            "(satclassify:assessaccuracy will refuse them): set MIN_PER_CLASS above 0, or leave them out with IGNORE"
        )
    info["points_per_stratum"] = {str(v): int(k) for v, k in zip(values, n_i)}
    info["total_points"] = int(sum(n_i))
    return {"n": n_i, "info": info}


def select_pixels(
    ds: gdal.Dataset,
    values: List[int],
    pixels: List[int],
    n_i: List[int],
    seed: int,
    ignore,
    block: int = DEFAULT_BLOCK,
    monitor: Optional[Monitor] = None,
    mask_ds: Optional[gdal.Dataset] = None,
):
    """(rows, cols, strata) of the sampled pixels: for each stratum ``n_i`` distinct ranks among its ``pixels``,
    drawn with ``numpy.random.default_rng(seed)``, located in a second block pass (same order as the count)."""
    monitor = monitor or Monitor()
    rng = np.random.default_rng(int(seed))
    ranks = {}
    for v, c, k in zip(values, pixels, n_i):
        if k:
            ranks[v] = np.sort(rng.choice(c, size=k, replace=False)).astype(np.int64)
    seen = {v: 0 for v in ranks}
    pos = {v: 0 for v in ranks}
    band = ds.GetRasterBand(1)
    nd = nodata_of(ds)
    skip = set(ignore) | ({nd} if nd is not None else set())
    mband = mask_ds.GetRasterBand(1) if mask_ds is not None else None
    rows, cols, strata = [], [], []
    windows = strips(ds.RasterXSize, ds.RasterYSize, block)
    for k, (x, y, w, h) in enumerate(windows):
        monitor.check()
        a = band.ReadAsArray(x, y, w, h).astype(np.int64).ravel()
        if skip:
            a[np.isin(a, list(skip))] = -1
        if mband is not None:
            a[mband.ReadAsArray(x, y, w, h).ravel() == 0] = -1
        for v, r in ranks.items():
            i = pos[v]
            if i >= len(r):
                continue
            flat = np.flatnonzero(a == v)
            hi = seen[v] + flat.size
            j = int(np.searchsorted(r, hi, side="left"))
            if j > i:
                idx = flat[r[i:j] - seen[v]]
                rows.append(y + idx // w)
                cols.append(x + idx % w)
                strata.append(np.full(idx.size, v, dtype=np.int64))
                pos[v] = j
            seen[v] = hi
        monitor.progress((k + 1) / len(windows))
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(strata)


def write_points(path: str, ds: gdal.Dataset, rows, cols, strata, names: Dict[int, str], metadata: dict) -> None:
    """GeoPackage point layer at the pixel centres, written to ``path`` (the caller's temporary name)."""
    gt = ds.GetGeoTransform()
    srs = raster.srs_of(ds)
    out = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    lyr = out.CreateLayer(LAYER, srs, ogr.wkbPoint, options=["SPATIAL_INDEX=YES"])
    for name, t in (
        ("point_id", ogr.OFTInteger),
        ("stratum", ogr.OFTInteger),
        ("stratum_name", ogr.OFTString),
        ("reference", ogr.OFTInteger),
        ("row", ogr.OFTInteger),
        ("col", ogr.OFTInteger),
    ):
        lyr.CreateField(ogr.FieldDefn(name, t))
    lyr.SetMetadataItem(
        "DESCRIPTION",
        "SatClassify stratified random sample (strata = map classes); fill in "
        "'reference' with the reference class of each point's pixel",
    )
    lyr.SetMetadataItem("SATCLASSIFY_STRATA", json.dumps(metadata))
    defn = lyr.GetLayerDefn()
    out.StartTransaction()
    order = np.lexsort((cols, rows))  # north to south, west to east: easy to walk through when labelling
    for pid, i in enumerate(order, start=1):
        r, c, v = int(rows[i]), int(cols[i]), int(strata[i])
        f = ogr.Feature(defn)
        f.SetField("point_id", pid)
        f.SetField("stratum", v)
        f.SetField("stratum_name", names.get(v, f"class {v}"))
        f.SetFieldNull("reference")
        f.SetField("row", r)
        f.SetField("col", c)
        px, py = gt[0] + (c + 0.5) * gt[1] + (r + 0.5) * gt[2], gt[3] + (c + 0.5) * gt[4] + (r + 0.5) * gt[5]
        g = ogr.Geometry(ogr.wkbPoint)
        g.AddPoint_2D(px, py)
        f.SetGeometry(g)
        lyr.CreateFeature(f)
    out.CommitTransaction()
    lyr = defn = None  # the layer before its data source (GDAL < 3.8)
    out = None


def sampling_design(
    classified: str,
    points_path: Optional[str],
    strata_path: Optional[str] = None,
    options: Optional[SamplingOptions] = None,
    monitor: Optional[Monitor] = None,
) -> dict:
    """Draw the stratified random sample of ``classified``; returns the strata/design dict written to JSON."""
    o = options or SamplingOptions()
    monitor = monitor or Monitor()
    log = monitor.info
    ignore_list = accuracy.parse_ignore(o.ignore)
    ds = open_class_raster(classified, "classified")
    area = pixel_area_ha(ds, "classified raster")
    if raster.srs_of(ds) is None:
        log("WARNING: the classified raster has no CRS: the points carry none and areas assume metres")
    ua: ExpectedUA = float(o.expected_ua)
    if o.expected_ua_table:
        per_class: Dict[Union[int, str], float] = {"default": float(o.expected_ua)}
        per_class.update(read_class_table(o.expected_ua_table, "expected_ua", "expected user's accuracy table").items())
        ua = per_class
    counts = read_class_table(o.counts_table, "count", "counts table", kind=int) if o.counts_table else None
    names_table = accuracy.read_names(o.names) if o.names else {}
    per_value = count_strata(ds, ignore_list, o.block, monitor.sub(0.0, 0.45))
    if not per_value:
        raise SatClassifyError(
            f"the classified raster '{classified}' has no pixel outside nodata and IGNORE "
            f"({ignore_list}): there is nothing to sample"
        )
    refuse_image("classified", ds, len(per_value))
    values = sorted(per_value)
    pixels = [per_value[v] for v in values]
    cats = raster.categories(ds)
    class_names = {v: (names_table.get(v) or cats.get(v) or (f"class {v}", None))[0] for v in values}
    plan = design(values, pixels, o.method, o.target_se, ua, o.total, o.rule, o.minimum, counts, log)
    rows, cols, strata = select_pixels(
        ds, values, pixels, plan["n"], o.seed, ignore_list, o.block, monitor.sub(0.45, 0.9)
    )
    table = estimator.strata_table(values, pixels, area, class_names)
    for t, k in zip(table, plan["n"]):
        t["points"] = int(k)
    meta = {
        "source": os.path.abspath(classified) if os.path.exists(classified) else classified,
        "pixel_area_ha": area,
        "total_pixels": int(sum(pixels)),
        "total_area_ha": float(sum(pixels) * area),
        "ignore": ignore_list,
        "nodata": nodata_of(ds),
        "seed": int(o.seed),
        "point_location": "pixel centre",
        "crs": ds.GetProjection(),
        "design": plan["info"],
        "strata": table,
        "reference": "Olofsson et al. (2014), Remote Sensing of Environment 148, 42-57",
    }
    with contextlib.ExitStack() as outputs:  # both files appear together at the end, or neither
        tmp_json = outputs.enter_context(raster.AtomicOutput(strata_path)) if strata_path else None
        if points_path:
            write_points(
                outputs.enter_context(raster.AtomicOutput(points_path)), ds, rows, cols, strata, class_names, meta
            )
        if tmp_json:
            with open(tmp_json, "w", encoding="utf-8") as f:
                json.dump(meta, f, indent=1)
    monitor.progress(1.0)
    log(
        f"{len(rows)} sample points in {len(values)} strata: "
        + ", ".join(f"{t['value']} {t['name']}: {t['points']}" for t in table)
    )
    return meta
