"""The stack's target grid (core/s2/stack.target_grid): a TARGET_CRS whose map units are not ground metres would
write pixels of another ground size (EPSG:3857 at 45 N: 7 m for "10 m"); it is refused with the fix (issue 25
item 7)."""

import numpy as np
import pytest
from osgeo import gdal, osr

from satclassify_plugin.core.contract.errors import SatClassifyError
from satclassify_plugin.core.s2.products import Scene
from satclassify_plugin.core.s2.stack import target_grid


def utm_band(path):
    """A 10 m band of UTM 32N around 9 E / 45 N."""
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 100, 100, 1, gdal.GDT_UInt16)
    ds.SetGeoTransform((500000.0, 10.0, 0.0, 4985000.0, 0.0, -10.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32632)
    ds.SetProjection(srs.ExportToWkt())
    ds.GetRasterBand(1).WriteArray(np.ones((100, 100), np.uint16))
    ds = None
    return str(path)


def scene(tmp_path):
    return [Scene("S2A_TEST", "2023-05-01T10:00:00Z", epsg=32632, assets={"B02": utm_band(tmp_path / "b02.tif")})]


def test_utm_and_laea_targets_are_fine(tmp_path):
    dst, bounds, w, h = target_grid(scene(tmp_path), ["B02"], None, None, 10.0)
    assert (w, h) == (100, 100)
    dst, bounds, w, h = target_grid(scene(tmp_path), ["B02"], None, 3035, 10.0)
    assert w > 0 and h > 0


@pytest.mark.parametrize("epsg,match", [(3857, r"Pseudo-Mercator.*7\.\d* m on the ground"), (4326, "WGS 84")])
def test_web_mercator_or_degrees_target_is_refused(tmp_path, epsg, match):
    with pytest.raises(SatClassifyError, match=match + ".*not have 10 m pixels.*UTM zone"):
        target_grid(scene(tmp_path), ["B02"], None, epsg, 10.0)
