"""searchsentinel2 / fetchsentinel2 with the login sources against local fakes: CDSE (OData search with
@odata.nextLink paging, OpenID token, download through a redirect with resume + MD5, SAFE import) and a
DHuS mirror through sentinelsat. Credentials come from a QGIS authentication configuration created in the
test profile's auth database; the password and the token must never reach a log, an error or a file."""
import time

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsProcessingUtils

from satclassify_plugin.core import s2

from . import fake_servers as fs
from .sentinel_helpers import (A0, LogFeedback, band_names, basic_authcfg, bounds_of, files_containing, utm_extent,
                               window)

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
    return {"good": basic_authcfg(USER, PASSWORD, "cdse test"), "bad": basic_authcfg(USER, "wrong-" + PASSWORD[:6],
                                                                                     "cdse bad")}


@pytest.fixture
def cdse(products):
    srv = fs.FakeServer()
    fp = fs.footprint(600000, 4998800, 601200, 5000000)
    prods = [fs.odata_product(UUID_1, NAME_1, products[0], "2023-06-01T10:15:59.024Z", fp, cloud=5.0,
                              baseline="05.09"),
             fs.odata_product(UUID_2, NAME_2, products[1], "2023-06-11T10:16:01.024Z", fp, cloud=40.0,
                              baseline="03.01")]
    fs.add_cdse(srv, prods, products, USER, PASSWORD, token=TOKEN, page_size=1)
    yield srv
    srv.close()


def params(srv, authcfg, **kw):
    p = {"EXTENT": EXT, "START": "2023-05-01", "END": "2023-06-30", "MAX_CLOUD": 80, "SOURCE": 1,
         "URL": srv.url + "/odata/v1", "AUTHCFG": authcfg, "RETRIES": 1}
    p.update(kw)
    return p


def assert_no_secret(*texts, folders=()):
    for t in texts:
        assert PASSWORD not in t and TOKEN not in t
    for secret in (PASSWORD, TOKEN):
        assert files_containing(secret, *folders) == []


def test_cdse_search_pages_through_next_links(run_alg, cdse, auth, tmp_path):
    fb = LogFeedback()
    res = run_alg("satclassify:searchsentinel2", params(cdse, auth["good"], OUTPUT=str(tmp_path / "fp.gpkg")),
                  feedback=fb)
    gets = [p for m, p, h, b in cdse.log if p.startswith("/odata/v1/Products?")]
    assert len(gets) == 2 and "%24skip=1" in gets[1]  # page 2 from @odata.nextLink
    from qgis.core import QgsVectorLayer
    feats = sorted(QgsVectorLayer(res["OUTPUT"], "fp", "ogr").getFeatures(), key=lambda f: f["rank"])
    assert [f["id"] for f in feats] == [NAME_1[:-5], NAME_2[:-5]]
    f = feats[0]
    assert (f["tile_id"], f["cloud"], f["baseline"], f["source"], f["platform"], f["aoi_cover"]) == \
        ("32TQM", 5.0, "05.09", "CDSE", "sentinel-2b", 100.0)
    assert not any(m == "POST" for m, *_ in cdse.log)  # the catalogue needs no token
    assert_no_secret(fb.text, folders=[tmp_path])


def test_cdse_fetch_token_redirect_resume_checksum(run_alg, cdse, auth, arrays, tmp_path, products):
    dl = tmp_path / "downloads"
    path = f"/dl/Products({UUID_1})/$value"
    cdse.drop_after[path] = 40_000  # the first transfer breaks after 40 kB
    fb = LogFeedback()
    res = run_alg("satclassify:fetchsentinel2",
                  params(cdse, auth["good"], BANDS="B02,B04,B08,B11", DOWNLOAD_DIR=str(dl),
                         OUTPUT=str(tmp_path / "s.tif"), MASK=str(tmp_path / "m.tif")), feedback=fb)
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
    run_alg("satclassify:fetchsentinel2", params(cdse, auth["good"], BANDS="B04", DOWNLOAD_DIR=str(dl),
                                                 OUTPUT=str(tmp_path / "t.tif"), MASK=None))
    assert cdse.bytes_served[path] == 0


def test_cdse_bad_credentials(run_alg, cdse, auth, tmp_path):
    fb = LogFeedback()
    with pytest.raises(QgsProcessingException) as e:
        run_alg("satclassify:fetchsentinel2",
                params(cdse, auth["bad"], DOWNLOAD_DIR=str(tmp_path / "dl"), OUTPUT=str(tmp_path / "s.tif")),
                feedback=fb)
    msg = str(e.value)
    assert "refused the credentials (invalid_grant)" in msg and "AUTHCFG" in msg
    assert_no_secret(msg, fb.text, folders=[tmp_path])
    assert "wrong-" not in msg + fb.text
    assert not (tmp_path / "s.tif").exists()


def test_cdse_needs_a_login_and_an_existing_config(run_alg, cdse):
    with pytest.raises(QgsProcessingException, match="the CDSE source needs a login: choose an authentication "
                                                     "configuration"):
        run_alg("satclassify:searchsentinel2", params(cdse, None, OUTPUT="TEMPORARY_OUTPUT"))
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
    with pytest.raises(QgsProcessingException, match=r"quota reached at 127.0.0.1:\d+ \(HTTP 429 Too Many Requests "
                                                      r"after 2 tries\)"):
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
            run_alg("satclassify:fetchsentinel2", params(srv, auth["good"], DOWNLOAD_DIR=str(tmp_path / "dl"),
                                                         OUTPUT=str(tmp_path / "s.tif")))
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
    entries = [fs.dhus_entry(UUID_1, NAME_1[:-5], "2023-06-01T10:15:59.024Z", wkt, cloud=5.0),
               fs.dhus_entry(UUID_2, NAME_2[:-5], "2023-06-11T10:16:01.024Z", wkt, cloud=40.0, baseline="03.01")]
    srv.url_dhus = fs.add_dhus(srv, entries, products, USER, PASSWORD)
    yield srv
    srv.close()


def test_dhus_search_and_fetch_through_sentinelsat(run_alg, dhus, auth, arrays, tmp_path):
    fb = LogFeedback()
    res = run_alg("satclassify:searchsentinel2", {**params(dhus, auth["good"], SOURCE=2, URL=dhus.url_dhus),
                                                  "OUTPUT": "TEMPORARY_OUTPUT"}, feedback=fb)
    feats = sorted(res["OUTPUT"].getFeatures(), key=lambda f: f["rank"])
    assert [f["id"] for f in feats] == [NAME_1[:-5], NAME_2[:-5]]
    assert (feats[0]["source"], feats[0]["cloud"], feats[0]["baseline"], feats[0]["tile_id"]) == \
        ("DHuS", 5.0, "05.09", "32TQM")
    dl = tmp_path / "dl"
    res = run_alg("satclassify:fetchsentinel2",
                  {**params(dhus, auth["good"], SOURCE=2, URL=dhus.url_dhus), "BANDS": "B04",
                   "DOWNLOAD_DIR": str(dl), "OUTPUT": str(tmp_path / "s.tif"), "MASK": None}, feedback=fb)
    ds = gdal.Open(str(tmp_path / "s.tif"))
    assert np.array_equal(ds.ReadAsArray(), s2.harmonise(window(arrays["B04"], bounds_of(ds), A0), -1000))
    assert res["ITEMS"] == NAME_1[:-5]
    ds = None
    assert_no_secret(fb.text, folders=[tmp_path])
    with pytest.raises(QgsProcessingException) as e:
        run_alg("satclassify:searchsentinel2", {**params(dhus, auth["bad"], SOURCE=2, URL=dhus.url_dhus),
                                                "OUTPUT": "TEMPORARY_OUTPUT"})
    assert "refused the credentials (HTTP 401)" in str(e.value)
    assert_no_secret(str(e.value))


def test_cdse_token_expired_during_download_logs_in_again(run_alg, products, auth, tmp_path):
    srv = fs.FakeServer()
    fp = fs.footprint(600000, 4998800, 601200, 5000000)
    prods = [fs.odata_product(UUID_1, NAME_1, products[0], "2023-06-01T10:15:59.024Z", fp, cloud=5.0,
                              baseline="05.09")]
    stale = "tok-expired-0a1b2c"
    fs.add_cdse(srv, prods, products[:1], USER, PASSWORD, token=[stale, TOKEN])
    try:
        fb = LogFeedback()
        res = run_alg("satclassify:fetchsentinel2",
                      params(srv, auth["good"], BANDS="B04", DOWNLOAD_DIR=str(tmp_path / "dl"),
                             OUTPUT=str(tmp_path / "s.tif"), MASK=None), feedback=fb)
        path = f"/dl/Products({UUID_1})/$value"
        assert [h.get("Authorization") for m, p, h, b in srv.log if p == path] == [
            f"Bearer {stale}", f"Bearer {TOKEN}"]
        assert len([1 for m, p, h, b in srv.log if m == "POST"]) == 2
        assert "access token expired" in fb.text and res["ITEMS"] == NAME_1[:-5]
        assert stale not in fb.text
        assert_no_secret(fb.text, folders=[tmp_path])
    finally:
        srv.close()
