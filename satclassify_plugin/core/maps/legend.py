"""Legends of class rasters: only the classes present, each with its name and area (ha and % of the labelled area).

The histogram is counted blockwise (:func:`class_counts`), so any raster size fits in memory; the area of a
pixel comes from the geotransform and the CRS's linear unit (:func:`pixel_area_m2`: a raster in degrees has no
area in hectares and is refused with the fix).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
from osgeo import gdal

from .. import crs, raster
from ..contract.classes import as_dict
from ..contract.errors import SatClassifyError

gdal.UseExceptions()


def pixel_area_m2(ds: gdal.Dataset, what: str = "raster", name: str = "INPUT") -> float:
    """Area of one pixel in square metres on the ground (core/crs.py: nominal in a metre CRS such as UTM, measured
    on the ellipsoid in Web Mercator). A raster without a CRS, in a geographic CRS (degrees: pixels differ in area
    with latitude), or in a CRS whose pixel areas vary over the raster, is refused with the fix."""
    srs = raster.srs_of(ds)
    if srs is None:
        raise SatClassifyError(
            f"{name}: the {what} has no coordinate reference system, so its pixels have no "
            "known area: assign its CRS first (Raster > Projections > Assign Projection)"
        )
    if srs.IsGeographic():
        raise SatClassifyError(
            f"{name}: the {what} is in a geographic CRS ({srs.GetName()}, degrees): pixel areas differ with the "
            "latitude, so a minimum mapping unit in hectares has no fixed pixel count. Reproject it to a projected "
            "CRS in metres first (Raster > Projections > Warp: the UTM zone, or EPSG:3035 for Europe), with "
            "nearest-neighbour resampling for a class raster"
        )
    gt = ds.GetGeoTransform()
    if abs(gt[1] * gt[5] - gt[2] * gt[4]) <= 0:
        raise SatClassifyError(f"{name}: the {what} has no valid geotransform (pixel size 0)")
    # on the ground: a CRS whose map units are not ground metres (Web Mercator) is measured on the ellipsoid
    # (core/crs.py), and refused where one pixel count cannot stand for one area
    try:
        return crs.pixel_area_m2(ds, what)
    except SatClassifyError as e:
        raise SatClassifyError(f"{name}: {e}") from None


def class_counts(ds: gdal.Dataset, band: int = 1, block: int = 1024) -> np.ndarray:
    """Pixels per value (index = value) of an integer class band, counted window by window."""
    b = ds.GetRasterBand(band)
    if b.DataType not in (gdal.GDT_Byte, gdal.GDT_UInt16, gdal.GDT_Int16, gdal.GDT_UInt32, gdal.GDT_Int32):
        raise SatClassifyError(
            f"band {band} of '{ds.GetDescription()}' is {gdal.GetDataTypeName(b.DataType)}, "
            "not a class raster (integer class values)"
        )
    counts = np.zeros(256, np.int64)
    for x, y, w, h in raster.iter_windows(ds.RasterXSize, ds.RasterYSize, block):
        a = b.ReadAsArray(x, y, w, h)
        if a.size and (int(a.min()) < 0):
            a = a[a >= 0]
        c = np.bincount(a.ravel(), minlength=counts.size)
        if c.size > counts.size:
            counts = np.concatenate([counts, np.zeros(c.size - counts.size, np.int64)])
        counts[: c.size] += c
    return counts


def present_classes(
    counts: np.ndarray, classes: Sequence, pixel_area: Optional[float], nodata: Optional[float] = 0
) -> List[dict]:
    """The classes with at least one pixel, in value order: ``{value, code, name, color, pixels, area_ha,
    percent}``; percent of the labelled pixels (nodata left out); area_ha None when ``pixel_area`` is (a raster
    in degrees). Values present but missing from ``classes`` are listed as "class N" (grey), so the legend
    accounts for every pixel."""
    table: Dict[int, dict] = {}
    for c in classes:
        d = as_dict(c)
        table[int(d["value"])] = d
    nd = int(nodata) if nodata is not None and float(nodata).is_integer() else None
    labelled = int(counts.sum()) - (int(counts[nd]) if nd is not None and 0 <= nd < counts.size else 0)
    out = []
    for v in np.nonzero(counts)[0]:
        v = int(v)
        if v == nd:
            continue
        d = table.get(v, {"value": v, "code": str(v), "name": f"class {v}", "color": "#808080"})
        px = int(counts[v])
        out.append(
            {
                "value": v,
                "code": str(d.get("code", v)),
                "name": str(d["name"]),
                "color": d["color"],
                "pixels": px,
                "area_ha": px * pixel_area / 1e4 if pixel_area else None,
                "percent": 100.0 * px / labelled if labelled else 0.0,
            }
        )
    return out


def class_areas(
    path: str, classes: Optional[Sequence] = None, band: int = 1, counts: Optional[np.ndarray] = None
) -> List[dict]:
    """:func:`present_classes` of the class raster file ``path`` (its own class table unless ``classes``).
    ``counts``: the pixels per class value when the writer counted them already (classify): then only the file's
    grid and nodata are read, not its pixels."""
    ds = raster.open_raster(path, "class raster")
    nodata = ds.GetRasterBand(band).GetNoDataValue()
    table = list(classes) if classes is not None else raster.classes_from_raster(ds, band)
    try:
        area = pixel_area_m2(ds, "class raster")
    except SatClassifyError:  # no CRS, or degrees: shares only
        area = None
    if counts is None:
        counts = class_counts(ds, band)
    out = present_classes(counts, table, area, 0 if nodata is None else nodata)
    ds = None
    return out


def format_area(ha: float) -> str:
    if ha >= 100:
        return f"{ha:,.0f} ha"
    if ha >= 1:
        return f"{ha:.1f} ha"
    return f"{ha:.2f} ha"


def legend_label(entry: dict) -> str:
    """ "Arable land – 1,234 ha (41.2 %)" for a :func:`present_classes` entry ("name (41.2 %)" without an area;
    the name alone for a plain class)."""
    if "percent" not in entry:
        return str(entry["name"])
    if entry.get("area_ha") is None:
        return f"{entry['name']} ({entry['percent']:.1f} %)"
    return f"{entry['name']} \u2013 {format_area(entry['area_ha'])} ({entry['percent']:.1f} %)"


__all__ = ["class_areas", "class_counts", "format_area", "legend_label", "pixel_area_m2", "present_classes"]
