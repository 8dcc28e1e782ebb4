"""core/crs.py: pixel sizes and areas on the ground whatever the CRS's map units (issue 25, items 4 and 7)."""

import math

import pytest
from osgeo import gdal, osr

from satclassify_plugin.core import crs
from satclassify_plugin.core.contract.errors import SatClassifyError


def wkt(epsg):
    s = osr.SpatialReference()
    s.ImportFromEPSG(epsg)
    return s.ExportToWkt()


def merc_y(lat, r=6378137.0):
    return r * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


def mem(gt, epsg, w=100, h=100):
    ds = gdal.GetDriverByName("MEM").Create("", w, h, 1, gdal.GDT_Byte)
    ds.SetGeoTransform(gt)
    if epsg:
        ds.SetProjection(wkt(epsg))
    return ds


def test_local_metric_is_the_ellipsoid():
    m0, p0 = crs.local_metric(0.0)
    assert p0 == pytest.approx(6378137.0)  # equator: the semi-major axis
    assert m0 == pytest.approx(6335439.327, rel=1e-9)  # a (1 - e^2)
    _m, p60 = crs.local_metric(60.0)
    assert p60 == pytest.approx(0.5 * 6394209.17 * 1.0, rel=2e-3)  # ~ N cos 60


@pytest.mark.parametrize("lat", [0.0, 45.0, 70.0])
def test_web_mercator_scale_is_one_over_cos_latitude(lat):
    g = crs.ground_of((0.0, 10.0, 0.0, merc_y(lat), 0.0, -10.0), wkt(3857), 10, 10)
    # spherical formula 1/cos(lat); the ground is the WGS 84 ellipsoid: within 0.4 %
    assert g.width_m == pytest.approx(10.0 * math.cos(math.radians(lat)), rel=4e-3)
    assert g.area_m2 == pytest.approx(100.0 * math.cos(math.radians(lat)) ** 2, rel=8e-3)
    assert g.metre_true is (lat == 0.0)


def test_utm_and_laea_keep_their_nominal_metres():
    utm = mem((500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0), 32632, 1000, 1000)
    assert crs.pixel_area_m2(utm) == 100.0
    assert crs.pixel_size_m(crs.ground_of_raster(utm)) == 10.0
    laea = mem((4321000.0, 10.0, 0.0, 3210000.0, 0.0, -10.0), 3035, 1000, 1000)
    g = crs.ground_of_raster(laea)
    assert g.area_scale[0] == pytest.approx(1.0, abs=1e-6) and g.area_scale[1] == pytest.approx(1.0, abs=1e-6)
    assert crs.pixel_area_m2(laea) == 100.0
    assert crs.area_note(utm) is None


def test_web_mercator_area_is_the_ground_area_at_70n():
    ds = mem((0.0, 10.0, 0.0, merc_y(70.0), 0.0, -10.0), 3857, 50, 50)
    area = crs.pixel_area_m2(ds)
    assert 100.0 / area == pytest.approx(8.5, rel=0.01)  # the "8.5x too large"
    assert "not ground metres" in crs.area_note(ds)


def test_areas_refused_where_the_scale_varies_over_the_raster():
    # 1000 km of Web Mercator north of 50 N: the pixel area varies by far more than 2 %
    ds = mem((0.0, 1000.0, 0.0, merc_y(60.0), 0.0, -1000.0), 3857, 1000, 1000)
    with pytest.raises(SatClassifyError, match="not ground metres.*EPSG:3035"):
        crs.pixel_area_m2(ds)


def test_geographic_pixels_measured_on_the_ellipsoid():
    g = crs.ground_of((10.0, 1e-4, 0.0, 45.0, 0.0, -1e-4), wkt(4326), 10, 10)
    assert g.geographic and not g.metre_true
    assert g.height_m == pytest.approx(11.1, rel=0.01) and g.width_m == pytest.approx(7.88, rel=0.01)


def test_no_crs_is_map_units():
    ds = mem((0.0, 10.0, 0.0, 0.0, 0.0, -10.0), None)
    assert crs.ground_of_raster(ds) is None
    assert crs.pixel_area_m2(ds) == 100.0


def test_north_up_refuses_rotation():
    crs.north_up((0, 10, 0, 0, 0, -10))
    with pytest.raises(SatClassifyError, match="rotated.*north-up"):
        crs.north_up((0, 10, 0.5, 0, 0.2, -10), "input raster")
