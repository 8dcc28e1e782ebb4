"""searchsentinel2 / fetchsentinel2 with the login sources against local fakes: CDSE (OData search with
@odata.nextLink paging, OpenID token, download through a redirect with resume + MD5, SAFE import) and a
DHuS mirror through sentinelsat. Credentials come from a QGIS authentication configuration created in the
test profile's auth database; the password and the token must never reach a log, an error or a file."""

import time

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsProcessingUtils

from satclassify_plugin.core.s2 import products as s2

from .. import fake_servers as fs
from ..sentinel_helpers import (
    A0,
    LogFeedback,
    band_names,
    basic_authcfg,
    bounds_of,
    files_containing,
    utm_extent,
    window,
)

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

USER = "analyst@example.org"
PASSWORD = "Pw-7rQz!k2#Secret"
TOKEN = "tok-9d8c7b6a5f4e"
UUID_1 = "0b1e2d3c-4a5b-4c6d-8e7f-9a0b1c2d3e4f"  # 2023-06-01, 5 % cloud, baseline 05.09
UUID_2 = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"  # 2023-06-11, 40 % cloud, baseline 03.01
NAME_1 = "S2B_MSIL2A_20230601T101559_N0509_R065_T32TQM_20230601T131313.SAFE"
NAME_2 = "S2A_MSIL2A_20230611T101601_N0301_R065_T32TQM_20230611T131313.SAFE"
EXT = utm_extent(600100, 4999900, 600600, 4999500)


@pytest.fixture(scope="module")
def arrays():
    return fs.tile_arrays(21, 120)


@pytest.fixture(scope="module")
def products(arrays, tmp_path_factory):
    d = tmp_path_factory.mktemp("safe")
    z1 = fs.make_safe_zip(d / "p1.zip", arrays, A0, baseline="05.09", uri=NAME_1)
    z2 = fs.make_safe_zip(d / "p2.zip", arrays, A0, baseline="03.01", uri=NAME_2)
    return [open(z1, "rb").read(), open(z2, "rb").read()]


@pytest.fixture(scope="module")
def auth(qgis_app):
    return {
        "good": basic_authcfg(USER, PASSWORD, "cdse test"),
        "bad": basic_authcfg(USER, "wrong-" + PASSWORD[:6], "cdse bad"),
    }


@pytest.fixture
def cdse(products):
    srv = fs.FakeServer()
    fp = fs.footprint(600000, 4998800, 601200, 5000000)
    prods = [
        fs.odata_product(UUID_1, NAME_1, products[0], "2023-06-01T10:15:59.024Z", fp, cloud=5.0, baseline="05.09"),
        fs.odata_product(UUID_2, NAME_2, products[1], "2023-06-11T10:16:01.024Z", fp, cloud=40.0, baseline="03.01"),
    ]
    fs.add_cdse(srv, prods, products, USER, PASSWORD, token=TOKEN, page_size=1)
    yield srv
    srv.close()


def params(srv, authcfg, **kw):
    p = {
        "EXTENT": EXT,
        "START": "2023-05-01",
        "END": "2023-06-30",
        "MAX_CLOUD": 80,
        "SOURCE": 1,
        "URL": srv.url + "/odata/v1",
        "AUTHCFG": authcfg,
        "RETRIES": 1,
    }
    p.update(kw)
    return p


def assert_no_secret(*texts, folders=()):
    for t in texts:
        assert PASSWORD not in t and TOKEN not in t
    for secret in (PASSWORD, TOKEN):
        assert files_containing(secret, *folders) == []


def test_cdse_search_pages_through_next_links(run_alg, cdse, auth, tmp_path):
    fb = LogFeedback()
    res = run_alg(
        "satclassify:searchsentinel2", params(cdse, auth["good"], OUTPUT=str(tmp_path / "fp.gpkg")), feedback=fb
    )
    gets = [p for m, p, h, b in cdse.log if p.startswith("/odata/v1/Products?")]
    assert len(gets) == 2 and "%24skip=1" in gets[1]  # page 2 from @odata.nextLink
    from qgis.core import QgsVectorLayer

    feats = sorted(QgsVectorLayer(res["OUTPUT"], "fp", "ogr").getFeatures(), key=lambda f: f["rank"])
    assert [f["id"] for f in feats] == [NAME_1[:-5], NAME_2[:-5]]
    f = feats[0]
    assert (f["tile_id"], f["cloud"], f["baseline"], f["source"], f["platform"], f["aoi_cover"]) == (
        "32TQM",
        5.0,
        "05.09",
        "CDSE",
        "sentinel-2b",
        100.0,
    )
    assert not any(m == "POST" for m, *_ in cdse.log)  # the catalogue needs no token
    assert not any("authorization" in {k.lower() for k in h} for m, p, h, b in cdse.log)
    assert_no_secret(fb.text, folders=[tmp_path])


def test_cdse_fetch_token_redirect_resume_checksum(run_alg, cdse, auth, arrays, tmp_path, products):
    dl = tmp_path / "downloads"
    path = f"/dl/Products({UUID_1})/$value"
    cdse.drop_after[path] = 40_000  # the first transfer breaks after 40 kB
    fb = LogFeedback()
    res = run_alg(
        "satclassify:fetchsentinel2",
        params(
            cdse,
            auth["good"],
            BANDS="B02,B04,B08,B11",
            DOWNLOAD_DIR=str(dl),
            OUTPUT=str(tmp_path / "s.tif"),
            MASK=str(tmp_path / "m.tif"),
        ),
        feedback=fb,
    )
    # token: one POST with the user's credentials (form body), then Bearer on the redirected download
    posts = [b for m, p, h, b in cdse.log if m == "POST"]
    assert len(posts) == 1 and b"grant_type=password" in posts[0] and b"client_id=cdse-public" in posts[0]
    dls = [h for m, p, h, b in cdse.log if p == path]
    assert len(dls) == 2 and all(h.get("Authorization") == f"Bearer {TOKEN}" for h in dls)
    assert "Range" not in dls[0] and dls[1]["Range"] == "bytes=40000-"
    assert cdse.bytes_served[path] == len(products[0])  # resumed, nothing fetched twice
    assert (dl / (NAME_1[:-5] + ".zip")).read_bytes() == products[0]
    assert not list(dl.glob("*.part"))
    assert "MD5 checksum" in fb.text and "connection dropped" in fb.text
    ds = gdal.Open(str(tmp_path / "s.tif"))
    a = ds.ReadAsArray()
    b = bounds_of(ds)
    assert band_names(ds) == ["B02", "B04", "B08", "B11"] and b == (600100.0, 4999500.0, 600600.0, 4999900.0)
    for i, name in enumerate(("B02", "B04", "B08")):  # 05.09: BOA_ADD_OFFSET -1000 from the MTD
        assert np.array_equal(a[i], s2.harmonise(window(arrays[name], b, A0), -1000)), name
    scl = np.repeat(np.repeat(arrays["SCL"], 2, 0), 2, 1)
    assert np.array_equal(gdal.Open(str(tmp_path / "m.tif")).ReadAsArray(), s2.scl_mask(window(scl, b, A0)))
    assert res["ITEMS"] == NAME_1[:-5]
    meta = ds.GetMetadata()
    assert meta["SATCLASSIFY_SOURCE"].startswith("CDSE http://127.0.0.1")
    ds = None
    # secret: nowhere in the log, the outputs, the download folder or Processing's temp folder
    assert_no_secret(fb.text, folders=[tmp_path, QgsProcessingUtils.tempFolder()])
    # a second run reuses the verified zip (no download)
    cdse.reset_counts()
    run_alg(
        "satclassify:fetchsentinel2",
        params(cdse, auth["good"], BANDS="B04", DOWNLOAD_DIR=str(dl), OUTPUT=str(tmp_path / "t.tif"), MASK=None),
    )
    assert cdse.bytes_served[path] == 0


def test_cdse_bad_credentials(run_alg, cdse, auth, tmp_path):
    fb = LogFeedback()
    with pytest.raises(QgsProcessingException) as e:
        run_alg(
            "satclassify:fetchsentinel2",
            params(cdse, auth["bad"], DOWNLOAD_DIR=str(tmp_path / "dl"), OUTPUT=str(tmp_path / "s.tif")),
            feedback=fb,
        )
    msg = str(e.value)
    assert "refused the credentials (invalid_grant)" in msg and "AUTHCFG" in msg
    assert_no_secret(msg, fb.text, folders=[tmp_path])
    assert "wrong-" not in msg + fb.text
    assert not (tmp_path / "s.tif").exists()


def test_cdse_search_needs_no_login_fetch_does(run_alg, cdse, tmp_path):
    """The CDSE catalogue is public: searching without AUTHCFG works and sends no credentials; fetching (the
    download) without AUTHCFG says a login is needed, before any request."""
    fb = LogFeedback()
    res = run_alg("satclassify:searchsentinel2", params(cdse, None, OUTPUT="TEMPORARY_OUTPUT"), feedback=fb)
    assert res["COUNT"] == 2 and res["BEST_ITEMS"] == NAME_1[:-5]
    assert cdse.log and all(p.startswith("/odata/v1/Products") for m, p, h, b in cdse.log)
    assert not any("authorization" in {k.lower() for k in h} for m, p, h, b in cdse.log)
    assert not any(m == "POST" for m, *_ in cdse.log)  # no token requested
    cdse.reset_counts()
    dl = tmp_path / "dl"
    with pytest.raises(QgsProcessingException) as e:
        run_alg("satclassify:fetchsentinel2", params(cdse, None, DOWNLOAD_DIR=str(dl), OUTPUT=str(tmp_path / "s.tif")))
    assert (
        "the CDSE source needs a login to download products (searching needs none): choose an authentication "
        "configuration (AUTHCFG, Basic authentication with user name and password)"
    ) in str(e.value)
    assert cdse.log == [] and not list(tmp_path.iterdir())
    with pytest.raises(QgsProcessingException, match="cannot load the authentication configuration 'nope123'"):
        run_alg("satclassify:searchsentinel2", params(cdse, "nope123", OUTPUT="TEMPORARY_OUTPUT"))


def test_cdse_429_then_success_and_quota_exhausted(run_alg, cdse, auth):
    cdse.scripted["/odata/v1/Products"] = [(429, {"Retry-After": "1"}, b"")]
    fb = LogFeedback()
    t = time.monotonic()
    res = run_alg("satclassify:searchsentinel2", params(cdse, auth["good"], OUTPUT="TEMPORARY_OUTPUT"), feedback=fb)
    assert time.monotonic() - t >= 0.9 and res["COUNT"] == 2
    assert "answered HTTP 429; retrying in 1.0 s" in fb.text
    cdse.scripted["/odata/v1/Products"] = [(429, {"Retry-After": "0"}, b"")] * 2
    with pytest.raises(
        QgsProcessingException,
        match=r"quota reached at 127.0.0.1:\d+ \(HTTP 429 Too Many Requests "
        r"after 2 tries\)",
    ):
        run_alg("satclassify:searchsentinel2", params(cdse, auth["good"], OUTPUT="TEMPORARY_OUTPUT"))
    cdse.scripted["/odata/v1/Products"] = [(200, {}, {"value": "nope"})]
    with pytest.raises(QgsProcessingException, match="malformed response from 127.0.0.1.*no 'value' list"):
        run_alg("satclassify:searchsentinel2", params(cdse, auth["good"], OUTPUT="TEMPORARY_OUTPUT"))


def test_cdse_checksum_mismatch(run_alg, products, auth, tmp_path):
    srv = fs.FakeServer()
    try:
        fp = fs.footprint(600000, 4998800, 601200, 5000000)
        prod = fs.odata_product(UUID_1, NAME_1, products[0], "2023-06-01T10:15:59.024Z", fp, md5sum="0" * 32)
        fs.add_cdse(srv, [prod], [products[0]], USER, PASSWORD, token=TOKEN)
        with pytest.raises(QgsProcessingException, match=r"checksum mismatch .*the corrupt file was removed"):
            run_alg(
                "satclassify:fetchsentinel2",
                params(srv, auth["good"], DOWNLOAD_DIR=str(tmp_path / "dl"), OUTPUT=str(tmp_path / "s.tif")),
            )
        assert not list((tmp_path / "dl").iterdir())
    finally:
        srv.close()


# ------------------------------------------------------------------------------------------------- DHuS


@pytest.fixture
def dhus(products):
    pytest.importorskip("sentinelsat")
    srv = fs.FakeServer()
    fp = fs.footprint(600000, 4998800, 601200, 5000000)
    wkt = "POLYGON((" + ",".join(f"{x} {y}" for x, y in fp["coordinates"][0]) + "))"
    entries = [
        fs.dhus_entry(UUID_1, NAME_1[:-5], "2023-06-01T10:15:59.024Z", wkt, cloud=5.0),
        fs.dhus_entry(UUID_2, NAME_2[:-5], "2023-06-11T10:16:01.024Z", wkt, cloud=40.0, baseline="03.01"),
    ]
    srv.url_dhus = fs.add_dhus(srv, entries, products, USER, PASSWORD)
    yield srv
    srv.close()


def test_dhus_search_and_fetch_through_sentinelsat(run_alg, dhus, auth, arrays, tmp_path):
    fb = LogFeedback()
    res = run_alg(
        "satclassify:searchsentinel2",
        {**params(dhus, auth["good"], SOURCE=2, URL=dhus.url_dhus), "OUTPUT": "TEMPORARY_OUTPUT"},
        feedback=fb,
    )
    feats = sorted(res["OUTPUT"].getFeatures(), key=lambda f: f["rank"])
    assert [f["id"] for f in feats] == [NAME_1[:-5], NAME_2[:-5]]
    assert (feats[0]["source"], feats[0]["cloud"], feats[0]["baseline"], feats[0]["tile_id"]) == (
        "DHuS",
        5.0,
        "05.09",
        "32TQM",
    )
    dl = tmp_path / "dl"
    res = run_alg(
        "satclassify:fetchsentinel2",
        {
            **params(dhus, auth["good"], SOURCE=2, URL=dhus.url_dhus),
            "BANDS": "B04",
            "DOWNLOAD_DIR": str(dl),
            "OUTPUT": str(tmp_path / "s.tif"),
            "MASK": None,
        },
        feedback=fb,
    )
    ds = gdal.Open(str(tmp_path / "s.tif"))
    assert np.array_equal(ds.ReadAsArray(), s2.harmonise(window(arrays["B04"], bounds_of(ds), A0), -1000))
    assert res["ITEMS"] == NAME_1[:-5]
    ds = None
    assert_no_secret(fb.text, folders=[tmp_path])
    with pytest.raises(QgsProcessingException) as e:
        run_alg(
            "satclassify:searchsentinel2",
            {**params(dhus, auth["bad"], SOURCE=2, URL=dhus.url_dhus), "OUTPUT": "TEMPORARY_OUTPUT"},
        )
    assert "refused the credentials (HTTP 401)" in str(e.value)
    assert_no_secret(str(e.value))


def test_cdse_token_expired_during_download_logs_in_again(run_alg, products, auth, tmp_path):
    srv = fs.FakeServer()
    fp = fs.footprint(600000, 4998800, 601200, 5000000)
    prods = [fs.odata_product(UUID_1, NAME_1, products[0], "2023-06-01T10:15:59.024Z", fp, cloud=5.0, baseline="05.09")]
    stale = "tok-expired-0a1b2c"
    fs.add_cdse(srv, prods, products[:1], USER, PASSWORD, token=[stale, TOKEN])
    try:
        fb = LogFeedback()
        res = run_alg(
            "satclassify:fetchsentinel2",
            params(
                srv,
                auth["good"],
                BANDS="B04",
                DOWNLOAD_DIR=str(tmp_path / "dl"),
                OUTPUT=str(tmp_path / "s.tif"),
                MASK=None,
            ),
            feedback=fb,
        )
        path = f"/dl/Products({UUID_1})/$value"
        assert [h.get("Authorization") for m, p, h, b in srv.log if p == path] == [f"Bearer {stale}", f"Bearer {TOKEN}"]
        assert len([1 for m, p, h, b in srv.log if m == "POST"]) == 2
        assert "access token expired" in fb.text and res["ITEMS"] == NAME_1[:-5]
        assert stale not in fb.text
        assert_no_secret(fb.text, folders=[tmp_path])
    finally:
        srv.close()


# ------------------------------------------------------------------------------------------------- deadlines

HINT = (
    "it may be overloaded; try again later, raise the timeout (environment variable SATCLASSIFY_HTTP_TIMEOUT, "
    "now 2 s) or choose another SOURCE"
)


@pytest.fixture
def short_timeout(monkeypatch):
    monkeypatch.setenv("SATCLASSIFY_HTTP_TIMEOUT", "2")


def host(srv):
    return srv.url.split("//")[1]


@pytest.mark.parametrize("mode,retries", [("stall", 0), ("trickle", 2)])
def test_cdse_search_slow_catalogue_ends_at_the_deadline(run_alg, cdse, short_timeout, mode, retries):
    cdse.stall_after_headers("/odata/v1/Products") if mode == "stall" else cdse.trickle("/odata/v1/Products", 0.3)
    t = time.monotonic()
    with pytest.raises(QgsProcessingException) as e:
        run_alg("satclassify:searchsentinel2", params(cdse, None, OUTPUT="TEMPORARY_OUTPUT", RETRIES=retries))
    dt = time.monotonic() - t
    assert f"the server at {host(cdse)} did not finish answering within 2 s (catalogue search): {HINT}" in str(e.value)
    assert "malformed" not in str(e.value) and 1.9 < dt < 5, dt
    assert cdse.wait_hung_up(3)


@pytest.mark.parametrize("mode", ["stall", "trickle"])
def test_cdse_fetch_slow_download_ends_with_a_clear_message(
    run_alg, cdse, auth, short_timeout, tmp_path, mode, products
):
    """The download (no total deadline: a SAFE zip takes what it takes) stops when less than 1024 bytes/s arrive
    for 1 s (half the timeout), is resumed once (RETRIES=1), then reported; a later run resumes it."""
    path = f"/dl/Products({UUID_1})/$value"
    cdse.stall_after_headers(path) if mode == "stall" else cdse.trickle(path, 0.2)
    dl = tmp_path / "dl"
    fb = LogFeedback()
    t = time.monotonic()
    with pytest.raises(QgsProcessingException) as e:
        run_alg(
            "satclassify:fetchsentinel2",
            params(cdse, auth["good"], BANDS="B04", DOWNLOAD_DIR=str(dl), OUTPUT=str(tmp_path / "s.tif"), MASK=None),
            feedback=fb,
        )
    dt = time.monotonic() - t
    msg = str(e.value)
    assert (
        f"the server at {host(cdse)} stopped sending (download of {NAME_1[:-5]}.zip): less than 1024 bytes/s for 1 s"
    ) in msg and msg.endswith(HINT), msg
    assert "stalled (less than 1024 bytes/s for 1 s); resuming" in fb.text
    assert 1.9 < dt < 6, dt
    assert cdse.wait_hung_up(3)
    assert not (tmp_path / "s.tif").exists() and not (dl / (NAME_1[:-5] + ".zip")).exists()
    assert [p.name for p in dl.iterdir()] == ([] if mode == "stall" else [NAME_1[:-5] + ".zip.part"])
    assert_no_secret(msg, fb.text, folders=[tmp_path])
    cdse.normal()
    res = run_alg(
        "satclassify:fetchsentinel2",
        params(cdse, auth["good"], BANDS="B04", DOWNLOAD_DIR=str(dl), OUTPUT=str(tmp_path / "s.tif"), MASK=None),
    )
    assert res["ITEMS"] == NAME_1[:-5] and (dl / (NAME_1[:-5] + ".zip")).read_bytes() == products[0]


def test_cdse_cancel_during_a_stalled_download(run_alg, cdse, auth, monkeypatch, tmp_path):
    import threading

    monkeypatch.setenv("SATCLASSIFY_HTTP_TIMEOUT", "60")
    cdse.stall_after_headers(f"/dl/Products({UUID_1})/$value")
    fb = LogFeedback()
    threading.Timer(1.0, fb.cancel).start()
    t = time.monotonic()
    with pytest.raises(QgsProcessingException, match="cancelled by the user"):
        run_alg(
            "satclassify:fetchsentinel2",
            params(
                cdse,
                auth["good"],
                BANDS="B04",
                DOWNLOAD_DIR=str(tmp_path / "dl"),
                OUTPUT=str(tmp_path / "s.tif"),
                MASK=None,
            ),
            feedback=fb,
        )
    assert time.monotonic() - t < 4 and cdse.wait_hung_up(3)
    assert not (tmp_path / "s.tif").exists()


def test_dhus_slow_search_and_download_end_with_a_clear_message(run_alg, dhus, auth, short_timeout, tmp_path):
    """sentinelsat sets no timeout on its requests: its session gets ours (search: 2 s deadline; download:
    the stall rule)."""
    p = {**params(dhus, auth["good"], SOURCE=2, URL=dhus.url_dhus, RETRIES=1)}
    dhus.stall_after_headers("/dhus/search")
    t = time.monotonic()
    with pytest.raises(QgsProcessingException) as e:
        run_alg("satclassify:searchsentinel2", {**p, "OUTPUT": "TEMPORARY_OUTPUT"})
    assert f"the server at {host(dhus)} did not finish answering within 2 s (GET /dhus/search): {HINT}" in str(e.value)
    assert time.monotonic() - t < 5 and dhus.wait_hung_up(3)
    dhus.normal()
    dhus.trickle(f"/dhus/odata/v1/Products('{UUID_1}')/$value", 0.2)
    fb = LogFeedback()
    t = time.monotonic()
    with pytest.raises(QgsProcessingException) as e:
        run_alg(
            "satclassify:fetchsentinel2",
            {
                **p,
                "BANDS": "B04",
                "DOWNLOAD_DIR": str(tmp_path / "dl"),
                "OUTPUT": str(tmp_path / "s.tif"),
                "MASK": None,
            },
            feedback=fb,
        )
    msg = str(e.value)
    assert (
        f"the server at {host(dhus)} stopped sending (download of {NAME_1[:-5]}): less than 1024 bytes/s for 1 s "
        "(the partial download is resumed on the next run); " + HINT
    ) in msg
    assert time.monotonic() - t < 5 and dhus.wait_hung_up(3)
    assert not (tmp_path / "s.tif").exists()
    assert_no_secret(msg, fb.text, folders=[tmp_path])
