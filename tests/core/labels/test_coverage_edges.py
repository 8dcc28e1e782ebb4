"""coverage.read_edges: the Arrow batch path (one-ring features read at once) gives the same edges, in the same
order, as reading every feature on its own, on a layer mixing one-ring polygons with holes, multi-parts, Z
coordinates, an empty geometry and a degenerate ring."""

import numpy as np
import pytest
from osgeo import gdal, ogr

from satclassify_plugin.core.labels import coverage

gdal.UseExceptions()
WKTS = [
    "POLYGON((0 0,10 0,10 10,0 10,0 0))",
    "MULTIPOLYGON(((10 0,20 0,20 10,10 10,10 0)))",
    "POLYGON((20 0,40 0,40 20,20 20,20 0),(25 5,25 15,35 15,35 5,25 5))",
    "MULTIPOLYGON(((0 10,5 10,5 20,0 20,0 10)),((5 10,10 10,10 20,5 20,5 10)))",
    "POLYGON((0 20,10 20,10 30,0 20))",
    None,
    "POLYGON Z((10 20 1,20 20 1,20 30 1,10 30 1,10 20 1),(12 22 1,12 28 1,18 28 1,12 22 1))",
    "POLYGON((20 20,30 20,30 30,20 30,20 20))",
    "MULTIPOLYGON(((30 20,40 20,40 30,30 30,30 20)))",
]


def _layer():
    ds = gdal.GetDriverByName("Memory").Create("", 0, 0, 0, gdal.GDT_Unknown)
    lyr = ds.CreateLayer("x", None, ogr.wkbUnknown)
    lyr.CreateField(ogr.FieldDefn("v", ogr.OFTInteger))
    for i, wkt in enumerate(WKTS):
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetField("v", i + 1)
        if wkt:
            f.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        lyr.CreateFeature(f)
    return ds, lyr


def test_batch_path_matches_feature_path(monkeypatch):
    ds, lyr = _layer()
    if not hasattr(lyr, "GetArrowStreamAsNumPy"):
        pytest.skip("GDAL without the Arrow interface: only the per-feature path exists")
    gt = (0.0, 1.0, 0.0, 40.0, 0.0, -1.0)
    fast = coverage.read_edges(lyr, "v", gt, 40, 40, 16)
    seen = []
    orig = coverage._simple_rings
    monkeypatch.setattr(coverage, "_simple_rings", lambda *a: seen.append(orig(*a)) or (np.zeros(len(a[0]), bool), {}))
    slow = coverage.read_edges(lyr, "v", gt, 40, 40, 16)
    assert seen and seen[0][0].sum() == 5  # the five one-ring features took the batch path
    for name in ("u0", "v0", "u1", "v1", "cls", "strip_start", "index", "values"):
        assert np.array_equal(getattr(fast, name), getattr(slow, name)), name
    assert np.array_equal(fast.fids, slow.fids)
    assert fast.values.tolist() == list(range(1, len(WKTS) + 1))
    # 42 ring edges; the three on y = 0 (the grid's bottom line) and the two on x = 40 (its right line) touch no
    # pixel row or column inside the grid
    assert fast.u0.size == 4 + 4 + 8 + 8 + 3 + 7 + 4 + 4 - 5
