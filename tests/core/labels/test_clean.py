"""core/labels/clean.py (the majority on a clean coverage: centre rule + exact complex pixels) against
core/labels/coverage.strip_fractions (every boundary pixel exact), strip by strip: the same classes and dominant
fractions on clean coverages, including the cases where a scanline goes wrong (vertices on pixel centres and
centre lines, edges on grid lines, through pixel centres, junctions and touching vertices on a centre line,
same-class neighbours, holes with islands, "no label" polygons, the grid's edges); and a refusal (None) where the
coverage is not clean, so that the caller takes the general method."""

import numpy as np
import pytest
import shapely
from osgeo import gdal, ogr

from satclassify_plugin.core.labels import clean, coverage

gdal.UseExceptions()
W, H, ROWS = 23, 17, 6  # three strips, the last one shorter


def edges_of(wkts, values, rows=ROWS):
    ds = gdal.GetDriverByName("Memory").Create("", 0, 0, 0, gdal.GDT_Unknown)
    lyr = ds.CreateLayer("x", None, ogr.wkbUnknown)
    lyr.CreateField(ogr.FieldDefn("v", ogr.OFTInteger))
    for wkt, v in zip(wkts, values):
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetField("v", int(v))
        f.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        lyr.CreateFeature(f)
    # pixel coordinates = map coordinates (u = x, v = y)
    return coverage.read_edges(lyr, "v", (0.0, 1.0, 0.0, 0.0, 0.0, 1.0), H, W, rows)


def compare(wkts, values, threshold=0.75):
    """Assert clean == general on every strip (classes; the complex pixels' dominant fractions; the mixed mask,
    unless threshold is None); returns the number of complex pixels seen."""
    edges = edges_of(wkts, values)
    n_complex = 0
    for s, y0 in enumerate(range(0, H, ROWS)):
        r = min(ROWS, H - y0)
        fast = clean.strip_majority(*edges.strip(s), y0, r, W, threshold)
        ref = coverage.strip_fractions(*edges.strip(s), y0, r, W)
        assert fast is not None, f"strip {s} refused"
        assert not ref.irregular.any() and not ref.irregular_runs
        assert not fast.irregular.any()
        np.testing.assert_array_equal(fast.raster, ref.raster, err_msg=f"strip {s}")
        assert np.array_equal(fast.value, fast.raster.reshape(-1)[fast.cells])
        # the complex pixels are boundary pixels of the reference, with its dominant fraction
        dom = np.full(r * W, np.nan)
        dom[ref.cells] = ref.dominant
        np.testing.assert_allclose(fast.dominant, dom[fast.cells], atol=1e-9, err_msg=f"strip {s}")
        if threshold is None:
            assert fast.mixed is None
        else:
            # pixels the reference lists as boundary pixels but the fast path not lie between two polygons of
            # one class (their shared edge is dropped): wholly one class, never mixed
            exp = np.zeros(r * W, np.uint8)
            exp[ref.cells] = ref.dominant < threshold - coverage.EPS
            np.testing.assert_array_equal(fast.mixed.reshape(-1), exp, err_msg=f"strip {s}")
        n_complex += fast.cells.size
    return n_complex


def voronoi(seed, n, snap=None):
    rng = np.random.default_rng(seed)
    pts = rng.uniform([-3, -3], [W + 3, H + 3], (n, 2))
    if snap:
        pts = np.round(pts / snap) * snap
    frame = shapely.box(-4, -4, W + 4, H + 4)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=frame))
    cells = [shapely.intersection(c, frame) for c in cells]
    if snap:  # vertices on the snap lattice too (pixel corners, edge middles, centres)
        cells = [shapely.set_precision(c, snap) for c in cells]
    cells = [c for c in cells if not c.is_empty and c.area > 0]
    return cells


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("snap", [None, 0.5, 1.0])
def test_voronoi_coverages(seed, snap):
    cells = voronoi(seed, 25, snap)
    rng = np.random.default_rng(seed + 100)
    values = rng.integers(0, 4, len(cells))  # few classes: many same-class neighbours; 0 = no label
    assert compare([c.wkt for c in cells], values) > 0
    compare([c.wkt for c in cells], values, threshold=None)
    compare([c.wkt for c in cells], values, threshold=0.55)
    compare([c.wkt for c in cells], values, threshold=1.0)


def test_hole_with_island_and_outside_of_the_coverage():
    outer = shapely.box(2.3, 1.7, 19.6, 15.2)
    hole = shapely.Polygon([(5.5, 4.5), (12.5, 3.5), (14.2, 10.5), (6.5, 11.5)])
    wkts = [
        shapely.difference(outer, hole).wkt,
        hole.wkt,
        shapely.box(19.6, 1.7, 30, 15.2).wkt,  # beyond the grid's right side
        shapely.box(-8, -5, 2.3, 12.5).wkt,
    ]  # beyond its left and top sides
    compare(wkts, [3, 7, 0, 5])


def test_grid_lines_pixel_centres_and_corner_cases():
    wkts = [
        shapely.box(0, 0, 7, 5).wkt,  # edges on grid lines
        shapely.box(7, 0, 12.5, 5).wkt,  # a vertical edge through pixel centres
        shapely.box(12.5, 0, 23, 5.5).wkt,  # a horizontal edge along a centre line
        shapely.Polygon(
            [(0, 5), (7, 5), (12.5, 5), (12.5, 5.5), (23, 5.5), (23, 9.5), (11.5, 7.5), (0, 9.5)]
        ).wkt,  # a vertex on a pixel centre, a touch on a centre line
        shapely.Polygon([(0, 9.5), (11.5, 7.5), (23, 9.5), (23, 17), (0, 17)]).wkt,
    ]
    compare(wkts, [1, 2, 3, 4, 5])


def test_junctions_and_touching_vertices_on_a_centre_line():
    # three polygons meeting at (10, 8.5) on row 8's centre line, a V touching row 3's centre line from below
    # at (15, 3.5), and a diamond touching it from above at (5, 3.5)
    v = shapely.Polygon([(12, 6), (15, 3.5), (18, 6)])
    d = shapely.Polygon([(5, 3.5), (3, 1.5), (5, 0.5), (7, 1.5)])
    base = shapely.difference(shapely.box(0, 0, 23, 8.5), shapely.union(v, d))
    wkts = [
        base.wkt,
        v.wkt,
        d.wkt,
        shapely.Polygon([(0, 8.5), (10, 8.5), (0, 17)]).wkt,
        shapely.Polygon([(10, 8.5), (23, 8.5), (23, 17), (0, 17)]).wkt,
    ]
    compare(wkts, [1, 2, 3, 4, 5])


def test_refuses_what_is_not_a_clean_coverage():
    a = shapely.box(1, 1, 12, 12)
    over = [a.wkt, shapely.box(8, 3, 18, 14).wkt]  # overlapping
    bow = ["POLYGON((2 2,10 10,10 2,2 10,2 2))"]  # self-intersecting
    twice = [a.wkt, a.wkt]  # the same polygon twice (two layers merged)
    for wkts in (over, bow, twice):
        edges = edges_of(wkts, [1, 2][: len(wkts)])
        got = [
            clean.strip_majority(*edges.strip(s), y0, min(ROWS, H - y0), W, 0.75)
            for s, y0 in enumerate(range(0, H, ROWS))
        ]
        assert any(g is None for g in got), wkts


def test_shared_once_pairs_opposite_copies_only():
    u0 = np.array([0.0, 1.0, 0.0, 2.0, 5.0])
    v0 = np.array([0.0, 1.0, 0.0, 2.0, 5.0])
    u1 = np.array([1.0, 0.0, 1.0, 3.0, 6.0])
    v1 = np.array([1.0, 0.0, 1.0, 3.0, 5.0])
    cls = np.array([4, 6, 9, 2, 2])
    # edge 0 appears three times (0, 1, 2): kept as they are; 3 and 4 are edges of one polygon each
    got = clean.shared_once(u0, v0, u1, v1, cls)
    assert got[4].tolist() == [4, 6, 9, 2, 2] and got[5].tolist() == [-1] * 5
    got = clean.shared_once(u0[[0, 1, 3]], v0[[0, 1, 3]], u1[[0, 1, 3]], v1[[0, 1, 3]], cls[[0, 1, 3]])
    assert got[0].tolist() == [0.0, 2.0] and got[4].tolist() == [4, 2] and got[5].tolist() == [6, -1]
    same = clean.shared_once(u0[:2], v0[:2], u1[:2], v1[:2], np.array([3, 3]))
    assert same[0].size == 0  # two polygons of one class: no boundary
