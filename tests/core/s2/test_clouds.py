"""core/s2/clouds.py without QGIS: band choice, level, scale check, the 30 m average, buffers, the stack writer's
modes. The detector itself runs in tests/plugin/s2/test_cloudmask.py (skipped there when not installed); here it
is replaced where a mode must run it."""

import numpy as np
import pytest

from satclassify_plugin.core.contract.errors import SatClassifyError
from satclassify_plugin.core.s2 import clouds


def test_detector_bands_4_or_6_and_missing_named():
    assert clouds.detector_bands(["B02", "B03", "B04", "B08"]) == ["B02", "B03", "B04", "B08"]
    assert clouds.detector_bands(["B08", "B04", "B03", "B02", "B11", "B12"]) == [
        "B02",
        "B03",
        "B04",
        "B08",
        "B11",
        "B12",
    ]
    assert clouds.detector_bands(["B02", "B03", "B04", "B08", "B11"]) == ["B02", "B03", "B04", "B08"]  # no B12
    with pytest.raises(SatClassifyError, match=r"has no B03, B08 \(its bands: B02, B04, B11\)"):
        clouds.detector_bands(["B02", "B04", "B11"])


def test_level_from_metadata_or_scl():
    assert clouds.level_of({"SATCLASSIFY_PRODUCTS": "S2B_MSIL1C_20230601T101559_N0509_R065_T32TQM_x"}, []) == "L1C"
    assert clouds.level_of({"SATCLASSIFY_PRODUCTS": "S2A_MSIL2A_x,S2A_MSIL2A_y"}, []) == "L2A"
    assert clouds.level_of({}, ["B02", "SCL"]) == "L2A"
    assert clouds.level_of({"SATCLASSIFY_PRODUCTS": "S2A_MSIL1C_a,S2A_MSIL2A_b"}, []) is None  # mixed
    assert clouds.level_of({}, ["B02", "B03"]) is None


def test_scale_check_refuses_reflectance_and_radiance():
    ok = np.ones((10, 10), bool)
    clouds.check_scale(np.full((10, 10), 800, np.uint16), ok, 1e-4)  # reflectance 0.08
    with pytest.raises(SatClassifyError, match="look like reflectance 0..1, not digital numbers"):
        clouds.check_scale(np.full((10, 10), 0.08, np.float32), ok, 1e-4)
    with pytest.raises(SatClassifyError, match="too large for Sentinel-2 reflectance"):
        clouds.check_scale(np.full((10, 10), 30000, np.uint16), ok, 1e-4)
    clouds.check_scale(np.full((10, 10), 0.08, np.float32), ok, 1.0)  # a reflectance stack with SCALE = 1


def test_block_mean_leaves_nodata_out_and_pads_edges():
    a = np.array([[100, 200, 0, 400], [300, 400, 0, 0], [0, 0, 0, 0]], np.uint16)
    m = clouds._block_mean(a, a != 0, 2, 1e-4)
    assert m.shape == (2, 2)
    assert m[0, 0] == pytest.approx(0.025) and m[0, 1] == pytest.approx(0.04)  # (400 alone) x 1e-4
    assert np.isnan(m[1]).all()


def test_valid_from_classes_and_buffer():
    c = np.full((9, 9), clouds.CLEAR, np.uint8)
    c[4, 4] = clouds.CLOUD
    c[0, 0] = clouds.NODATA
    v = clouds.valid_from(c)
    assert v.sum() == 79 and not v[4, 4] and not v[0, 0]
    v1 = clouds.valid_from(c, 1)
    assert not v1[3:6, 3:6].any() and v1.sum() == 81 - 9 - 1
    assert clouds.buffer_pixels(100, 10) == 10 and clouds.buffer_pixels(25, 10) == 3
    assert clouds.buffer_pixels(0, 10) == 0


@pytest.mark.parametrize(
    "mode,has_scl,use_scl,active",
    [
        ("auto", True, True, False),
        ("auto", False, False, True),
        ("detector", True, False, True),
        ("both", True, True, True),
        ("none", True, True, False),
        ("none", False, False, False),
    ],
)
def test_stack_modes(monkeypatch, mode, has_scl, use_scl, active):
    monkeypatch.setattr(clouds, "available", lambda: True)
    sc = clouds.StackClouds(mode, has_scl, "L1C", ["B04"], ["B02", "B03", "B04", "B08", "B11", "B12"])
    assert (sc.use_scl, sc.active) == (use_scl, active)
    if active:
        assert sc.bands == ["B02", "B03", "B04", "B08"]  # B11/B12 only when requested
        assert "cloud or cloud shadow by the ukis-csmask" in sc.rule()
    else:
        assert "cloud" not in sc.rule()


def test_stack_without_the_package(monkeypatch):
    monkeypatch.setattr(clouds, "available", lambda: False)
    logged = []
    sc = clouds.StackClouds("auto", False, "L1C", ["B04"], ["B02", "B03", "B04", "B08"], log=logged.append)
    assert not sc.active and "no cloud detector" in sc.rule() and "ukis-csmask" in logged[0]
    with pytest.raises(SatClassifyError, match="CLOUD_MASK = detector needs the Python package ukis-csmask"):
        clouds.StackClouds("detector", True, "L2A", ["B04"], ["B02", "B03", "B04", "B08"])
    with pytest.raises(SatClassifyError, match="needs the Python package ukis-csmask"):
        clouds.detect({b: np.ones((4, 4), np.uint16) for b in clouds.REQUIRED}, "L1C", 10.0)
    with pytest.raises(SatClassifyError, match="cloud mask mode 'sometimes'"):
        clouds.StackClouds("sometimes", True, "L2A", [], [])


def test_detect_runs_windows_and_maps_classes_back(monkeypatch):
    """The detector is called per window with a margin, on the 30 m average, and its classes (0 clear, 1 cloud,
    2 shadow) come back on the 10 m grid with nodata 0. The detector is replaced by a brightness rule."""
    monkeypatch.setattr(clouds, "available", lambda: True)
    monkeypatch.setattr(clouds, "WINDOW", 40)
    calls = []

    def fake(img, order, level, threads):
        calls.append(img.shape)
        assert order == ["blue", "green", "red", "nir"] and level == "L1C"
        return np.where(img[..., 0] > 0.3, 1, np.where(img[..., 3] < 0.05, 2, 0)).astype(np.uint8)

    monkeypatch.setattr(clouds, "_run_detector", fake)
    n = 300  # 100 x 100 working pixels: 3 x 3 windows of 40
    arrays = {b: np.full((n, n), 1000, np.uint16) for b in clouds.REQUIRED}
    arrays["B02"][30:90, 30:90] = 5000  # bright: cloud
    arrays["B08"][201:261, 150:210] = 300  # dark NIR: shadow (on whole 30 m blocks)
    arrays["B04"][:, :6] = 0  # nodata edge
    c = clouds.detect(arrays, "L1C", 10.0)
    assert c.shape == (n, n) and len(calls) == 9 and max(max(s[:2]) for s in calls) <= 40 + 2 * clouds.MARGIN
    assert (c[30:90, 30:90] == clouds.CLOUD).all() and (c[201:261, 150:210] == clouds.SHADOW).all()
    assert (c[:, :6] == clouds.NODATA).all() and (c[100:190, 10:140] == clouds.CLEAR).all()
    s = clouds.shares(c)
    assert s["cloud"] == pytest.approx(3600 / (n * n - 6 * n))
