"""Ground truths of a raster grid, whatever its CRS's map units (QGIS env: osr for the transforms).

A CRS's map units are not always ground metres: EPSG:3857 (Web Mercator) stretches lengths by 1/cos(latitude)
(2.9x at 70 N, areas 8.5x), and a geographic CRS counts degrees. Every tool that turns pixels into metres or
hectares asks this module:

* :func:`north_up` refuses a rotated geotransform (the one check every tool shares);
* :func:`ground_of` measures one pixel on the ground: the pixel's edges are carried to the CRS's own geographic
  CRS (its ellipsoid) at sample points of the raster (centre, corners, edge midpoints) and measured with the
  ellipsoid's local metric (meridian and prime-vertical radii of curvature): lengths in metres, areas in m^2;
* :func:`pixel_area_m2` and :func:`pixel_size_m` give the values the tools use: a projected CRS in metres whose
  scale stays within :data:`METRE_TRUE` of 1 over the raster (UTM, LAEA, national grids) keeps its nominal
  pixel size (10 m is 10 m, as every GIS reports it); any other CRS gets the ground values at the raster's
  centre; areas are refused with the fix where the scale varies more than :data:`AREA_SPREAD` over the raster
  (one pixel count cannot stand for one area there).

The maths is plain Python (no osr/pyproj inside :func:`local_metric` and :func:`jacobian_scales`), tested
against the closed form of Mercator (scale 1/cos(latitude)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from osgeo import osr

from .contract.errors import SatClassifyError

#: a metre CRS whose scale (lengths) stays within 1 % of 1 over the raster is taken at its nominal pixel size
METRE_TRUE = 0.01
#: areas are refused where the ground area of a pixel varies by more than this (relative) over the raster
AREA_SPREAD = 0.02
WGS84 = (6378137.0, 298.257223563)


def north_up(gt: Sequence[float], what: str = "raster") -> None:
    """Refuse a rotated (or sheared) geotransform: the tools write north-up grids only."""
    if abs(gt[2]) > 0 or abs(gt[4]) > 0:
        raise SatClassifyError(
            f"the {what} is rotated (geotransform rotation terms {gt[2]:g}, {gt[4]:g}): rotated rasters are not "
            "supported; warp it to a north-up grid first (Raster > Projections > Warp, or gdalwarp)"
        )


def local_metric(lat_deg: float, a: float = WGS84[0], inv_f: float = WGS84[1]) -> Tuple[float, float]:
    """(metres per radian of latitude, metres per radian of longitude) on the ellipsoid at ``lat_deg``: the
    meridian radius of curvature M and the parallel's radius N cos(lat)."""
    f = 1.0 / inv_f if inv_f else 0.0
    e2 = f * (2.0 - f)
    phi = math.radians(lat_deg)
    s2 = math.sin(phi) ** 2
    w = math.sqrt(1.0 - e2 * s2)
    m = a * (1.0 - e2) / (w**3)
    n = a / w
    return m, n * math.cos(phi)


def jacobian_scales(
    lat_deg: float,
    d_x: Tuple[float, float],
    d_y: Tuple[float, float],
    step: float,
    a: float = WGS84[0],
    inv_f: float = WGS84[1],
) -> Tuple[Tuple[float, float], Tuple[float, float]]:
    """Ground metres (east, north) per map unit along the map's x and y axes at latitude ``lat_deg``, from the
    (longitude, latitude) differences in degrees ``d_x`` and ``d_y`` across ``step`` map units along x and along
    y (pure maths)."""
    m, p = local_metric(lat_deg, a, inv_f)

    def vec(d):
        dlon = (d[0] + 180.0) % 360.0 - 180.0
        return (math.radians(dlon) * p / step, math.radians(d[1]) * m / step)

    return vec(d_x), vec(d_y)


@dataclass
class Ground:
    """One pixel of a grid on the ground, at the raster's centre (and how its area varies over the raster)."""

    width_m: float  # ground length of a pixel's x edge (one column)
    height_m: float  # ground length of its y edge (one row)
    area_m2: float  # ground area of a pixel
    nominal_area: float  # |det| of the geotransform (map units^2)
    nominal_size: float  # mean length of the pixel's two edges in map units
    units_m: float  # metres per map unit the CRS declares (GetLinearUnits; 0 for degrees)
    geographic: bool
    length_scale: Tuple[float, float]  # lowest and highest ground/nominal length ratio over the samples
    area_scale: Tuple[float, float]  # lowest and highest ground/nominal area ratio over the samples
    crs_name: str

    @property
    def size_m(self) -> float:
        """The pixel's ground size: the mean of its two edges."""
        return 0.5 * (self.width_m + self.height_m)

    @property
    def metre_true(self) -> bool:
        """A projected CRS in metres whose lengths are within :data:`METRE_TRUE` of ground lengths everywhere on
        the raster: its nominal pixel size is the ground size (UTM, LAEA near its centre, national grids)."""
        return (
            not self.geographic
            and self.units_m > 0
            and self.length_scale[0] >= 1 - METRE_TRUE
            and self.length_scale[1] <= 1 + METRE_TRUE
        )


def _srs(wkt_or_srs):
    if wkt_or_srs is None or wkt_or_srs == "":
        return None
    if isinstance(wkt_or_srs, osr.SpatialReference):
        srs = wkt_or_srs.Clone()
    else:
        srs = osr.SpatialReference()
        srs.ImportFromWkt(wkt_or_srs)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def ground_of(gt: Sequence[float], wkt, width: int, height: int) -> Optional[Ground]:
    """The pixel of the grid (geotransform ``gt``, CRS ``wkt`` (WKT or osr SRS), ``width`` x ``height``) measured
    on the CRS's ellipsoid; None when the grid has no CRS. Raises when the raster's centre cannot be carried to
    geographic coordinates."""
    srs = _srs(wkt)
    if srs is None:
        return None
    geog = srs.CloneGeogCS()
    geog.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    a, inv_f = geog.GetSemiMajor(), geog.GetInvFlattening()
    ct = osr.CoordinateTransformation(srs, geog)
    geographic = bool(srs.IsGeographic())
    units = 0.0 if geographic else float(srs.GetLinearUnits() or 1.0)
    px_x, px_y = (gt[1], gt[4]), (gt[2], gt[5])
    nominal_area = abs(gt[1] * gt[5] - gt[2] * gt[4])
    nominal_len = (math.hypot(*px_x), math.hypot(*px_y))
    # finite differences over a pixel edge, at least ~10 m (PROJ's inverse projections are exact to ~1e-9 degrees:
    # a much shorter step would measure their noise)
    step = max(min([v for v in nominal_len if v > 0] or [1.0]), 1e-4 if geographic else 10.0 / units)
    samples: List[Tuple[float, float, float]] = []
    for fy in (0.5, 0.0, 1.0):
        for fx in (0.5, 0.0, 1.0):
            c, r = fx * width, fy * height
            x = gt[0] + c * gt[1] + r * gt[2]
            y = gt[3] + c * gt[4] + r * gt[5]
            try:
                p0 = ct.TransformPoint(x, y)
                pts = [
                    ct.TransformPoint(x + dx, y + dy)
                    for dx, dy in ((-step / 2, 0), (step / 2, 0), (0, -step / 2), (0, step / 2))
                ]
            except RuntimeError:
                p0 = None
            if p0 is None or not all(math.isfinite(v) for q in [p0] + pts for v in q[:2]) or abs(p0[1]) >= 90:
                if not samples:
                    raise SatClassifyError(
                        f"the raster's centre cannot be carried from its CRS ({srs.GetName()}) to geographic "
                        "coordinates, so its pixel size on the ground is unknown: check the CRS"
                    )
                continue
            jx, jy = jacobian_scales(
                p0[1],
                (pts[1][0] - pts[0][0], pts[1][1] - pts[0][1]),
                (pts[3][0] - pts[2][0], pts[3][1] - pts[2][1]),
                step,
                a,
                inv_f,
            )
            gx = (jx[0] * px_x[0] + jy[0] * px_x[1], jx[1] * px_x[0] + jy[1] * px_x[1])
            gy = (jx[0] * px_y[0] + jy[0] * px_y[1], jx[1] * px_y[0] + jy[1] * px_y[1])
            area = abs(jx[0] * jy[1] - jx[1] * jy[0]) * nominal_area
            samples.append((math.hypot(*gx), math.hypot(*gy), area))
    w0, h0, a0 = samples[0]
    unit = units or 1.0
    lens = [s[0] / (nominal_len[0] * unit) for s in samples if nominal_len[0]] + [
        s[1] / (nominal_len[1] * unit) for s in samples if nominal_len[1]
    ]
    areas = [s[2] / (nominal_area * unit * unit) for s in samples if nominal_area]
    return Ground(
        w0,
        h0,
        a0,
        nominal_area,
        0.5 * (nominal_len[0] + nominal_len[1]),
        units,
        geographic,
        (min(lens or [1.0]), max(lens or [1.0])),
        (min(areas or [1.0]), max(areas or [1.0])),
        srs.GetName() or "unnamed CRS",
    )


def ground_of_raster(ds) -> Optional[Ground]:
    """:func:`ground_of` for a GDAL dataset."""
    return ground_of(ds.GetGeoTransform(), ds.GetProjection(), ds.RasterXSize, ds.RasterYSize)


def pixel_size_m(g: Ground) -> float:
    """The pixel size the tools compare with a model's resolution: the nominal size in metres for a metre-true
    CRS, else the ground size at the raster's centre."""
    if g.metre_true:
        return g.nominal_size * g.units_m
    return g.size_m


def pixel_area_m2(ds, what: str = "raster") -> float:
    """Area of one pixel in square metres on the ground. No CRS: the map units are taken as metres (as before).
    A metre-true CRS: the nominal area. Any other CRS (Web Mercator, degrees): the ground area at the raster's
    centre, refused with the fix where it varies by more than :data:`AREA_SPREAD` over the raster."""
    g = ground_of_raster(ds)
    gt = ds.GetGeoTransform()
    nominal = abs(gt[1] * gt[5] - gt[2] * gt[4])
    if g is None:
        return nominal
    if g.metre_true:
        return nominal * g.units_m * g.units_m
    lo, hi = g.area_scale
    if hi > (1 + AREA_SPREAD) * lo:
        raise SatClassifyError(
            f"the {what} is in {g.crs_name}, whose map units are not ground metres: one pixel covers "
            f"{_fmt(lo * nominal * (g.units_m or 1) ** 2)} to {_fmt(hi * nominal * (g.units_m or 1) ** 2)} m\u00b2 on "
            "the ground across the raster, so areas in hectares need one pixel area. Reproject it to an equal-area "
            "or local metric CRS first (Raster > Projections > Warp: EPSG:3035 for Europe or the UTM zone), with "
            "nearest-neighbour resampling for a class raster"
        )
    return g.area_m2


def area_note(ds, what: str = "raster") -> Optional[str]:
    """A line for the log when the raster's pixel area is a ground value that differs from its map units, else
    None."""
    g = ground_of_raster(ds)
    if g is None or g.metre_true or g.geographic:
        return None
    gt = ds.GetGeoTransform()
    return (
        f"the {what}'s CRS ({g.crs_name}) has map units that are not ground metres here: one pixel of "
        f"{abs(gt[1]):g} x {abs(gt[5]):g} map units covers {g.width_m:.3g} x {g.height_m:.3g} m = "
        f"{_fmt(g.area_m2)} m\u00b2 on the ground at the raster's centre (measured on the ellipsoid); areas use "
        "that"
    )


def _fmt(v: float) -> str:
    return f"{v:.4g}"
