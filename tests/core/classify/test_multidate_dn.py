"""Issue 25 #8 for multi-date models: GDAL band scale/offset metadata is applied (as for single-date models), and a
negative DN in a signed stack is no observation: that date is invalid at that pixel (reflectance 0, VALID 0), a
pixel negative on every date is nodata."""

import numpy as np
from osgeo import gdal

from satclassify_plugin.core.classify.pipeline import classify
from satclassify_plugin.core.contract.feedback import Monitor
from satclassify_plugin.core.contract.timeseries import card_entry, descriptions
from tests import onnx_models as om
from tests.rasters import make_raster

DATES = ["2023-05-01", "2023-07-01"]
BANDS = ["B04", "B08"]
# per date: B04, B08, VALID; class 1 when date 1's B04 > B08 (scaled), else class 2; date 2 and VALID break ties
W = [[1.0, -1.0, 0.0, 0.2, -0.2, 0.0], [-1.0, 1.0, 0.0, -0.2, 0.2, 0.0]]


def model(tmp_path):
    return om.linear_model(
        tmp_path / "t.onnx",
        W,
        bands=BANDS,
        card_kw={"timeseries": card_entry(BANDS, DATES, False), "architecture": "utae"},
    )


def stack(path, arr, scales=None, offsets=None):
    p = make_raster(path, arr, band_names=descriptions(BANDS, DATES))
    if scales or offsets:
        ds = gdal.Open(p, gdal.GA_Update)
        for i, s in (scales or {}).items():
            ds.GetRasterBand(i).SetScale(s)
        for i, o in (offsets or {}).items():
            ds.GetRasterBand(i).SetOffset(o)
        ds = None
    return p


def run(tmp_path, name, src):
    logs = []
    out = str(tmp_path / f"{name}.tif")
    classify(src, model(tmp_path), [out], monitor=Monitor(info=logs.append))
    ds = gdal.Open(out)
    a = ds.ReadAsArray()
    ds = None
    return a, logs


def base(h=20, w=24):
    rng = np.random.default_rng(3)
    a = np.zeros((6, h, w), np.int16)
    a[[0, 1, 3, 4]] = rng.integers(500, 4000, (4, h, w))
    a[[2, 5]] = 1
    return a


def test_gdal_scale_and_offset_are_applied_for_a_multidate_model(tmp_path):
    raw = base()
    scaled = raw.astype(np.int32).copy()
    scaled[0] = raw[0] * 2  # band 1 (B04@date 1): stored x 2
    scaled[1] = raw[1] - 400  # band 2 (B08@date 1): stored - 400
    truth, _ = run(tmp_path, "truth", stack(tmp_path / "truth.tif", scaled.astype(np.int32)))
    got, logs = run(tmp_path, "meta", stack(tmp_path / "meta.tif", raw, scales={1: 2.0}, offsets={2: -400.0}))
    plain, _ = run(tmp_path, "plain", stack(tmp_path / "plain.tif", raw))
    assert not np.array_equal(plain, truth)  # the case matters
    np.testing.assert_array_equal(got, truth)
    assert any("GDAL scale/offset" in m for m in logs)


def test_a_negative_dn_makes_that_date_invalid_not_a_class(tmp_path):
    raw = base()
    filled = raw.copy()
    filled[0:2, 2:6, 3:9] = -9999  # date 1 fill at a block (VALID still says 1)
    filled[:, 10:12, 10:14] = -9999  # every band of every date
    filled[2, 10:12, 10:14] = 1
    filled[5, 10:12, 10:14] = 1
    clean = raw.copy()
    clean[0:3, 2:6, 3:9] = 0  # what the stack convention writes for an invalid date
    clean[:, 10:12, 10:14] = 0
    truth, _ = run(tmp_path, "truth", stack(tmp_path / "truth.tif", clean))
    got, logs = run(tmp_path, "neg", stack(tmp_path / "neg.tif", filled))
    np.testing.assert_array_equal(got, truth)
    assert (got[10:12, 10:14] == 0).all()  # no observation on any date: nodata
    assert (got[2:6, 3:9] > 0).all()  # date 2 still classifies those pixels
    assert any("negative value" in m for m in logs)
