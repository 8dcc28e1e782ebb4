import os

import numpy as np
import pytest
from osgeo import gdal

from satclassify_plugin.core import raster
from satclassify_plugin.core.contract import clc
from satclassify_plugin.core.contract.errors import SatClassifyError
from tests.rasters import make_raster


def test_atomic_output_renames_on_success_and_cleans_on_failure(tmp_path):
    final = tmp_path / "out.tif"
    with raster.AtomicOutput(str(final)) as tmp:
        ds = raster.create_geotiff(tmp, 10, 10, 1, gdal.GDT_Byte, (0, 1, 0, 10, 0, -1), "")
        ds.GetRasterBand(1).Fill(7)
        ds = None
        assert not final.exists()
    assert gdal.Open(str(final)).ReadAsArray().max() == 7
    with pytest.raises(RuntimeError):
        with raster.AtomicOutput(str(final)) as tmp:
            raster.create_geotiff(tmp, 10, 10, 1, gdal.GDT_Byte, (0, 1, 0, 10, 0, -1), "").FlushCache()
            raise RuntimeError("cancelled")
    assert sorted(os.listdir(tmp_path)) == ["out.tif"]  # old file intact, no .part left
    assert gdal.Open(str(final)).ReadAsArray().max() == 7


def test_class_metadata_gives_colours_and_names(tmp_path):
    path = str(tmp_path / "c.tif")
    ds = raster.create_geotiff(path, 4, 4, 1, gdal.GDT_Byte, (0, 1, 0, 4, 0, -1), "", nodata=0)
    raster.write_class_metadata(ds.GetRasterBand(1), clc.classes(1))
    ds = None
    ds = gdal.Open(path)  # keep the dataset referenced: GDAL 3.6 bands do not keep it alive
    b = ds.GetRasterBand(1)
    names = raster.category_names(ds)
    assert names[3].startswith("Forest") and names[0] == "no label" and len(names) == 6
    assert b.GetRasterColorTable().GetColorEntry(5)[:3] == clc.classes(1)[4].rgb


def test_open_raster_errors(tmp_path):
    with pytest.raises(SatClassifyError, match="cannot open raster"):
        raster.open_raster(str(tmp_path / "missing.tif"))
    with pytest.raises(SatClassifyError, match="no label raster given"):
        raster.open_raster("", "label raster")


def test_warp_to_grid_and_same_grid(tmp_path):
    a = make_raster(tmp_path / "a.tif", np.arange(100, dtype=np.uint8).reshape(10, 10), pixel=10.0)
    b = make_raster(tmp_path / "b.tif", np.zeros((20, 20), np.uint8), pixel=5.0)
    da, db = gdal.Open(a), gdal.Open(b)
    assert raster.same_grid(da, da) and not raster.same_grid(da, db)
    w = raster.warp_to_grid(da, db)
    arr = w.ReadAsArray()
    assert arr.shape == (20, 20)
    assert (arr[::2, ::2] == np.arange(100).reshape(10, 10)).all()


def test_iter_windows_cover_exactly():
    wins = list(raster.iter_windows(1000, 700, 256))
    cover = np.zeros((700, 1000), int)
    for x, y, w, h in wins:
        cover[y : y + h, x : x + w] += 1
    assert (cover == 1).all()
