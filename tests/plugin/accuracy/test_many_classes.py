"""Issue 25 item 14: class rasters of more than 256 classes. landcoverchange's own from-to raster (a UInt16 with a
legend of 400 'from -> to' categories) and a 300-class UInt16 map are class rasters for samplingdesign (the
documented change -> sample workflow); images stay refused."""

import json

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException

from satclassify_plugin.core import raster
from tests.rasters import make_class_raster, make_raster, wkt

NAMES = [
    {"value": v, "name": f"class {v:02d} land", "color": "#%02x%02x80" % (v * 10, 255 - v * 10)} for v in range(1, 21)
]


def _sample(run_alg, tmp_path, src, name, **params):
    res = run_alg(
        "satclassify:samplingdesign",
        {
            "INPUT": src,
            "METHOD": 1,
            "TOTAL": 1000,
            "MIN_PER_CLASS": 2,
            "OUTPUT": str(tmp_path / f"{name}.gpkg"),
            "OUTPUT_STRATA": str(tmp_path / f"{name}.json"),
            **params,
        },
    )
    with open(res["OUTPUT_STRATA"], encoding="utf-8") as f:
        return res, json.load(f)


def test_change_then_sample_on_a_from_to_raster_of_400_categories(run_alg, tmp_path):
    rows, cols = np.mgrid[0:200, 0:200]
    a = (rows // 10 + 1).astype(np.uint8)  # 20 classes in bands of rows
    b = (cols // 10 + 1).astype(np.uint8)  # 20 classes in bands of columns: 400 from-to pairs of 1 ha each
    t1 = make_class_raster(tmp_path / "t1.tif", a, NAMES)
    t2 = make_class_raster(tmp_path / "t2.tif", b, NAMES)
    res = run_alg(
        "satclassify:landcoverchange",
        {
            "FIRST": t1,
            "SECOND": t2,
            "OUTPUT": str(tmp_path / "fromto.tif"),
            "OUTPUT_MATRIX": str(tmp_path / "m.csv"),
            "OUTPUT_JSON": str(tmp_path / "m.json"),
            "OUTPUT_POLYGONS": str(tmp_path / "p.gpkg"),
        },
    )
    ds = gdal.Open(res["OUTPUT"])
    assert ds.GetRasterBand(1).DataType == gdal.GDT_UInt16 and len(raster.categories(ds)) == 401  # and 0 = not compared
    ds = None
    _, s = _sample(run_alg, tmp_path, res["OUTPUT"], "fromto")
    assert len(s["strata"]) == 400 and sum(st["points"] for st in s["strata"]) >= 800


def test_a_300_class_map_is_sampled_and_an_image_still_refused(run_alg, tmp_path):
    v = (np.arange(300 * 40) // 40 + 1).astype(np.uint16).reshape(100, 120)  # 300 classes of 40 pixels, no legend
    src = make_raster(tmp_path / "c300.tif", v, origin=(500000.0, 5000000.0), pixel=10.0)
    _, s = _sample(run_alg, tmp_path, src, "c300")
    assert len(s["strata"]) == 300
    # the same map with a legend of its 300 classes
    ds = raster.create_geotiff(
        str(tmp_path / "named.tif"),
        120,
        100,
        1,
        gdal.GDT_UInt16,
        (500000.0, 10.0, 0, 5000000.0, 0, -10.0),
        wkt(32632),
        nodata=0,
    )
    band = ds.GetRasterBand(1)
    band.SetCategoryNames(["none"] + [f"crop type {i}" for i in range(1, 301)])
    band.WriteArray(v)
    ds = None
    _, s = _sample(run_alg, tmp_path, str(tmp_path / "named.tif"), "named")
    assert len(s["strata"]) == 300 and s["strata"][0]["name"] == "crop type 1"
    # reflectances: thousands of values (or about one pixel per value) are still an image
    for name, img in (
        ("refl", np.random.default_rng(0).integers(1, 6000, (60, 60)).astype(np.uint16)),
        ("tiny", np.arange(1, 401, dtype=np.uint16).reshape(20, 20)),
    ):
        path = make_raster(tmp_path / f"{name}.tif", img)
        with pytest.raises(QgsProcessingException, match="distinct values: that is an image, not a class map"):
            _sample(run_alg, tmp_path, path, name)
