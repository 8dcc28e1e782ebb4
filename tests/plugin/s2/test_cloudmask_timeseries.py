"""CLOUD_MASK in multi-date stacks (issue 29 #2): each date's VALID@<date> band follows the cloud detector as a
single-date MASK does, through processing.run in real QGIS: importsafe with MORE_INPUTS of several L1C days,
fetchsentinel2 INTERVAL against the local STAC fake (best ranks the candidates by the detector; the median leaves
out the observations the detector calls cloud or shadow). The scene is cloud_helpers' landscape with a synthetic
cloud and shadow; tests that run the detector skip cleanly when its package is missing."""

import json

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException

from satclassify_plugin.core.s2 import clouds

from .. import fake_servers as fs
from ..sentinel_helpers import LogFeedback, band_names, utm_extent
from ..timeseries_helpers import ORIGIN, add_date, series_server
from . import cloud_helpers as ch

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
needs_detector = pytest.mark.skipif(not ch.detector_installed(), reason=ch.SKIP_REASON)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """(cloudy DN, cloud truth, shadow truth, clear DN, pixels with data) at 768 x 768 px."""
    base = ch.landscape(tmp_path_factory.mktemp("landscape"))
    arrays, cloud, shadow = ch.cloudy(base)
    clear, _, _ = ch.cloudy(base, cloud=False, shadow=False)
    data = np.logical_and.reduce([a != 0 for a in clear.values()])
    return arrays, cloud, shadow, clear, data


def check_detected(valid, cloud, shadow):
    """The cloud and its shadow are masked, the clear land is not (edges of the blobs aside)."""
    assert valid[cloud].mean() < 0.02, "cloud pixels left valid"
    assert valid[shadow].mean() < 0.05, "shadow pixels left valid"
    from scipy import ndimage  # a dependency of the detector

    far = ~ndimage.binary_dilation(cloud | shadow, iterations=40)
    assert far.mean() > 0.3 and valid[far].mean() > 0.9, "clear land masked"


def far_from(cloud, shadow):
    from scipy import ndimage

    return ~ndimage.binary_dilation(cloud | shadow, iterations=40)


# ------------------------------------------------------------------------------------------------- importsafe


def l1c_zip(tmp_path, arrays, day):
    """An L1C SAFE zip of ``day`` (YYYYMMDD) whose harmonised DN are ``arrays`` (baseline 05.09: stored DN + 1000)."""
    stored = {b: np.where(a == 0, 0, a.astype(np.int32) + 1000).astype(np.uint16) for b, a in arrays.items()}
    when = f"{day[:4]}-{day[4:6]}-{day[6:]}T10:15:59.024Z"
    return fs.make_safe_zip(
        tmp_path / f"l1c_{day}.zip",
        stored,
        ORIGIN,
        level="L1C",
        baseline="05.09",
        offset=-1000,
        when=when,
        uri=f"S2B_MSIL1C_{day}T101559_N0509_R065_T32TQM_{day}T131313.SAFE",
    )


@pytest.fixture(scope="module")
def l1c_pair(tmp_path_factory, scene):
    arrays, _, _, clear, _ = scene
    d = tmp_path_factory.mktemp("safe")
    return l1c_zip(d, arrays, "20230601"), l1c_zip(d, clear, "20230620")


def import_params(pair, out, mask=None, **kw):
    p = {"INPUT": pair[0], "MORE_INPUTS": [pair[1]], "BANDS": "B04", "OUTPUT": out}
    if mask:
        p["MASK"] = mask
    p.update(kw)
    return p


@needs_detector
def test_importsafe_l1c_days_valid_follows_the_detector(run_alg, tmp_path, scene, l1c_pair):
    """Two L1C days, BANDS B04 only: the detector reads B02 B03 B04 B08 of each day; the cloud and shadow of
    2023-06-01 are VALID 0 (and DN 0) there, the clear 2023-06-20 stays valid; MASK = valid on either day."""
    arrays, cloud, shadow, clear, data = scene
    out, mask = str(tmp_path / "ts.tif"), str(tmp_path / "ts_mask.tif")
    fb = LogFeedback()
    res = run_alg("satclassify:importsafe", import_params(l1c_pair, out, mask), feedback=fb)
    assert res["DATES"] == "2023-06-01,2023-06-20"
    ds = gdal.Open(out)
    assert band_names(ds) == ["B04@2023-06-01", "VALID@2023-06-01", "B04@2023-06-20", "VALID@2023-06-20"]
    a = ds.ReadAsArray()
    v1, v2 = a[1].astype(bool), a[3].astype(bool)
    check_detected(v1, cloud, shadow)
    assert not v1[~data].any() and not v2[~data].any()  # nodata stays invalid
    assert v2[data].mean() > 0.97  # the clear day
    np.testing.assert_array_equal(a[0], np.where(v1, arrays["B04"], 0))  # harmonised back, 0 where invalid
    np.testing.assert_array_equal(a[2], np.where(v2, clear["B04"], 0))
    assert "4-band L1C model" in ds.GetMetadataItem("SATCLASSIFY_VALID")
    assert ds.GetMetadataItem("SATCLASSIFY_CLOUD_DETECTOR").startswith("ukis-csmask")
    ds = None
    m = gdal.Open(mask)
    np.testing.assert_array_equal(m.ReadAsArray(), (v1 | v2).astype(np.uint8))
    assert "ukis-csmask" in m.GetMetadataItem("SATCLASSIFY_MASK")
    assert res["VALID_FRACTION"] == pytest.approx((v1 | v2).mean())
    assert any(t.startswith("2023-06-01: detector:") and "% cloud" in t for t in fb.messages)
    assert any(t.startswith("2023-06-20: cloud and shadow detection") for t in fb.messages)
    assert "applies to single-date stacks" not in fb.text
    info = {d["date"]: d for d in json.loads(gdal.Open(out).GetMetadataItem("SATCLASSIFY_TIMESERIES"))}
    assert set(info) == {"2023-06-01", "2023-06-20"}


def test_importsafe_l1c_days_without_the_detector(run_alg, tmp_path, scene, l1c_pair, monkeypatch):
    """CLOUD_MASK none: nodata-only VALID (the cloud stays valid); without the package the default says what to
    install and masks nodata only; CLOUD_MASK detector then stops with that message, writing nothing."""
    arrays, cloud, _, _, data = scene
    out = str(tmp_path / "none.tif")
    run_alg("satclassify:importsafe", import_params(l1c_pair, out, CLOUD_MASK=3))
    a = gdal.Open(out).ReadAsArray()
    np.testing.assert_array_equal(a[1], data.astype(np.uint16))
    np.testing.assert_array_equal(a[3], data.astype(np.uint16))
    assert "no SCL in this product" in gdal.Open(out).GetMetadataItem("SATCLASSIFY_VALID")
    monkeypatch.setattr(clouds, "available", lambda: False)
    fb = LogFeedback()
    out2 = str(tmp_path / "auto.tif")
    run_alg("satclassify:importsafe", import_params(l1c_pair, out2), feedback=fb)
    np.testing.assert_array_equal(gdal.Open(out2).ReadAsArray()[1], data.astype(np.uint16))
    assert "needs the Python package ukis-csmask" in fb.text
    bad = tmp_path / "det.tif"
    with pytest.raises(QgsProcessingException) as e:
        run_alg("satclassify:importsafe", import_params(l1c_pair, str(bad), CLOUD_MASK=1))
    assert "CLOUD_MASK = detector needs the Python package ukis-csmask" in str(e.value) and not bad.exists()


# ------------------------------------------------------------------------------------------------- fetchsentinel2

N = 768
AOI = utm_extent(ORIGIN[0], ORIGIN[1] - N * 10, ORIGIN[0] + N * 10, ORIGIN[1])


def stacked(arrays):
    return np.stack([arrays[b] for b in ch.BANDS])


@pytest.fixture(scope="module")
def stac(scene):
    """L2A overpasses whose SCL is clear everywhere (only the detector sees the cloud). May: the cloudy 10th
    ranks first (1 % catalogue cloud), the clear 20th second; June: the cloudy 5th, the clear 15th, and the
    25th clear but 200 DN brighter."""
    arrays, _, _, clear, data = scene
    srv = series_server()
    ok = np.ones((N, N), np.uint8)
    brighter = {b: np.where(data, a + 200, 0).astype(np.uint16) for b, a in clear.items()}
    for item_id, when, dn, cloud in [
        ("S2A_32TQM_20230510_0_L2A", "2023-05-10T10:20:00Z", arrays, 1.0),
        ("S2B_32TQM_20230520_0_L2A", "2023-05-20T10:20:00Z", clear, 30.0),
        ("S2A_32TQM_20230605_0_L2A", "2023-06-05T10:20:00Z", arrays, 1.0),
        ("S2B_32TQM_20230615_0_L2A", "2023-06-15T10:20:00Z", clear, 20.0),
        ("S2A_32TQM_20230625_0_L2A", "2023-06-25T10:20:00Z", brighter, 25.0),
    ]:
        add_date(
            srv,
            item_id,
            when,
            stacked(dn),
            ok,
            cloud=cloud,
            platform="sentinel-2b" if item_id.startswith("S2B") else "sentinel-2a",
        )
    srv.brighter = brighter
    yield srv
    srv.close()


def fetch_params(srv, out, **kw):
    p = {
        "EXTENT": AOI,
        "START": "2023-05-01",
        "END": "2023-06-30",
        "MAX_CLOUD": 100,
        "SOURCE": 0,
        "URL": srv.url,
        "RETRIES": 1,
        "INTERVAL": 1,
        "BANDS": "B04,B08",
        "OUTPUT": out,
    }
    p.update(kw)
    return p


@needs_detector
def test_fetch_monthly_with_the_detector(run_alg, stac, tmp_path, scene):
    """INTERVAL monthly, CLOUD_MASK detector on L2A: the best overpass of each month is the one the detector finds
    clearest (SCL, clear everywhere, would take the cloudy first-ranked one), and VALID@<date> is the detector's."""
    arrays, cloud, shadow, clear, data = scene
    out, mask = str(tmp_path / "det.tif"), str(tmp_path / "det_mask.tif")
    fb = LogFeedback()
    res = run_alg("satclassify:fetchsentinel2", fetch_params(stac, out, MASK=mask, CLOUD_MASK=1), feedback=fb)
    may, june = res["DATES"].split(",")
    assert may == "2023-05-20" and june in ("2023-06-15", "2023-06-25")
    assert "2023-05-10 (S2A_32TQM_20230510_0_L2A)" in fb.text and "valid by the cloud detector" in fb.text
    ds = gdal.Open(out)
    assert band_names(ds) == [
        f"B04@{may}",
        f"B08@{may}",
        f"VALID@{may}",
        f"B04@{june}",
        f"B08@{june}",
        f"VALID@{june}",
    ]  # B02 B03 read, not written
    assert "4-band L2A model" in ds.GetMetadataItem("SATCLASSIFY_VALID") and "SCL" not in ds.GetMetadataItem(
        "SATCLASSIFY_VALID"
    )
    a = ds.ReadAsArray()
    assert a[2][data].mean() > 0.97
    np.testing.assert_array_equal(a[0], np.where(a[2] > 0, clear["B04"], 0))
    # the default (SCL): the cloudy first-ranked overpasses win, the cloud valid
    out2 = str(tmp_path / "scl.tif")
    res2 = run_alg("satclassify:fetchsentinel2", fetch_params(stac, out2))
    assert res2["DATES"] == "2023-05-10,2023-06-05"
    v = gdal.Open(out2).ReadAsArray()[2].astype(bool)
    assert v[cloud].all()
    # one candidate per month: the cloudy overpass is taken and the detector masks its cloud and shadow
    out3 = str(tmp_path / "one.tif")
    res3 = run_alg(
        "satclassify:fetchsentinel2", fetch_params(stac, out3, START="2023-06-01", CLOUD_MASK=1, CANDIDATES=1)
    )
    assert res3["DATES"] == "2023-06-05"
    a3 = gdal.Open(out3).ReadAsArray()
    check_detected(a3[2].astype(bool), cloud, shadow)
    np.testing.assert_array_equal(a3[0], np.where(a3[2] > 0, arrays["B04"], 0))


@needs_detector
def test_fetch_median_leaves_out_the_clouded_observation(run_alg, stac, tmp_path, scene):
    """COMPOSITE median over June's three overpasses: under the cloud the detector drops the cloudy 5th, so the
    median is that of the two clear ones (their mean, 100 DN above the 15th); with SCL alone the bright cloud
    pulls the median up to the brighter 25th."""
    arrays, cloud, shadow, clear, data = scene
    p = dict(START="2023-06-01", END="2023-06-30", COMPOSITE=1)
    out = str(tmp_path / "med.tif")
    run_alg("satclassify:fetchsentinel2", fetch_params(stac, out, CLOUD_MASK=1, **p))
    ds = gdal.Open(out)
    assert band_names(ds) == ["B04@2023-06-15", "B08@2023-06-15", "VALID@2023-06-15"]
    a = ds.ReadAsArray().astype(np.int32)
    two = np.rint((clear["B04"].astype(float) + stac.brighter["B04"]) / 2).astype(np.int32)
    assert (a[0][cloud] == two[cloud]).mean() > 0.98
    assert (a[0][shadow] == two[shadow]).mean() > 0.95
    far = far_from(cloud, shadow) & data
    assert (a[0][far] == clear["B04"][far]).mean() > 0.9  # the cloudy day's clear land is the middle value
    assert a[2][data].all()
    out2 = str(tmp_path / "med_scl.tif")
    run_alg("satclassify:fetchsentinel2", fetch_params(stac, out2, **p))
    b = gdal.Open(out2).ReadAsArray().astype(np.int32)
    assert (b[0][cloud] == stac.brighter["B04"][cloud]).mean() > 0.9  # the cloud counted
