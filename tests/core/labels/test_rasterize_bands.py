"""The majority rule's memory bound (core/labels/rasterize.py): the polygons are read band by band with a spatial
filter and each band is cut into strips sized by its edges. The mechanism is tested, not a memory figure (that is
benchmarks/rasterize_memory.py): tiny bands and strips give exactly the rasters (majority and MIXED) of the
whole-grid path, in the layer's CRS (edges read from the layer itself) and reprojected (a memory copy per band),
with overlapping polygons (the painter fallback and the reversed burn, per band), holes and polygons beyond the
grid."""

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from satclassify_plugin.core.contract.feedback import Monitor
from satclassify_plugin.core.labels import coverage
from satclassify_plugin.core.labels import rasterize as R

gdal.UseExceptions()
X0, Y0, PX, W, H = 500000.0, 5200000.0, 10.0, 37, 29
CODES = ["111", "211", "311", "512", "231"]


def _srs(epsg):
    s = osr.SpatialReference()
    s.ImportFromEPSG(epsg)
    return s


def squares_layer(path):
    """Jittered small squares (1-3 px, some overlapping their neighbour), a polygon with a hole, one reaching
    beyond the grid's left and top sides, in EPSG:32633."""
    rng = np.random.default_rng(7)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("clc", _srs(32633), ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("code_18", ogr.OFTString))

    def add(wkt, code):
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        f.SetField("code_18", code)
        lyr.CreateFeature(f)

    def box(x, y, s):
        return f"POLYGON(({x} {y},{x + s} {y},{x + s} {y + s},{x} {y + s},{x} {y}))"

    top = Y0 + H * PX + 40
    add(
        f"POLYGON(({X0 - 50} {Y0 + 200},{X0 + 120} {Y0 + 200},{X0 + 120} {top},{X0 - 50} {top},{X0 - 50} {Y0 + 200}),"
        f"({X0 + 20} {Y0 + 240},{X0 + 60} {Y0 + 240},{X0 + 60} {Y0 + 270},{X0 + 20} {Y0 + 270},"
        f"{X0 + 20} {Y0 + 240}))",
        "311",
    )
    for i in range(12):
        for j in range(14):
            x = X0 + j * 27.0 + rng.uniform(0, 9)
            y = Y0 + i * 25.0 + rng.uniform(0, 9)
            add(box(x, y, rng.uniform(8, 33)), CODES[int(rng.integers(len(CODES)))])
    ds = None
    return str(path)


def run(src, tmp_path, name, grid, rule="majority"):
    out, mixed = tmp_path / f"{name}.tif", tmp_path / f"{name}_mixed.tif"
    R.rasterize_clc(
        src, str(out), grid, R.RasterizeOptions(level=3, rule=rule, mixed_output=str(mixed)), monitor=Monitor()
    )
    return gdal.Open(str(out)).ReadAsArray(), gdal.Open(str(mixed)).ReadAsArray()


@pytest.mark.parametrize(
    "epsg, origin", [(32633, (X0 + 3.0, Y0 + H * PX - 2.0)), (3035, None)], ids=["layer CRS", "reprojected"]
)
def test_tiny_bands_and_strips_give_the_whole_grid_rasters(tmp_path, monkeypatch, epsg, origin):
    src = squares_layer(tmp_path / "sq.gpkg")
    if origin is None:  # about the same place in EPSG:3035
        a, b = _srs(32633), _srs(3035)
        for s in (a, b):
            s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        origin = osr.CoordinateTransformation(a, b).TransformPoint(X0 + 5.0, Y0 + H * PX - 5.0)[:2]
    grid = R.Grid(W, H, (origin[0], PX, 0.0, origin[1], 0.0, -PX), _srs(epsg).ExportToWkt())
    whole, whole_mixed = run(src, tmp_path, "whole", grid)
    assert (whole > 0).sum() > 200 and (whole_mixed == R.MIXED_TWICE).any()  # the overlaps are in the case

    bands, rows = [], []
    band_fn, read = R._majority_band, coverage.read_edges

    def spy_band(*a, **k):
        bands.append((a[4], a[5]))
        return band_fn(*a, **k)

    def spy_read(*a, **k):
        e = read(*a, **k)
        rows.append(e.rows)
        return e

    monkeypatch.setattr(R, "_majority_band", spy_band)
    monkeypatch.setattr(coverage, "read_edges", spy_read)
    monkeypatch.setattr(R, "BAND_FEATURES", 20)
    monkeypatch.setattr(R, "STRIP_EDGES", 30)
    banded, banded_mixed = run(src, tmp_path, "banded", grid)
    assert len(bands) >= 2 and bands[0][0] == 0 and bands[-1][1] == H, bands
    assert all(a[1] == b[0] for a, b in zip(bands, bands[1:])), bands  # contiguous, no row twice
    assert min(rows) < max(b - a for a, b in bands)  # strips shorter than their band: sized by the edges
    np.testing.assert_array_equal(banded, whole)
    np.testing.assert_array_equal(banded_mixed, whole_mixed)


def test_bands_cover_the_grid_in_whole_strips():
    assert R._bands(1000, 255, R.BAND_FEATURES) == [(0, 1000)]  # a layer of CLC density: one band, as before
    b = R._bands(1000, 50, 10 * R.BAND_FEATURES)  # 100 rows a band
    assert b[0] == (0, 100) and b[-1] == (900, 1000) and len(b) == 10
    b = R._bands(1000, 255, 4 * R.BAND_FEATURES)  # 250 rows wanted: fewer than a strip, not rounded to 0
    assert b[0] == (0, 250) and b[-1][1] == 1000
    b = R._bands(5000, 255, 4 * R.BAND_FEATURES)  # 1250 rows wanted: rounded down to whole strips
    assert b[0] == (0, 1020) and all((y1 - y0) % 255 == 0 for y0, y1 in b[:-1]) and b[-1][1] == 5000
    # a grid rotated against the layer's CRS: each band's filter rectangle is 60 rows taller than the band; bands
    # of at least 120 rows, so that a feature is read about twice at most
    b = R._bands(1000, 50, 10 * R.BAND_FEATURES, skew=60.0)
    assert b[0] == (0, 120) and len(b) == 9 and b[-1] == (960, 1000)
