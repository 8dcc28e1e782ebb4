"""fetchsentinel2 INTERVAL: multi-date stacks from the local STAC fake through processing.run."""

import json

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException

from satclassify_plugin.core.contract.timeseries import parse_stack

from ..sentinel_helpers import LogFeedback, band_names, utm_extent
from ..timeseries_helpers import ORIGIN, add_date, block_valid, series_server

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
N = 32  # tile edge (10 m pixels)
AOI = utm_extent(ORIGIN[0], ORIGIN[1] - N * 10, ORIGIN[0] + N * 10, ORIGIN[1])


def dn(rng, level):
    return (level + rng.integers(0, 100, (4, N, N))).astype(np.uint16)


@pytest.fixture(scope="module")
def series():
    rng = np.random.default_rng(5)
    srv = series_server()
    clear = np.ones((N, N), np.uint8)
    half = clear.copy()
    half[:, : N // 2] = 0
    data = {}
    # March: the catalogue says 2 % cloud for the 5th, but over the AOI its SCL is half cloud; the 20th is clear
    data["m1"] = (dn(rng, 1000), half)
    data["m2"] = (dn(rng, 2000), clear)
    add_date(srv, "S2A_32TQM_20230305_0_L2A", "2023-03-05T10:20:00Z", data["m1"][0], half, cloud=2.0)
    add_date(
        srv,
        "S2B_32TQM_20230320_0_L2A",
        "2023-03-20T10:20:00Z",
        data["m2"][0],
        clear,
        cloud=40.0,
        platform="sentinel-2b",
    )
    # April: three overpasses for the median, one partly cloudy; May: nothing
    v3 = block_valid(rng, N, N, 0.3)
    data["a1"] = (dn(rng, 3000), clear)
    data["a2"] = (dn(rng, 3200), v3)
    data["a3"] = (dn(rng, 3400), clear)
    add_date(srv, "S2A_32TQM_20230404_0_L2A", "2023-04-04T10:20:00Z", data["a1"][0], clear, cloud=5.0)
    add_date(
        srv, "S2B_32TQM_20230414_0_L2A", "2023-04-14T10:20:00Z", data["a2"][0], v3, cloud=6.0, platform="sentinel-2b"
    )
    add_date(srv, "S2A_32TQM_20230424_0_L2A", "2023-04-24T10:20:00Z", data["a3"][0], clear, cloud=7.0)
    # June: one date with a cloud strip
    vj = clear.copy()
    vj[:4] = 0
    data["j1"] = (dn(rng, 4000), vj)
    add_date(srv, "S2A_32TQM_20230610_0_L2A", "2023-06-10T10:20:00Z", data["j1"][0], vj, cloud=9.0)
    srv.data = data
    yield srv
    srv.close()


def params(srv, out, **kw):
    p = {
        "EXTENT": AOI,
        "START": "2023-03-01",
        "END": "2023-06-30",
        "MAX_CLOUD": 100,
        "SOURCE": 0,
        "URL": srv.url,
        "RETRIES": 1,
        "INTERVAL": 1,
        "BANDS": "B02,B03,B04,B08",
        "OUTPUT": out,
    }
    p.update(kw)
    return p


def test_monthly_best_by_scl_in_aoi(run_alg, series, tmp_path):
    out, mask = str(tmp_path / "ts.tif"), str(tmp_path / "ts_mask.tif")
    fb = LogFeedback()
    res = run_alg("satclassify:fetchsentinel2", params(series, out, MASK=mask), feedback=fb)
    assert res["DATES"] == "2023-03-20,2023-04-04,2023-06-10" and res["DATE"] == "2023-03-20"
    ds = gdal.Open(out)
    lay = parse_stack(band_names(ds))
    assert lay.dates == ["2023-03-20", "2023-04-04", "2023-06-10"] and lay.bands == ["B02", "B03", "B04", "B08"]
    assert ds.RasterCount == 15 and (ds.RasterXSize, ds.RasterYSize) == (N, N)
    assert ds.GetGeoTransform() == (ORIGIN[0], 10.0, 0.0, ORIGIN[1], 0.0, -10.0)
    arr = ds.ReadAsArray().reshape(3, 5, N, N)
    # March: the clear overpass of the 20th wins over the 5th (less catalogue cloud, but half cloud over the AOI)
    np.testing.assert_array_equal(arr[0, :4], series.data["m2"][0])
    assert (arr[0, 4] == 1).all()
    # April (best): the first of three equally clear ones by rank (lowest catalogue cloud)
    np.testing.assert_array_equal(arr[1, :4], series.data["a1"][0])
    # June: the cloud strip is invalid and 0 in every band
    assert (arr[2, 4, :4] == 0).all() and (arr[2, 4, 4:] == 1).all() and (arr[2, :4, :4] == 0).all()
    np.testing.assert_array_equal(arr[2, :4, 4:], series.data["j1"][0][:, 4:])
    md = ds.GetMetadata()
    assert md["SATCLASSIFY_DATES"] == "2023-03-20,2023-04-04,2023-06-10"
    info = json.loads(md["SATCLASSIFY_TIMESERIES"])
    assert info[0]["products"] == [["S2B_32TQM_20230320_0_L2A"]] and info[0]["interval"] == ["2023-03-01", "2023-03-31"]
    assert "no product between 2023-05-01 and 2023-05-31" in fb.text
    assert "2023-03-05 (S2A_32TQM_20230305_0_L2A): 50.0 % of the AOI valid by SCL" in fb.text
    m = gdal.Open(mask).ReadAsArray()
    assert (m == 1).all()  # every pixel is valid on at least one date
    ds = None
    qml = (tmp_path / "ts.qml").read_text()  # natural colour of the first date: B04@, B03@, B02@2023-03-20
    assert 'redBand="3" greenBand="2" blueBand="1"' in qml


def test_median_composite_per_interval(run_alg, series, tmp_path):
    out = str(tmp_path / "med.tif")
    run_alg("satclassify:fetchsentinel2", params(series, out, START="2023-04-01", END="2023-04-30", COMPOSITE=1))
    ds = gdal.Open(out)
    assert band_names(ds)[-1] == "VALID@2023-04-15"  # the middle of the interval
    arr = ds.ReadAsArray().reshape(5, N, N)
    a1, (a2, v2), a3 = series.data["a1"][0], series.data["a2"], series.data["a3"][0]
    cube = np.stack([a1, a2, a3]).astype(float)
    cube[1][:, v2 == 0] = np.nan
    want = np.rint(np.nanmedian(cube, axis=0)).astype(np.uint16)
    np.testing.assert_array_equal(arr[:4], want)
    assert (arr[4] == 1).all()
    ds = None


def test_days_interval_and_single_date_unchanged(run_alg, series, tmp_path):
    out = str(tmp_path / "d.tif")
    res = run_alg(
        "satclassify:fetchsentinel2",
        params(series, out, START="2023-04-01", END="2023-04-20", INTERVAL=2, INTERVAL_DAYS=10),
    )
    assert res["DATES"] == "2023-04-04,2023-04-14"
    one = str(tmp_path / "one.tif")
    res = run_alg("satclassify:fetchsentinel2", params(series, one, INTERVAL=0))
    ds = gdal.Open(one)
    assert band_names(ds) == ["B02", "B03", "B04", "B08"] and parse_stack(band_names(ds)) is None
    assert res["DATES"] == res["DATE"]
    ds = None


@pytest.mark.parametrize(
    "extra, words",
    [
        ({"ITEM": "S2A_32TQM_20230404_0_L2A"}, "leave ITEM empty, or set INTERVAL to none"),
        ({"BANDS": "B04,SCL"}, "SCL cannot be a band of a multi-date stack"),
        ({"START": "2023-05-01", "END": "2023-05-31"}, "no Sentinel-2 L2A product found"),
    ],
)
def test_timeseries_faults(run_alg, series, tmp_path, extra, words):
    out = tmp_path / "bad.tif"
    with pytest.raises(QgsProcessingException) as e:
        run_alg("satclassify:fetchsentinel2", params(series, str(out), **extra))
    assert words in str(e.value)
    assert not out.exists()


# ------------------------------------------------------------------------------------------------- importsafe


def test_importsafe_several_days_make_a_multidate_stack(run_alg, tmp_path):
    import os

    from .. import fake_servers as fs
    from ..timeseries_helpers import scl_of

    rng = np.random.default_rng(8)
    zips, want = [], []
    for k, when in enumerate(["2023-07-02T10:15:59.024Z", "2023-05-12T10:15:59.024Z"]):
        arr = {
            b: (1000 * (k + 1) + rng.integers(1, 100, (N, N))).astype(np.uint16) for b in ("B02", "B03", "B04", "B08")
        }
        valid = np.ones((N, N), np.uint8)
        valid[: 2 * (k + 1)] = 0
        arr["SCL"] = scl_of(valid)
        zips.append(
            fs.make_safe_zip(
                tmp_path / f"p{k}.zip",
                arr,
                ORIGIN,
                baseline="03.01",
                when=when,
                uri=f"S2B_MSIL2A_2023{k}_N0301_R065_T32TQM_X.SAFE",
            )
        )
        want.append((arr, valid))
    out = str(tmp_path / "imp.tif")
    res = run_alg(
        "satclassify:importsafe", {"INPUT": zips[0], "MORE_INPUTS": [zips[1]], "BANDS": "B04,B08", "OUTPUT": out}
    )
    assert res["DATES"] == "2023-05-12,2023-07-02"
    ds = gdal.Open(out)
    assert band_names(ds) == [
        "B04@2023-05-12",
        "B08@2023-05-12",
        "VALID@2023-05-12",
        "B04@2023-07-02",
        "B08@2023-07-02",
        "VALID@2023-07-02",
    ]
    a = ds.ReadAsArray()
    (a1, v1), (a0, v0) = want[1], want[0]  # the May product is the second zip
    np.testing.assert_array_equal(a[2], v1)
    np.testing.assert_array_equal(a[1], np.where(v1 > 0, a1["B08"], 0))
    np.testing.assert_array_equal(a[3], np.where(v0 > 0, a0["B04"], 0))
    ds = None
    assert os.path.getsize(zips[0]) > 0


# ------------------------------------------------------------------------------------------------- buildpatches


def test_buildpatches_refuses_a_malformed_multidate_stack(run_alg, tmp_path):
    from tests.rasters import make_class_raster, make_raster

    img = make_raster(
        tmp_path / "bad.tif",
        np.full((3, 32, 32), 500, np.uint16),
        band_names=["B04@2023-05-01", "VALID@2023-05-01", "B08"],
    )
    lab = make_class_raster(
        tmp_path / "lab.tif", np.ones((32, 32), np.uint8), [{"value": 1, "name": "a", "color": "#00ff00"}], nodata=0
    )
    with pytest.raises(QgsProcessingException) as e:
        run_alg(
            "satclassify:buildpatches",
            {"IMAGE": img, "LABELS": lab, "OUTPUT_FOLDER": str(tmp_path / "ds"), "PATCH_SIZE": 16},
        )
    assert "band 3 is named 'B08' among dated bands" in str(e.value)
    assert not (tmp_path / "ds" / "manifest.json").exists()
