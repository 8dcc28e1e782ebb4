"""satclassify:searchsentinel2 / fetchsentinel2 / importsafe through processing.run against local fakes
(STAC API + COGs on 127.0.0.1, SAFE zips built by the tests). No internet."""

import threading
import time
import zipfile

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsFeature, QgsGeometry, QgsProcessingException, QgsVectorLayer

from satclassify_plugin.core.s2 import products as s2

from .. import fake_servers as fs
from ..model_helpers import model_dest
from ..sentinel_helpers import (
    A0,
    B0,
    ID_A,
    ID_B,
    ID_C,
    LogFeedback,
    band_names,
    bounds_of,
    lonlat_extent,
    two_tile_stac,
    utm_extent,
    window,
)

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
def stac():
    srv = two_tile_stac(12, 13)
    yield srv
    srv.close()


def common(stac, **kw):
    p = {"START": "2023-05-01", "END": "2023-06-30", "MAX_CLOUD": 100, "SOURCE": 0, "URL": stac.url, "RETRIES": 1}
    p.update(kw)
    return p


def read(path):
    ds = gdal.Open(str(path))
    return ds, ds.ReadAsArray()


def run_error(run_alg, alg, params):
    fb = LogFeedback()
    with pytest.raises(QgsProcessingException) as e:
        run_alg(alg, params, feedback=fb)
    return str(e.value), fb


# ------------------------------------------------------------------------------------------------- search


def test_search_footprints_fields_values_rank(run_alg, stac, tmp_path):
    out = str(tmp_path / "fp.gpkg")
    fb = LogFeedback()
    res = run_alg(
        "satclassify:searchsentinel2",
        common(stac, EXTENT=utm_extent(603000, 4999500, 603500, 4999000), OUTPUT=out),
        feedback=fb,
    )
    layer = QgsVectorLayer(res["OUTPUT"], "fp", "ogr")
    assert layer.isValid() and layer.crs().authid() == "EPSG:4326"
    names = [f.name() for f in layer.fields()]
    for n in (
        "id",
        "datetime",
        "date",
        "platform",
        "tile_id",
        "cloud",
        "baseline",
        "aoi_cover",
        "nodata",
        "source",
        "product",
        "rank",
    ):
        assert n in names, n
    feats = sorted(layer.getFeatures(), key=lambda f: f["rank"])
    assert [f["id"] for f in feats] == [ID_A, ID_C]  # tile B does not cover this AOI
    a, c = feats
    assert (
        a["rank"],
        a["datetime"],
        a["platform"],
        a["tile_id"],
        a["cloud"],
        a["baseline"],
        a["nodata"],
        a["source"],
        a["product"],
    ) == (1, "2023-06-01T10:20:00Z", "sentinel-2a", "32TQM", 10.0, "05.10", 1.5, "STAC", "L2A")
    assert a["date"].toString("yyyy-MM-dd") == "2023-06-01"
    assert a["aoi_cover"] == pytest.approx(100.0) and c["rank"] == 2 and c["cloud"] == 60.0
    # footprints in lon/lat around 10.3 E / 45.1 N (UTM 32N x = 600-610 km)
    bb = a.geometry().boundingBox()
    assert 10.0 < bb.xMinimum() < bb.xMaximum() < 10.6 and 45.0 < bb.yMinimum() < bb.yMaximum() < 45.2
    assert res["COUNT"] == 2 and res["BEST_ITEMS"] == ID_A
    assert f"  1. {ID_A}" in fb.text


def test_search_polygon_layer_aoi_cloud_limit_and_spread(run_alg, stac):
    # an AOI polygon over both tiles (memory layer in EPSG:4326)
    layer = QgsVectorLayer("Polygon?crs=EPSG:4326", "aoi", "memory")
    pts = [
        fs.to_lonlat(x, y)
        for x, y in ((605000, 4996000), (615000, 4996000), (615000, 4995000), (605000, 4995000), (605000, 4996000))
    ]
    f = QgsFeature()
    f.setGeometry(QgsGeometry.fromWkt("POLYGON((" + ",".join(f"{x!r} {y!r}" for x, y in pts) + "))"))
    layer.dataProvider().addFeatures([f])
    res = run_alg("satclassify:searchsentinel2", common(stac, AOI=layer, MAX_CLOUD=50, OUTPUT="TEMPORARY_OUTPUT"))
    feats = {f["id"]: f for f in res["OUTPUT"].getFeatures()}
    assert set(feats) == {ID_A, ID_B}  # C (60 % cloud) filtered
    assert 30 < feats[ID_B]["aoi_cover"] < 70 and 30 < feats[ID_A]["aoi_cover"] < 70
    assert feats[ID_A]["nodata"] == 1.5 and feats[ID_B]["nodata"] == 0.0
    assert set(res["BEST_ITEMS"].split(",")) == {ID_A, ID_B}  # the two tiles of the best overpass
    # DATES=2 spreads the picks: the June 20 scene comes second although tile B of June 1 scores better
    res = run_alg("satclassify:searchsentinel2", common(stac, AOI=layer, DATES=2, OUTPUT="TEMPORARY_OUTPUT"))
    ranked = [f["id"] for f in sorted(res["OUTPUT"].getFeatures(), key=lambda f: f["rank"])]
    assert ranked[1] == ID_C


def test_search_with_a_bow_tie_aoi_repairs_it(run_alg, stac):
    """A self-intersecting AOI polygon used to end in "no area of interest"."""
    layer = QgsVectorLayer("Polygon?crs=EPSG:4326", "aoi", "memory")
    pts = [
        fs.to_lonlat(x, y)
        for x, y in ((605000, 4996000), (615000, 4995000), (615000, 4996000), (605000, 4995000), (605000, 4996000))
    ]  # the edges cross: a bow tie
    f = QgsFeature()
    f.setGeometry(QgsGeometry.fromWkt("POLYGON((" + ",".join(f"{x!r} {y!r}" for x, y in pts) + "))"))
    assert not f.geometry().isGeosValid()
    layer.dataProvider().addFeatures([f])
    fb = LogFeedback()
    res = run_alg(
        "satclassify:searchsentinel2", common(stac, AOI=layer, MAX_CLOUD=50, OUTPUT="TEMPORARY_OUTPUT"), feedback=fb
    )
    assert {f["id"] for f in res["OUTPUT"].getFeatures()} == {ID_A, ID_B}
    assert any("was invalid (self-intersecting): repaired before use" in m for m in fb.messages)


def test_search_errors(run_alg, stac):
    ext = utm_extent(603000, 4999500, 603500, 4999000)
    msg, fb = run_error(
        run_alg,
        "satclassify:searchsentinel2",
        common(stac, EXTENT=ext, START="2022-01-01", END="2022-01-31", OUTPUT="TEMPORARY_OUTPUT"),
    )
    assert "no Sentinel-2 L2A product found at STAC between 2022-01-01 and 2022-01-31" in msg
    assert "widen the dates" in msg
    msg, _ = run_error(
        run_alg,
        "satclassify:searchsentinel2",
        common(stac, EXTENT="10,11,88,89 [EPSG:4326]", OUTPUT="TEMPORARY_OUTPUT"),
    )
    assert "outside Sentinel-2 coverage" in msg
    msg, _ = run_error(run_alg, "satclassify:searchsentinel2", common(stac, OUTPUT="TEMPORARY_OUTPUT"))
    assert "no area of interest: give EXTENT or a polygon layer (AOI)" in msg
    msg, _ = run_error(
        run_alg, "satclassify:searchsentinel2", common(stac, EXTENT=ext, START="1 June", OUTPUT="TEMPORARY_OUTPUT")
    )
    assert "START '1 June' is not a date: write it as YYYY-MM-DD" in msg
    msg, _ = run_error(
        run_alg,
        "satclassify:searchsentinel2",
        common(stac, EXTENT=ext, START="2023-06-30", END="2023-06-01", OUTPUT="TEMPORARY_OUTPUT"),
    )
    assert "END (2023-06-01) is before START (2023-06-30)" in msg


def test_search_429_then_success_and_quota_and_down_and_malformed(run_alg, stac):
    p = common(stac, EXTENT=utm_extent(603000, 4999500, 603500, 4999000), OUTPUT="TEMPORARY_OUTPUT")
    stac.scripted["/search"] = [(429, {"Retry-After": "1"}, b'{"detail": "slow down"}')]
    t = time.monotonic()
    res = run_alg("satclassify:searchsentinel2", p)
    assert time.monotonic() - t >= 0.9 and res["COUNT"] == 2
    stac.scripted["/search"] = [(429, {"Retry-After": "0"}, b'{"detail": "slow down"}')] * 2
    msg, _ = run_error(run_alg, "satclassify:searchsentinel2", p)
    assert "quota reached at 127.0.0.1" in msg and "HTTP 429" in msg
    stac.scripted["/search"] = [(200, {"Content-Type": "application/json"}, b'{"type": "FeatureCollection", "fe')]
    msg, _ = run_error(run_alg, "satclassify:searchsentinel2", p)
    assert "malformed response from 127.0.0.1" in msg
    msg, _ = run_error(run_alg, "satclassify:searchsentinel2", {**p, "URL": "http://127.0.0.1:9", "RETRIES": 0})
    assert "cannot reach 127.0.0.1:9" in msg and "down or unreachable" in msg
    stac.scripted.pop("/search", None)


# ------------------------------------------------------------------------------------------------- deadlines

HINT = (
    "it may be overloaded; try again later, raise the timeout (environment variable SATCLASSIFY_HTTP_TIMEOUT, "
    "now {t} s) or choose another SOURCE"
)


@pytest.fixture
def short_timeout(monkeypatch):
    """Every network deadline of the tools from a 2 s timeout (transfers: 1 s under 1024 bytes/s)."""
    monkeypatch.setenv("SATCLASSIFY_HTTP_TIMEOUT", "2")


def cancel_after(fb, seconds):
    t = threading.Timer(seconds, fb.cancel)
    t.start()
    return t


@pytest.mark.parametrize("mode,retries", [("stall", 0), ("stall", 2), ("trickle", 1)])
def test_search_slow_server_ends_at_the_deadline(run_alg, stac, short_timeout, mode, retries):
    """The STAC search (pystac-client) against a server that sends its headers and then nothing, or one byte
    every 0.3 s: the tool ends after the 2 s deadline with a message naming the host, whatever RETRIES."""
    p = common(stac, EXTENT=utm_extent(603000, 4999500, 603500, 4999000), OUTPUT="TEMPORARY_OUTPUT", RETRIES=retries)
    stac.stall_after_headers("/search") if mode == "stall" else stac.trickle("/search", 0.3)
    try:
        t = time.monotonic()
        msg, _ = run_error(run_alg, "satclassify:searchsentinel2", p)
        dt = time.monotonic() - t
    finally:
        stac.normal()
    host = stac.url.split("//")[1]
    assert f"the server at {host} did not finish answering within 2 s (POST /search): " + HINT.format(t="2") in msg
    assert 1.9 < dt < 6, dt
    assert stac.wait_hung_up(3)


def test_search_cancel_during_a_stall(run_alg, stac, monkeypatch):
    monkeypatch.setenv("SATCLASSIFY_HTTP_TIMEOUT", "60")
    fb = LogFeedback()
    stac.stall_after_headers("/search")
    try:
        t = time.monotonic()
        cancel_after(fb, 0.5)
        with pytest.raises(QgsProcessingException, match="cancelled by the user"):
            run_alg(
                "satclassify:searchsentinel2",
                common(stac, EXTENT=utm_extent(603000, 4999500, 603500, 4999000), OUTPUT="TEMPORARY_OUTPUT"),
                feedback=fb,
            )
        assert time.monotonic() - t < 3
    finally:
        stac.normal()
    assert stac.wait_hung_up(3)


@pytest.mark.parametrize("mode", ["stall", "trickle"])
def test_fetch_slow_band_read_ends_at_the_deadline(run_alg, stac, short_timeout, tmp_path, mode):
    """GDAL /vsicurl/ reads get the same policy (GDAL_HTTP_TIMEOUT, GDAL_HTTP_LOW_SPEED_TIME/LIMIT) for the run
    only; a band whose server stalls ends the run with a message naming the host and leaves no output."""
    path = "/data/A/B08.tif"
    stac.stall_after_headers(path) if mode == "stall" else stac.trickle(path, 0.3)
    try:
        t = time.monotonic()
        msg, _ = run_error(
            run_alg,
            "satclassify:fetchsentinel2",
            common(
                stac,
                EXTENT=utm_extent(603000, 4999500, 603200, 4999300),
                ITEM=ID_A,
                BANDS="B08",
                OUTPUT=str(tmp_path / "s.tif"),
                MASK=str(tmp_path / "m.tif"),
            ),
        )
        dt = time.monotonic() - t
    finally:
        stac.normal()
        gdal.VSICurlClearCache()
    host = stac.url.split("//")[1]
    assert (
        f"the server at {host} stopped sending (reading band B08 of {ID_A}): less than 1024 bytes/s for 1 s; "
        + HINT.format(t="2")
    ) in msg
    assert dt < 8, dt
    assert not list(tmp_path.iterdir())
    assert gdal.GetConfigOption("GDAL_HTTP_TIMEOUT") is None
    assert gdal.GetConfigOption("GDAL_HTTP_LOW_SPEED_TIME") is None


# ------------------------------------------------------------------------------------------------- fetch


def test_fetch_reads_only_the_aoi_window(run_alg, stac, tmp_path):
    stac.reset_counts()
    out, mask = tmp_path / "s2.tif", tmp_path / "mask.tif"
    fb = LogFeedback()
    # 500 m x 500 m inside one 256 x 256 block of the 10 m COGs (a 10.24 km tile has 4 x 4 blocks)
    res = run_alg(
        "satclassify:fetchsentinel2",
        common(
            stac,
            EXTENT=utm_extent(602600, 4999000, 603100, 4999500),
            MAX_CLOUD=50,
            BANDS="B02,B03,B04,B08,B11",
            OUTPUT=str(out),
            MASK=str(mask),
        ),
        feedback=fb,
    )
    served = {p: n for p, n in stac.bytes_served.items() if p.startswith("/data/")}
    sizes = {p: len(stac.files[p]) for p in served}
    assert set(served) == {f"/data/A/{b}.tif" for b in ("B02", "B03", "B04", "B08", "B11", "SCL")}
    total, full = sum(served.values()), sum(sizes.values())
    print(
        f"\nAOI window read (500 m x 500 m of a 10.24 km tile, 5 bands + SCL): {total} bytes served, "
        f"full files {full} bytes ({100.0 * total / full:.1f} %); per file: "
        + ", ".join(f"{p.rsplit('/', 1)[1]} {served[p]}/{sizes[p]}" for p in sorted(served))
    )
    assert total < 0.15 * full
    for p in served:
        if p.rsplit("/", 1)[1] in ("B02.tif", "B03.tif", "B04.tif", "B08.tif"):
            assert served[p] < 0.1 * sizes[p], (p, served[p], sizes[p])
    ds, a = read(out)
    assert band_names(ds) == ["B02", "B03", "B04", "B08", "B11"]
    band = ds.GetRasterBand(1)
    assert band.DataType == gdal.GDT_UInt16 and band.GetNoDataValue() == 0
    assert ds.GetMetadata("IMAGE_STRUCTURE").get("COMPRESSION") == "DEFLATE"  # (tiled from 256 x 256 pixels)
    assert ds.GetGeoTransform()[1] == 10.0 and "32632" in ds.GetProjection().split("AUTHORITY")[-1]
    b = bounds_of(ds)
    assert b == (602600.0, 4999000.0, 603100.0, 4999500.0)
    for i, name in enumerate(("B02", "B03", "B04", "B08")):  # baseline 05.10: -1000 applied, exact DN
        assert np.array_equal(a[i], s2.harmonise(window(stac.arrays["A"][name], b, A0), -1000)), name
    # B11 (20 m): bilinear onto 10 m, values within the neighbouring 20 m values (after the offset)
    src = window(stac.arrays["A"]["B11"], (b[0] - 20, b[1] - 20, b[2] + 20, b[3] + 20), A0, 20.0).astype(int) - 1000
    assert a[4].min() >= src.min() and a[4].max() <= src.max() and len(np.unique(a[4])) > 100
    m = read(mask)[1]
    assert m.dtype == np.uint8 and m.shape == (50, 50) and m.min() == 1  # SCL 4 (vegetation) here
    assert res["ITEMS"] == ID_A and res["DATE"] == "2023-06-01" and res["VALID_FRACTION"] == 1.0
    assert f"{ID_A}: baseline 05.10, DN offset -1000" in fb.text


def test_fetch_mask_from_scl(run_alg, stac, tmp_path):
    # across the edge of tile A's cloudy west strip (SCL 9 west of x = 602560)
    res = run_alg(
        "satclassify:fetchsentinel2",
        common(
            stac,
            EXTENT=utm_extent(602300, 4999000, 602800, 4999500),
            ITEM=ID_A,
            BANDS="B04",
            OUTPUT=str(tmp_path / "s.tif"),
            MASK=str(tmp_path / "m.tif"),
        ),
    )
    ds, m = read(tmp_path / "m.tif")
    assert bounds_of(ds) == (602300.0, 4999000.0, 602800.0, 4999500.0)
    assert m[:, :26].max() == 0 and m[:, 26:].min() == 1 and res["VALID_FRACTION"] == pytest.approx(24 / 50)
    assert ds.GetRasterBand(1).GetDescription() == "valid"


def test_fetch_item_mosaic_two_tiles_and_two_baselines(run_alg, stac, tmp_path):
    out = tmp_path / "s2.tif"
    res = run_alg(
        "satclassify:fetchsentinel2",
        common(
            stac,
            EXTENT=lonlat_extent(609800, 4999000, 610700, 4998600),
            ITEM=f"{ID_A}, {ID_B}",
            START="",
            END="",
            BANDS="b4,B2",
            OUTPUT=str(out),
            MASK=str(tmp_path / "m.tif"),
        ),
    )
    ds, a = read(out)
    assert band_names(ds) == ["B04", "B02"]
    b = bounds_of(ds)
    split = int(round((610240 - b[0]) / 10))
    west = s2.harmonise(window(stac.arrays["A"]["B04"], (b[0], b[1], 610240, b[3]), A0), -1000)  # 05.10
    east = window(stac.arrays["B"]["B04"], (610240, b[1], b[2], b[3]), B0)  # 03.01: raw DN
    assert np.array_equal(a[0][:, :split], west) and np.array_equal(a[0][:, split:], east)
    assert (a > 0).all() and res["ITEMS"] == f"{ID_A},{ID_B}"
    m = read(tmp_path / "m.tif")[1]  # A's east edge: SCL 4 (valid); B's west quarter: SCL 9 (cloud)
    assert m[:, :split].min() == 1 and m[:, split:].max() == 0


def test_fetch_best_date_mosaics_by_search_and_target_crs(run_alg, stac, tmp_path):
    out = tmp_path / "s2.tif"
    res = run_alg(
        "satclassify:fetchsentinel2",
        common(
            stac,
            EXTENT=utm_extent(609800, 4999000, 610700, 4998600),
            START="2023-06-01",
            END="2023-06-02",
            BANDS="B08",
            TARGET_CRS="EPSG:32633",
            OUTPUT=str(out),
            MASK=None,
        ),
    )
    assert set(res["ITEMS"].split(",")) == {ID_A, ID_B} and res["MASK"] is None
    ds, a = read(out)
    assert ds.GetSpatialRef().GetAuthorityCode(None) == "32633" and (a > 0).mean() > 0.95
    # without MOSAIC only the best tile is read
    res = run_alg(
        "satclassify:fetchsentinel2",
        common(
            stac,
            EXTENT=utm_extent(609800, 4999000, 610700, 4998600),
            START="2023-06-01",
            END="2023-06-02",
            BANDS="B08",
            MOSAIC=False,
            OUTPUT=str(tmp_path / "one.tif"),
        ),
    )
    assert res["ITEMS"] == ID_A
    assert bounds_of(read(tmp_path / "one.tif")[0])[2] == 610240.0  # cut at tile A's east edge


def test_fetch_offset_already_applied_by_provider(run_alg, stac, tmp_path):
    out = tmp_path / "s2.tif"
    run_alg(
        "satclassify:fetchsentinel2",
        common(stac, EXTENT=utm_extent(603000, 4999500, 603200, 4999300), ITEM=ID_C, BANDS="B08", OUTPUT=str(out)),
    )
    ds, a = read(out)
    assert np.array_equal(a, window(stac.arrays["A"]["B08"], bounds_of(ds), A0))


def test_fetch_errors_leave_no_output(run_alg, stac, tmp_path):
    ext = utm_extent(603000, 4999500, 603200, 4999300)
    out = tmp_path / "s2.tif"
    msg, _ = run_error(
        run_alg, "satclassify:fetchsentinel2", common(stac, EXTENT=ext, BANDS="B02,B13", OUTPUT=str(out))
    )
    assert "unknown Sentinel-2 band 'B13'" in msg
    msg, _ = run_error(run_alg, "satclassify:fetchsentinel2", common(stac, EXTENT=ext, ITEM="NOPE", OUTPUT=str(out)))
    assert "no product with id NOPE" in msg
    msg, _ = run_error(
        run_alg, "satclassify:fetchsentinel2", common(stac, EXTENT=ext, ITEM=ID_A, BANDS="B12", OUTPUT=str(out))
    )
    assert f"item {ID_A} has no asset for band B12" in msg
    msg, _ = run_error(run_alg, "satclassify:fetchsentinel2", common(stac, ITEM=ID_A, OUTPUT=str(out)))
    assert "no area of interest" in msg
    msg, _ = run_error(
        run_alg, "satclassify:fetchsentinel2", common(stac, EXTENT=ext, ITEM=ID_A, OUTPUT=str(tmp_path / "s2.png"))
    )
    assert "the tool writes GeoTIFF, not .png: name the file .tif" in msg
    # an AOI inside the search footprint bbox but outside tile B's raster: clear message
    msg, _ = run_error(
        run_alg,
        "satclassify:fetchsentinel2",
        common(stac, EXTENT=utm_extent(590000, 4999500, 590500, 4999000), ITEM=ID_B, OUTPUT=str(out)),
    )
    assert "outside the product footprint" in msg
    assert not list(tmp_path.iterdir())


def test_fetch_cancel_leaves_no_output(run_alg, stac, tmp_path):
    fb = LogFeedback()
    fb.progressChanged.connect(lambda p: fb.cancel())
    with pytest.raises(QgsProcessingException, match="cancelled"):
        run_alg(
            "satclassify:fetchsentinel2",
            common(
                stac,
                EXTENT=utm_extent(603000, 4999500, 603200, 4999300),
                ITEM=ID_A,
                OUTPUT=str(tmp_path / "s.tif"),
                MASK=str(tmp_path / "m.tif"),
            ),
            feedback=fb,
        )
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------------- importsafe


@pytest.fixture(scope="module")
def safe_arrays():
    return fs.tile_arrays(17, 120)


@pytest.mark.parametrize("baseline,offset", [("05.09", -1000), ("04.00", -1000), ("03.01", 0)])
def test_importsafe_zip_l2a(run_alg, tmp_path, safe_arrays, baseline, offset):
    z = fs.make_safe_zip(tmp_path / "p.zip", safe_arrays, A0, baseline=baseline)
    fb = LogFeedback()
    res = run_alg(
        "satclassify:importsafe",
        {
            "INPUT": z,
            "BANDS": "B02,B03,B04,B08,B11",
            "OUTPUT": str(tmp_path / "s.tif"),
            "MASK": str(tmp_path / "m.tif"),
        },
        feedback=fb,
    )
    ds, a = read(tmp_path / "s.tif")
    assert band_names(ds) == ["B02", "B03", "B04", "B08", "B11"]
    assert ds.GetGeoTransform() == (600000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0) and a.shape == (5, 120, 120)
    assert ds.GetRasterBand(1).GetNoDataValue() == 0 and ds.GetRasterBand(1).DataType == gdal.GDT_UInt16
    for i, b in enumerate(("B02", "B03", "B04", "B08")):
        assert np.array_equal(a[i], s2.harmonise(safe_arrays[b], offset)), b
    scl = np.repeat(np.repeat(safe_arrays["SCL"], 2, 0), 2, 1)
    assert np.array_equal(read(tmp_path / "m.tif")[1], s2.scl_mask(scl))
    assert f"baseline {baseline}, DN offset {offset}" in fb.text
    assert res["DATE"] == "2023-06-01" and res["ITEMS"].startswith("S2B_MSIL2A_20230601T101559")


def test_importsafe_folder_with_extent_crop(run_alg, tmp_path, safe_arrays):
    z = fs.make_safe_zip(tmp_path / "p.zip", safe_arrays, A0, baseline="05.09")
    with zipfile.ZipFile(z) as zf:
        zf.extractall(tmp_path / "x")
    folder = next((tmp_path / "x").iterdir())
    run_alg(
        "satclassify:importsafe",
        {
            "INPUT": str(folder),
            "BANDS": "B04,SCL",
            "EXTENT": utm_extent(600100, 4999900, 600400, 4999700),
            "OUTPUT": str(tmp_path / "s.tif"),
        },
    )
    ds, a = read(tmp_path / "s.tif")
    b = bounds_of(ds)
    assert b == (600100.0, 4999700.0, 600400.0, 4999900.0)
    assert band_names(ds) == ["B04", "SCL"]
    assert np.array_equal(a[0], s2.harmonise(window(safe_arrays["B04"], b, A0), -1000))
    # the MTD file works as input too
    run_alg(
        "satclassify:importsafe",
        {"INPUT": str(folder / "MTD_MSIL2A.xml"), "BANDS": "B08", "OUTPUT": str(tmp_path / "t.tif"), "MASK": None},
    )
    assert read(tmp_path / "t.tif")[1].shape == (120, 120)


def test_importsafe_malicious_zip_rejected(run_alg, tmp_path, safe_arrays):
    z = fs.make_safe_zip(tmp_path / "evil.zip", safe_arrays, A0, extra_entries=[("../../evil.txt", b"pwned")])
    out = tmp_path / "out"
    msg, _ = run_error(
        run_alg, "satclassify:importsafe", {"INPUT": z, "OUTPUT": str(out / "s.tif"), "MASK": str(out / "m.tif")}
    )
    assert "unsafe archive 'evil.zip': entry '../../evil.txt' points outside the product folder (zip-slip)" in msg
    assert not out.exists() or not list(out.iterdir())
    assert not (tmp_path.parent / "evil.txt").exists() and not (tmp_path.parent.parent / "evil.txt").exists()
    notsafe = tmp_path / "notsafe.zip"
    notsafe.write_bytes(fs.zip_bytes([("a/readme.txt", b"x")]))
    msg, _ = run_error(run_alg, "satclassify:importsafe", {"INPUT": str(notsafe), "OUTPUT": str(out / "s.tif")})
    assert "holds no MTD_MSIL2A.xml or MTD_MSIL1C.xml" in msg


def test_importsafe_truncated_or_empty_zip(run_alg, tmp_path, safe_arrays):
    """Used to say "neither a SAFE folder, its MTD_MSIL*.xml nor a .zip"."""
    z = fs.make_safe_zip(tmp_path / "p.zip", safe_arrays, A0)
    data = open(z, "rb").read()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(data[: len(data) // 3])
    empty = tmp_path / "empty.zip"
    empty.write_bytes(b"")
    out = tmp_path / "out"
    msg, _ = run_error(run_alg, "satclassify:importsafe", {"INPUT": str(cut), "OUTPUT": str(out / "s.tif")})
    assert f"'cut.zip' is not a readable zip archive ({len(data) // 3} bytes: truncated or damaged" in msg
    assert "download the product again" in msg
    msg, _ = run_error(run_alg, "satclassify:importsafe", {"INPUT": str(empty), "OUTPUT": str(out / "s.tif")})
    assert "'empty.zip' is not a readable zip archive (empty: truncated or damaged" in msg
    assert not out.exists() or not list(out.iterdir())


def test_importsafe_l1c_has_no_scl(run_alg, tmp_path, safe_arrays):
    arrays = {k: v for k, v in safe_arrays.items() if k != "SCL"}
    z = fs.make_safe_zip(tmp_path / "p.zip", arrays, A0, level="L1C", baseline="04.00")
    res = run_alg(
        "satclassify:importsafe",
        {
            "INPUT": z,
            "BANDS": "B04",
            "CLOUD_MASK": 3,  # no cloud detector
            "OUTPUT": str(tmp_path / "s.tif"),
            "MASK": str(tmp_path / "m.tif"),
        },
    )
    assert np.array_equal(read(tmp_path / "s.tif")[1], s2.harmonise(arrays["B04"], -1000))
    assert read(tmp_path / "m.tif")[1].min() == 1 and res["VALID_FRACTION"] == 1.0
    msg, _ = run_error(
        run_alg, "satclassify:importsafe", {"INPUT": z, "BANDS": "B04,SCL", "OUTPUT": str(tmp_path / "t.tif")}
    )
    assert "SCL exists only in L2A products" in msg


# ------------------------------------------------------------------------------------------------- modeler


def test_model_chains_search_best_items_into_fetch(run_alg, stac, tmp_path):
    """A Processing model: searchsentinel2's BEST_ITEMS feeds fetchsentinel2's ITEM."""
    from qgis.core import QgsProcessingModelAlgorithm, QgsProcessingModelChildAlgorithm, QgsProcessingModelOutput
    from qgis.core import QgsProcessingModelChildParameterSource as Src

    model = QgsProcessingModelAlgorithm("s2 chain", "tests")
    ext = utm_extent(609800, 4999000, 610700, 4998600)
    fixed = {
        "EXTENT": ext,
        "START": "2023-06-01",
        "END": "2023-06-30",
        "MAX_CLOUD": 50,
        "SOURCE": 0,
        "URL": stac.url,
        "RETRIES": 1,
    }
    search = QgsProcessingModelChildAlgorithm("satclassify:searchsentinel2")
    search.setChildId("search")
    for k, v in fixed.items():  # (setParameterSources with a dict aborts in PyQGIS 3.22: add one by one)
        search.addParameterSources(k, [Src.fromStaticValue(v)])
    model.addChildAlgorithm(search)
    fetch = QgsProcessingModelChildAlgorithm("satclassify:fetchsentinel2")
    fetch.setChildId("fetch")
    for k, v in {**fixed, "BANDS": "B04"}.items():
        fetch.addParameterSources(k, [Src.fromStaticValue(v)])
    fetch.addParameterSources("ITEM", [Src.fromChildOutput("search", "BEST_ITEMS")])
    out = QgsProcessingModelOutput("stack", "stack")
    out.setChildId("fetch")
    out.setChildOutputName("OUTPUT")
    fetch.setModelOutputs({"stack": out})
    model.addChildAlgorithm(fetch)
    import processing
    from qgis.core import QgsProcessingContext

    dest = model_dest(model, "stack")  # "fetch:stack" in QGIS 3.22, "stack" from 3.40 on
    res = processing.run(
        model, {dest: str(tmp_path / "s2.tif")}, context=QgsProcessingContext(), feedback=LogFeedback()
    )
    ds, a = read(res[dest])
    assert band_names(ds) == ["B04"] and (a > 0).all()
    assert set(ds.GetMetadataItem("SATCLASSIFY_PRODUCTS").split(",")) == {ID_A, ID_B}


def test_geographic_or_unknown_target_crs_is_refused(run_alg, tmp_path, safe_arrays):
    """A geographic TARGET_CRS used to give a 1 x 1 px stack of 10-degree pixels; an unknown code silently became
    the UTM zone."""
    z = fs.make_safe_zip(tmp_path / "p.zip", safe_arrays, A0)
    out = tmp_path / "out"
    msg, _ = run_error(
        run_alg, "satclassify:importsafe", {"INPUT": z, "TARGET_CRS": "EPSG:4326", "OUTPUT": str(out / "s.tif")}
    )
    assert "TARGET_CRS EPSG:4326 is geographic (degrees): a pixel size of 10 would make pixels 10 degrees wide" in msg
    assert "Choose a projected CRS in metres" in msg
    msg, _ = run_error(
        run_alg, "satclassify:importsafe", {"INPUT": z, "TARGET_CRS": "EPSG:999999", "OUTPUT": str(out / "s.tif")}
    )
    assert "TARGET_CRS 'EPSG:999999' is not a coordinate reference system QGIS knows" in msg
    assert not out.exists() or not list(out.iterdir())
