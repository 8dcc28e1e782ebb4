"""Cloud and shadow masks from ukis-csmask: satclassify:cloudmask on any named stack, and the MASK of an L1C
stack from importsafe (CLOUD_MASK), through processing.run in real QGIS. The scene is the embedded sample's
landscape with a synthetic textured cloud and its shadow (cloud_helpers.py); SAFE products are built by the
tests. Tests that run the detector skip cleanly when its package is missing."""

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException

from satclassify_plugin.core import raster
from satclassify_plugin.core.s2 import clouds

from .. import fake_servers as fs
from ..sentinel_helpers import LogFeedback
from . import cloud_helpers as ch

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
needs_detector = pytest.mark.skipif(not ch.detector_installed(), reason=ch.SKIP_REASON)
ORIGIN = (600000.0, 5340000.0)  # the sample's upper-left corner (UTM 32N)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """(DN arrays with cloud and shadow, cloud truth, shadow truth, the clear landscape) at 768 x 768 px."""
    base = ch.landscape(tmp_path_factory.mktemp("landscape"))
    arrays, cloud, shadow = ch.cloudy(base)
    return arrays, cloud, shadow, base


def read(path):
    ds = gdal.Open(str(path))
    return ds, ds.GetRasterBand(1).ReadAsArray()


def run_error(run_alg, alg, params):
    fb = LogFeedback()
    with pytest.raises(QgsProcessingException) as e:
        run_alg(alg, params, feedback=fb)
    return str(e.value), fb


def check_detected(valid, cloud, shadow):
    """The cloud and its shadow are masked, the clear land is not (edges of the blobs aside)."""
    assert valid[cloud].mean() < 0.02, "cloud pixels left valid"
    assert valid[shadow].mean() < 0.05, "shadow pixels left valid"
    from scipy import ndimage  # a dependency of the detector

    far = ~ndimage.binary_dilation(cloud | shadow, iterations=40)
    assert far.mean() > 0.3 and valid[far].mean() > 0.9, "clear land masked"


# ------------------------------------------------------------------------------------------------- cloudmask


@needs_detector
def test_cloudmask_on_a_4_band_stack(run_alg, tmp_path, scene):
    arrays, cloud, shadow, _ = scene
    stack = ch.write_stack(
        tmp_path / "s.tif",
        arrays,
        origin=ORIGIN,
        metadata={"SATCLASSIFY_PRODUCTS": "S2B_MSIL1C_20230601T101559_N0509_R065_T32TQM_x"},
    )
    fb = LogFeedback()
    res = run_alg(
        "satclassify:cloudmask",
        {"INPUT": stack, "MASK": str(tmp_path / "m.tif"), "CLASSES": str(tmp_path / "c.tif")},
        feedback=fb,
    )
    ds, valid = read(tmp_path / "m.tif")
    assert ds.GetGeoTransform() == (600000.0, 10.0, 0.0, 5340000.0, 0.0, -10.0)
    assert ds.GetRasterBand(1).DataType == gdal.GDT_Byte and set(np.unique(valid)) <= {0, 1}
    assert "4-band L1C model" in ds.GetMetadataItem("SATCLASSIFY_MASK")
    check_detected(valid.astype(bool), cloud, shadow)
    cds, cls = read(tmp_path / "c.tif")
    names = raster.category_names(cds)
    assert names[:4] == ["nodata", "clear", "cloud", "cloud shadow"]
    assert cds.GetRasterBand(1).GetColorTable() is not None
    assert (cls[cloud] == clouds.CLOUD).mean() > 0.98 and (cls[shadow] == clouds.SHADOW).mean() > 0.95
    assert np.array_equal(valid == 1, cls == clouds.CLEAR)  # no buffer: the mask is exactly the clear class
    assert res["DETECTOR"].startswith("ukis-csmask") and "4-band L1C" in res["DETECTOR"]
    assert res["CLOUD_FRACTION"] == pytest.approx((cls == clouds.CLOUD).sum() / (cls > 0).sum(), abs=1e-9)
    assert 0.08 < res["CLOUD_FRACTION"] < 0.25 and res["VALID_FRACTION"] == pytest.approx(valid.mean())
    assert any("% cloud" in m for m in fb.messages)


@needs_detector
def test_cloudmask_clear_scene_stays_valid_and_nodata_is_invalid(run_alg, tmp_path, scene):
    _, _, _, base = scene
    arrays = {b: base[i].copy() for i, b in enumerate(ch.BANDS)}
    for a in arrays.values():
        a[:, :50] = 0  # a no-data swath edge
    stack = ch.write_stack(tmp_path / "s.tif", arrays, origin=ORIGIN)
    res = run_alg("satclassify:cloudmask", {"INPUT": stack, "LEVEL": 2, "MASK": str(tmp_path / "m.tif")})
    valid = read(tmp_path / "m.tif")[1]
    assert valid[:, :50].max() == 0
    assert valid[:, 50:].mean() > 0.97 and res["CLOUD_FRACTION"] < 0.01
    assert "L2A" in res["DETECTOR"]


@needs_detector
def test_cloudmask_buffer_grows_the_invalid_area(run_alg, tmp_path, scene):
    arrays, cloud, _, _ = scene
    stack = ch.write_stack(tmp_path / "s.tif", arrays, origin=ORIGIN)
    run_alg("satclassify:cloudmask", {"INPUT": stack, "LEVEL": 1, "MASK": str(tmp_path / "a.tif")})
    run_alg("satclassify:cloudmask", {"INPUT": stack, "LEVEL": 1, "BUFFER": 100, "MASK": str(tmp_path / "b.tif")})
    a, b = read(tmp_path / "a.tif")[1], read(tmp_path / "b.tif")[1]
    assert (b <= a).all() and (a.sum() - b.sum()) > 0.02 * a.size
    assert "buffered 100 m" in read(tmp_path / "b.tif")[0].GetMetadataItem("SATCLASSIFY_MASK")


@needs_detector
def test_cloudmask_faults_give_clear_errors(run_alg, tmp_path, scene):
    arrays, _, _, _ = scene
    three = ch.write_stack(tmp_path / "three.tif", arrays, bands=("B02", "B03", "B04"), origin=ORIGIN)
    msg, _ = run_error(run_alg, "satclassify:cloudmask", {"INPUT": three, "LEVEL": 1, "MASK": str(tmp_path / "m.tif")})
    assert "needs the bands B02, B03, B04, B08" in msg and "has no B08" in msg
    unnamed = ch.write_stack(tmp_path / "unnamed.tif", arrays, origin=ORIGIN, descriptions=["", "", "", ""])
    msg, _ = run_error(
        run_alg, "satclassify:cloudmask", {"INPUT": unnamed, "LEVEL": 1, "MASK": str(tmp_path / "m.tif")}
    )
    assert "name the bands in the GDAL band descriptions" in msg
    refl = ch.write_stack(tmp_path / "refl.tif", arrays, origin=ORIGIN, dtype="float32", scale=1e-4)
    msg, _ = run_error(run_alg, "satclassify:cloudmask", {"INPUT": refl, "LEVEL": 1, "MASK": str(tmp_path / "m.tif")})
    assert "look like reflectance 0..1, not digital numbers" in msg and "SCALE" in msg
    # the same reflectance stack with SCALE = 1 is read right
    res = run_alg("satclassify:cloudmask", {"INPUT": refl, "LEVEL": 1, "SCALE": 1.0, "MASK": str(tmp_path / "r.tif")})
    assert 0.08 < res["CLOUD_FRACTION"] < 0.25
    big = ch.write_stack(tmp_path / "big.tif", {b: np.full_like(a, 60000) for b, a in arrays.items()}, origin=ORIGIN)
    msg, _ = run_error(run_alg, "satclassify:cloudmask", {"INPUT": big, "LEVEL": 1, "MASK": str(tmp_path / "m.tif")})
    assert "too large for Sentinel-2 reflectance" in msg
    plain = ch.write_stack(tmp_path / "plain.tif", arrays, origin=ORIGIN)
    msg, _ = run_error(run_alg, "satclassify:cloudmask", {"INPUT": plain, "MASK": str(tmp_path / "m.tif")})
    assert "cannot tell whether the stack is Level-1C" in msg and "choose LEVEL" in msg
    multi = {f"{b}@2023-06-01": a for b, a in arrays.items()}
    multi["VALID@2023-06-01"] = np.ones_like(arrays["B02"])
    names = tuple(multi)
    md = ch.write_stack(tmp_path / "multi.tif", multi, bands=names, origin=ORIGIN)
    msg, _ = run_error(run_alg, "satclassify:cloudmask", {"INPUT": md, "LEVEL": 1, "MASK": str(tmp_path / "m.tif")})
    assert "multi-date stack" in msg
    msg, _ = run_error(run_alg, "satclassify:cloudmask", {"INPUT": plain, "LEVEL": 1, "MASK": None})
    assert "no output" in msg
    assert not (tmp_path / "m.tif").exists()


def test_cloudmask_without_the_package_says_what_to_install(monkeypatch):
    from satclassify_plugin.algorithms import base
    from satclassify_plugin.algorithms.cloudmask import CloudMaskAlgorithm

    real = base.importlib.util.find_spec
    monkeypatch.setattr(base.importlib.util, "find_spec", lambda m, *a: None if m == "ukis_csmask" else real(m, *a))
    ok, msg = CloudMaskAlgorithm().canExecute()
    assert not ok and "ukis-csmask" in msg and "Install Python dependencies" in msg


# ------------------------------------------------------------------------------------------------- importsafe


def l1c_zip(tmp_path, arrays, name="l1c.zip", baseline="04.00"):
    """An L1C SAFE zip whose harmonised DN are ``arrays`` (baseline >= 04.00: stored DN + 1000)."""
    offset = -1000 if baseline >= "04.00" else 0
    stored = {b: np.where(a == 0, 0, a.astype(np.int32) - offset).astype(np.uint16) for b, a in arrays.items()}
    return fs.make_safe_zip(tmp_path / name, stored, ORIGIN, level="L1C", baseline=baseline, offset=offset)


@needs_detector
@pytest.mark.parametrize("bands", ["B02,B03,B04,B08", "B04"])
def test_importsafe_l1c_mask_comes_from_the_detector(run_alg, tmp_path, scene, bands):
    arrays, cloud, shadow, _ = scene
    z = l1c_zip(tmp_path, arrays)
    fb = LogFeedback()
    res = run_alg(
        "satclassify:importsafe",
        {"INPUT": z, "BANDS": bands, "OUTPUT": str(tmp_path / "s.tif"), "MASK": str(tmp_path / "m.tif")},
        feedback=fb,
    )
    sds = gdal.Open(str(tmp_path / "s.tif"))
    assert [sds.GetRasterBand(i + 1).GetDescription() for i in range(sds.RasterCount)] == bands.split(",")
    assert np.array_equal(sds.GetRasterBand(1).ReadAsArray(), arrays[bands.split(",")[0]])  # harmonised back
    ds, valid = read(tmp_path / "m.tif")
    assert "cloud or cloud shadow by the ukis-csmask" in ds.GetMetadataItem("SATCLASSIFY_MASK")
    check_detected(valid.astype(bool), cloud, shadow)
    assert res["VALID_FRACTION"] == pytest.approx(valid.mean()) and res["VALID_FRACTION"] < 0.85
    assert any("4-band L1C model" in m for m in fb.messages)


def test_importsafe_l1c_without_detector_masks_nodata_only(run_alg, tmp_path, scene, monkeypatch):
    arrays, _, _, _ = scene
    part = {b: a[:300, :300] for b, a in arrays.items()}  # the cloud, and the sample's no-data edge
    data = np.logical_and.reduce([a != 0 for a in part.values()])
    assert 0.5 < data.mean() < 1.0
    z = l1c_zip(tmp_path, part)
    res = run_alg(
        "satclassify:importsafe",
        {"INPUT": z, "CLOUD_MASK": 3, "OUTPUT": str(tmp_path / "s.tif"), "MASK": str(tmp_path / "m.tif")},
    )
    assert np.array_equal(read(tmp_path / "m.tif")[1], data.astype(np.uint8))  # nodata only: the cloud is valid
    assert res["VALID_FRACTION"] == pytest.approx(data.mean())
    monkeypatch.setattr(clouds, "available", lambda: False)
    fb = LogFeedback()
    res = run_alg(
        "satclassify:importsafe",
        {"INPUT": z, "OUTPUT": str(tmp_path / "t.tif"), "MASK": str(tmp_path / "n.tif")},
        feedback=fb,
    )
    assert np.array_equal(read(tmp_path / "n.tif")[1], data.astype(np.uint8))
    assert "no cloud detector" in read(tmp_path / "n.tif")[0].GetMetadataItem("SATCLASSIFY_MASK")
    assert any("needs the Python package ukis-csmask" in m for m in fb.messages)
    msg, _ = run_error(
        run_alg,
        "satclassify:importsafe",
        {"INPUT": z, "CLOUD_MASK": 1, "OUTPUT": str(tmp_path / "u.tif"), "MASK": str(tmp_path / "v.tif")},
    )
    assert "needs the Python package ukis-csmask" in msg and not (tmp_path / "u.tif").exists()


@needs_detector
def test_importsafe_l2a_scl_and_detector(run_alg, tmp_path, scene):
    """L2A: SCL alone (default), the detector alone, or both (invalid by either)."""
    arrays, cloud, shadow, _ = scene
    n = arrays["B02"].shape[0]
    scl = np.full((n // 2, n // 2), 4, np.uint8)
    scl[-40:, :] = 8  # SCL calls a southern strip cloud, the detector does not
    stored = {b: np.where(a == 0, 0, a.astype(np.int32) + 1000).astype(np.uint16) for b, a in arrays.items()}
    stored["SCL"] = scl
    z = fs.make_safe_zip(tmp_path / "l2a.zip", stored, ORIGIN, level="L2A", baseline="05.09")
    masks = {}
    for mode in (0, 1, 2):
        run_alg(
            "satclassify:importsafe",
            {
                "INPUT": z,
                "CLOUD_MASK": mode,
                "OUTPUT": str(tmp_path / f"s{mode}.tif"),
                "MASK": str(tmp_path / f"m{mode}.tif"),
            },
        )
        masks[mode] = read(tmp_path / f"m{mode}.tif")[1].astype(bool)
    strip = np.zeros((n, n), bool)
    strip[-80:, :] = True
    assert not masks[0][strip].any() and masks[0][cloud].all()  # SCL only: the cloud is missed
    check_detected(masks[1], cloud, shadow)
    assert masks[1][strip & ~np.roll(shadow, 0)].mean() > 0.9  # the detector alone: the SCL strip is valid
    assert not masks[2][strip].any() and masks[2][cloud].mean() < 0.02  # both


# ------------------------------------------------------------------------------------------------- fetchsentinel2


@pytest.fixture(scope="module")
def stac():
    from ..sentinel_helpers import two_tile_stac

    srv = two_tile_stac(12, 13)
    yield srv
    srv.close()


@needs_detector
def test_fetch_l2a_cloud_mask_options(run_alg, stac, tmp_path):
    """fetchsentinel2 CLOUD_MASK on an L2A item from the local STAC fake: the default keeps SCL alone; the detector
    reads B02 B03 B04 B08 for itself (BANDS is only B04) and replaces or joins SCL."""
    from ..sentinel_helpers import ID_A, utm_extent

    masks, rules = {}, {}
    for mode in (0, 1, 2):
        fb = LogFeedback()
        run_alg(
            "satclassify:fetchsentinel2",
            {
                "START": "2023-05-01",
                "END": "2023-06-30",
                "MAX_CLOUD": 100,
                "SOURCE": 0,
                "URL": stac.url,
                "RETRIES": 1,
                "EXTENT": utm_extent(602300, 4999000, 602800, 4999500),
                "ITEM": ID_A,
                "BANDS": "B04",
                "CLOUD_MASK": mode,
                "OUTPUT": str(tmp_path / f"s{mode}.tif"),
                "MASK": str(tmp_path / f"m{mode}.tif"),
            },
            feedback=fb,
        )
        ds, masks[mode] = read(tmp_path / f"m{mode}.tif")
        rules[mode] = ds.GetMetadataItem("SATCLASSIFY_MASK")
        assert gdal.Open(str(tmp_path / f"s{mode}.tif")).RasterCount == 1  # the detector's bands are not written
    assert "SCL" in rules[0] and "ukis-csmask" not in rules[0]
    assert "SCL" not in rules[1] and "4-band L2A model" in rules[1]
    assert "SCL" in rules[2] and "ukis-csmask" in rules[2]
    assert masks[0][:, :26].max() == 0 and masks[0][:, 26:].min() == 1  # SCL's cloudy west strip
    assert (masks[2] <= masks[0]).all() and (masks[2] <= masks[1]).all()
    assert np.array_equal(masks[2], masks[0] & masks[1])
