"""Sentinel-2 core against local fakes: STAC search/ranking, AOI window reads, offsets, SCL mask, mosaic,
SAFE import, zip-slip, HTTP retries and resumable downloads. No internet: 127.0.0.1 only."""

import os
import re
import time
import zipfile

import numpy as np
import pytest
from osgeo import gdal

from satclassify_plugin.core.contract.errors import SatClassifyError
from satclassify_plugin.core.net import Canceled, Deadlines, HttpClient, Monitor
from satclassify_plugin.core.s2 import products as s2
from satclassify_plugin.core.s2 import stack as gdal_s2
from satclassify_plugin.core.s2.sources import SearchQuery, fetch, get_source, search

from .. import fake_servers as fs
from ..sentinel_helpers import A0, B0, two_tile_stac, window

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def aoi(x0, y0, x1, y1):
    """An EPSG:4326 polygon from UTM 32N corners (transformed corner by corner)."""
    pts = [fs.to_lonlat(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))]
    return "POLYGON((" + ",".join(f"{x!r} {y!r}" for x, y in pts) + "))"


@pytest.fixture(scope="module")
def stac():
    srv = two_tile_stac(2, 3)
    yield srv
    srv.close()


def source(srv, **kw):
    http = HttpClient(
        retries=kw.pop("retries", 2), backoff=0.05, max_wait=kw.pop("max_wait", 2.0), monitor=kw.pop("monitor", None)
    )
    return get_source("STAC", kw.pop("url", srv.url), http=http, monitor=http.monitor)


def read(path):
    ds = gdal.Open(str(path))
    return ds, ds.ReadAsArray()


# ------------------------------------------------------------------------------------------------- search


def test_stac_search_parses_and_ranks(stac):
    q = SearchQuery(aoi(600500, 4999500, 601000, 4999000), "2023-05-01", "2023-06-30", max_cloud=80)
    res = search(source(stac), q)
    assert [s.id for s in res] == ["S2A_32TQM_20230601_0_L2A", "S2B_32TQM_20230620_0_L2A"]
    a, c = res
    assert (a.rank, a.cloud, a.baseline, a.tile_id, a.platform, a.epsg, a.nodata) == (
        1,
        10.0,
        "05.10",
        "32TQM",
        "sentinel-2a",
        32632,
        1.5,
    )
    assert a.aoi_cover == pytest.approx(100.0) and c.rank == 2
    assert a.offset_for("B04") == -1000 and c.offset_for("B04") == 0  # c: earthsearch:boa_offset_applied true
    # the cloud limit is sent to the API and enforced
    assert [s.id for s in search(source(stac), SearchQuery(q.aoi_wkt, "2023-05-01", "2023-06-30", 30))] == [
        "S2A_32TQM_20230601_0_L2A"
    ]


def test_stac_search_get_fallback_and_paging(stac):
    q = SearchQuery(aoi(605000, 4996000, 615000, 4995000), "2023-06-01", "2023-06-30", limit=1)
    res = search(source(stac), q)
    assert len(res) == 1  # LIMIT
    q.limit = 10
    res = search(source(stac), q)
    assert {s.id for s in res} == {"S2A_32TQM_20230601_0_L2A", "S2A_32TQN_20230601_0_L2A", "S2B_32TQM_20230620_0_L2A"}
    b = [s for s in res if s.tile_id == "32TQN"][0]
    assert 30 < b.aoi_cover < 70 and b.epsg == 32632 and b.baseline == "03.01"


def test_search_nothing_found_and_outside_coverage(stac):
    q = SearchQuery(aoi(600500, 4999500, 601000, 4999000), "2022-01-01", "2022-01-31")
    with pytest.raises(
        SatClassifyError,
        match=r"no Sentinel-2 L2A product found at STAC between 2022-01-01 and "
        r"2022-01-31 with cloud cover <= 100 %",
    ):
        search(source(stac), q)
    polar = "POLYGON((10 88,11 88,11 89,10 89,10 88))"
    with pytest.raises(SatClassifyError, match="outside Sentinel-2 coverage"):
        search(source(stac), SearchQuery(polar, "2023-06-01", "2023-06-30"))
    with pytest.raises(SatClassifyError, match="outside the globe"):
        search(
            source(stac), SearchQuery("POLYGON((500000 0,500100 0,500100 100,500000 0))", "2023-06-01", "2023-06-30")
        )
    with pytest.raises(SatClassifyError, match=r"END \(2023-05-01\) is before START"):
        search(source(stac), SearchQuery(q.aoi_wkt, "2023-06-01", "2023-05-01"))


# ------------------------------------------------------------------------------------------------- fetch


def test_window_read_fetches_only_the_aoi(stac, tmp_path):
    q = SearchQuery(aoi(603000, 4999500, 603500, 4999000), "2023-05-01", "2023-06-30", max_cloud=50)
    stac.reset_counts()
    out, mask = tmp_path / "s.tif", tmp_path / "m.tif"
    r = fetch(source(stac), q, ["B02", "B03", "B04", "B08", "B11"], str(out), str(mask))
    served = {p: n for p, n in stac.bytes_served.items() if p.startswith("/data/")}
    sizes = {p: len(stac.files[p]) for p in served}
    assert set(served) == {f"/data/A/{b}.tif" for b in ("B02", "B03", "B04", "B08", "B11", "SCL")}
    total, full = sum(served.values()), sum(sizes.values())
    print(
        f"\nAOI window read: {total} bytes served for {len(served)} bands, full files {full} bytes "
        f"({100.0 * total / full:.1f} %)"
    )
    for p in [p for p in served if not p.endswith("SCL.tif")]:  # SCL is 2 kB: read whole
        # 10 m bands: 16 blocks of 256 px, 20 m bands: 4 blocks; the AOI needs one of them
        limit = 0.1 if p.rsplit("/", 1)[1] in ("B02.tif", "B03.tif", "B04.tif", "B08.tif") else 0.3
        assert served[p] < limit * sizes[p], (p, served[p], sizes[p])
    assert total < 0.12 * full
    ds, a = read(out)
    assert gdal_io_names(ds) == ["B02", "B03", "B04", "B08", "B11"]
    assert ds.GetRasterBand(1).DataType == gdal.GDT_UInt16 and ds.GetRasterBand(1).GetNoDataValue() == 0
    assert r["epsg"] == 32632 and ds.GetGeoTransform()[1] == 10.0
    b = r["bounds"]
    assert b[0] <= 603000 and b[2] >= 603500 and (b[2] - b[0]) < 560
    # 10 m bands: exact DN with the -1000 offset (baseline 05.10, offset not applied by the provider)
    for i, band in enumerate(("B02", "B03", "B04", "B08")):
        expected = s2.harmonise(window(stac.arrays["A"][band], b, A0), -1000)
        assert np.array_equal(a[i], expected), band
    # 20 m band: bilinear onto 10 m, so values stay within the neighbouring 20 m values
    src = window(stac.arrays["A"]["B11"], (b[0] - 20, b[1] - 20, b[2] + 20, b[3] + 20), A0, 20.0).astype(int) - 1000
    assert a[4].min() >= max(src.min(), 1) and a[4].max() <= src.max() and len(np.unique(a[4])) > 100
    assert ds.GetMetadataItem("SATCLASSIFY_SCALE") == "0.0001"
    # mask from SCL (nearest): the fixture's SCL is 4 (vegetation) here except a cloud-shadow top rows band
    scl = np.repeat(np.repeat(stac.arrays["A"]["SCL"], 2, 0), 2, 1)
    m = read(mask)[1]
    assert np.array_equal(m, s2.scl_mask(window(scl, b, A0)))
    assert m.dtype == np.uint8 and m.min() == 1  # vegetation (SCL 4) everywhere in this AOI


def gdal_io_names(ds):
    return [ds.GetRasterBand(i + 1).GetDescription() for i in range(ds.RasterCount)]


def test_scl_mask_invalid_classes(stac, tmp_path):
    # the west quarter of tile A is cloud (SCL 9): all invalid there
    q = SearchQuery(aoi(600200, 4998000, 600600, 4997600), "2023-05-01", "2023-06-30", max_cloud=50)
    r = fetch(source(stac), q, ["B04", "SCL"], str(tmp_path / "s.tif"), str(tmp_path / "m.tif"))
    ds, a = read(tmp_path / "s.tif")
    assert gdal_io_names(ds) == ["B04", "SCL"]
    assert set(np.unique(a[1])) == {9} and read(tmp_path / "m.tif")[1].max() == 0
    assert r["valid_fraction"] == 0.0


def test_offset_pre_04_by_item_id(stac, tmp_path):
    q = SearchQuery(aoi(611000, 4999000, 611300, 4998700), ids=["S2A_32TQN_20230601_0_L2A"])
    r = fetch(source(stac), q, ["B04"], str(tmp_path / "s.tif"), None)
    a = read(tmp_path / "s.tif")[1]
    assert np.array_equal(a, window(stac.arrays["B"]["B04"], r["bounds"], B0))  # 03.01: no offset
    assert not (tmp_path / "m.tif").exists()


def test_offset_already_applied_by_provider(stac, tmp_path):
    q = SearchQuery(aoi(603000, 4999500, 603200, 4999300), ids=["S2B_32TQM_20230620_0_L2A"])
    r = fetch(source(stac), q, ["B08"], str(tmp_path / "s.tif"), None)
    assert np.array_equal(read(tmp_path / "s.tif")[1], window(stac.arrays["A"]["B08"], r["bounds"], A0))


def test_mosaic_across_two_tiles(stac, tmp_path):
    q = SearchQuery(aoi(609800, 4999000, 610700, 4998600), "2023-06-01", "2023-06-02")
    r = fetch(source(stac), q, ["B02", "B04"], str(tmp_path / "s.tif"), str(tmp_path / "m.tif"))
    assert [s.tile_id for s in r["scenes"]] == ["32TQM", "32TQN"] or [s.tile_id for s in r["scenes"]] == [
        "32TQN",
        "32TQM",
    ]
    b = r["bounds"]
    a = read(tmp_path / "s.tif")[1]
    split = int(round((610240 - b[0]) / 10))
    west = s2.harmonise(window(stac.arrays["A"]["B04"], (b[0], b[1], 610240, b[3]), A0), -1000)
    east = window(stac.arrays["B"]["B04"], (610240, b[1], b[2], b[3]), B0)  # baseline 03.01: raw
    assert np.array_equal(a[1][:, :split], west) and np.array_equal(a[1][:, split:], east)
    assert (a > 0).all()
    m = read(tmp_path / "m.tif")[1]  # A's east edge is vegetation (SCL 4), B's west quarter cloud (SCL 9)
    assert m.shape == a.shape[1:] and m[:, :split].min() == 1 and m[:, split:].max() == 0


def test_fetch_unknown_id_and_missing_band(stac, tmp_path):
    with pytest.raises(SatClassifyError, match="no product with id NOPE"):
        fetch(
            source(stac),
            SearchQuery(aoi(603000, 4999500, 603200, 4999300), ids=["NOPE"]),
            ["B04"],
            str(tmp_path / "s.tif"),
            None,
        )
    q = SearchQuery(aoi(603000, 4999500, 603200, 4999300), ids=["S2A_32TQM_20230601_0_L2A"])
    with pytest.raises(SatClassifyError, match="item S2A_32TQM_20230601_0_L2A has no asset for band B12"):
        fetch(source(stac), q, ["B04", "B12"], str(tmp_path / "s.tif"), None)
    assert not list(tmp_path.iterdir())


def test_cancel_leaves_no_output(stac, tmp_path):
    calls = []
    mon = Monitor(progress=calls.append, is_canceled=lambda: len(calls) >= 1)
    q = SearchQuery(aoi(603000, 4999500, 603200, 4999300), ids=["S2A_32TQM_20230601_0_L2A"])
    with pytest.raises(SatClassifyError, match="cancelled"):
        fetch(source(stac, monitor=mon), q, ["B02", "B03", "B04"], str(tmp_path / "s.tif"), str(tmp_path / "m.tif"))
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------------- failures


def test_stac_429_then_success_honours_retry_after(stac):
    stac.scripted["/search"] = [(429, {"Retry-After": "1"}, b'{"detail":"slow down"}')]
    t = time.monotonic()
    res = search(source(stac), SearchQuery(aoi(603000, 4999500, 603200, 4999300), "2023-06-01", "2023-06-02"))
    assert time.monotonic() - t >= 0.9 and [s.id for s in res] == ["S2A_32TQM_20230601_0_L2A"]


def test_stac_service_failing_and_down_and_malformed(stac):
    stac.scripted["/search"] = [(503, {}, b"")] * 3
    q = SearchQuery(aoi(603000, 4999500, 603200, 4999300), "2023-06-01", "2023-06-02")
    with pytest.raises(SatClassifyError, match=r"127.0.0.1:\d+ .*(is failing \(HTTP 503|kept failing)"):
        search(source(stac, retries=2), q)
    stac.scripted["/search"] = [(200, {"Content-Type": "application/json"}, b'{"type": "FeatureCollection", "feat')]
    with pytest.raises(SatClassifyError, match="malformed response from 127.0.0.1"):
        search(source(stac), q)
    stac.scripted["/search"] = [(200, {}, {"type": "FeatureCollection", "features": [{"id": "x"}]})]
    with pytest.raises(SatClassifyError, match="malformed STAC response: item x has no 'properties'"):
        search(source(stac), q)
    with pytest.raises(SatClassifyError, match=r"cannot reach 127.0.0.1:9 .*service is down"):
        search(source(stac, url="http://127.0.0.1:9", retries=0), q)


# ------------------------------------------------------------------------------------------------- HTTP client


@pytest.fixture
def srv():
    s = fs.FakeServer()
    yield s
    s.close()


def test_http_429_then_success_and_bounded_retry_after(srv):
    srv.route("GET", "/j", lambda req: (200, {}, {"ok": 1}))
    srv.scripted["/j"] = [(429, {"Retry-After": "1"}, b""), (503, {"Retry-After": "3600"}, b"")]
    msgs = []
    c = HttpClient(retries=3, backoff=0.01, max_wait=1.2, monitor=Monitor(info=msgs.append))
    t = time.monotonic()
    assert c.get_json(srv.url + "/j") == {"ok": 1}
    dt = time.monotonic() - t
    assert 1.9 <= dt < 5  # 1 s (Retry-After) + 1.2 s (3600 s capped at max_wait)
    assert "answered HTTP 429; retrying in 1.0 s" in msgs[0] and "HTTP 503; retrying in 1.2 s" in msgs[1]


@pytest.mark.parametrize(
    "status,body,msg",
    [
        (429, b"", r"quota reached at 127.0.0.1:\d+ \(HTTP 429 Too Many Requests after 2 tries\)"),
        (401, b'{"error": "unauthorized"}', r"refused the credentials \(HTTP 401\)"),
        (403, b'{"detail": "Monthly quota exceeded"}', r"quota reached .*Monthly quota exceeded"),
        (500, b"", r"is failing \(HTTP 500 after 2 tries\): try again later"),
        (404, b"", r"not found at 127.0.0.1"),
    ],
)
def test_http_status_messages(srv, status, body, msg):
    srv.scripted["/x"] = [(status, {}, body)] * 2
    with pytest.raises(SatClassifyError, match=msg):
        HttpClient(retries=1, backoff=0.01).get_json(srv.url + "/x")


def test_http_bad_json_and_down(srv):
    srv.route("GET", "/bad", lambda req: (200, {}, b"<html>oops</html>"))
    with pytest.raises(SatClassifyError, match=r"malformed response from 127.0.0.1:\d+ for request: not JSON"):
        HttpClient().get_json(srv.url + "/bad")
    with pytest.raises(SatClassifyError, match=r"cannot reach 127.0.0.1:9 \(connection failed after 1 tries\)"):
        HttpClient(retries=0).get_json("http://127.0.0.1:9/x")


def test_download_resumes_after_dropped_connection(srv, tmp_path):
    data = os.urandom(300_000)
    srv.files["/f.zip"] = data
    srv.drop_after["/f.zip"] = 100_000
    pct = []
    dest = HttpClient(backoff=0.01).download(
        srv.url + "/f.zip",
        str(tmp_path / "f.zip"),
        expected_md5=fs.md5(data),
        expected_size=len(data),
        monitor=Monitor(progress=pct.append),
    )
    assert open(dest, "rb").read() == data and not (tmp_path / "f.zip.part").exists()
    gets = [h for m, p, h, _ in srv.log if p == "/f.zip"]
    assert len(gets) == 2 and "Range" not in gets[0] and gets[1]["Range"] == "bytes=100000-"
    assert srv.bytes_served["/f.zip"] == len(data)  # nothing fetched twice
    assert pct[-1] == 1.0


def test_download_resumes_a_previous_part_and_checks_md5(srv, tmp_path):
    data = os.urandom(50_000)
    srv.files["/f.zip"] = data
    (tmp_path / "f.zip.part").write_bytes(data[:20_000])
    HttpClient().download(srv.url + "/f.zip", str(tmp_path / "f.zip"), expected_md5=fs.md5(data))
    assert (tmp_path / "f.zip").read_bytes() == data and srv.bytes_served["/f.zip"] == 30_000
    with pytest.raises(SatClassifyError, match=r"checksum mismatch for g.zip \(MD5 [0-9a-f]{32}, expected 0{32}\)"):
        HttpClient().download(srv.url + "/f.zip", str(tmp_path / "g.zip"), expected_md5="0" * 32)
    assert not (tmp_path / "g.zip").exists() and not (tmp_path / "g.zip.part").exists()


def test_download_keeps_authorization_across_redirect(srv, tmp_path):
    srv.files["/other-host/f"] = b"x" * 1000
    srv.require_header["/other-host/f"] = ("Authorization", "Bearer T0K")
    srv.route(
        "GET", "/f", lambda req: (302, {"Location": srv.url.replace("127.0.0.1", "localhost") + "/other-host/f"}, b"")
    )
    HttpClient().download(srv.url + "/f", str(tmp_path / "f"), headers={"Authorization": "Bearer T0K"})
    assert (tmp_path / "f").read_bytes() == b"x" * 1000


# ------------------------------------------------------------------------------------------------- deadlines

HINT = (
    r"it may be overloaded; try again later, raise the timeout \(environment variable SATCLASSIFY_HTTP_TIMEOUT, "
    r"now {t} s\) or choose another SOURCE"
)


def slow(srv, path, mode, interval=0.3):
    if mode == "stall":
        srv.stall_after_headers(path)
    else:
        srv.trickle(path, interval)


@pytest.mark.parametrize("mode", ["stall", "trickle"])
def test_http_request_ends_at_its_total_deadline(srv, mode):
    """Headers, then nothing (or one byte every 0.3 s, which no read timeout catches): the call ends at its
    total deadline, retries included, with a message naming the host, and the connection is closed."""
    srv.route("GET", "/j", lambda req: (200, {}, {"items": "x" * 2000}))
    slow(srv, "/j", mode)
    t = time.monotonic()
    with pytest.raises(
        SatClassifyError,
        match=r"^the server at 127.0.0.1:\d+ did not finish answering within 1.5 s "
        r"\(catalogue search\): " + HINT.format(t="1.5"),
    ):
        HttpClient(retries=2, backoff=0.01, policy=Deadlines.from_timeout(1.5)).get_json(
            srv.url + "/j", what="catalogue search"
        )
    assert 1.4 < time.monotonic() - t < 3.5
    assert srv.wait_hung_up(3)  # our socket is closed, nothing left open
    assert len(srv.log) == 1  # no try after the deadline


def test_http_no_retry_wait_beyond_the_deadline(srv):
    srv.scripted["/j"] = [(503, {"Retry-After": "20"}, b"")] * 3
    t = time.monotonic()
    with pytest.raises(SatClassifyError, match=r"is failing \(HTTP 503 after 1 tries\)"):
        HttpClient(retries=2, max_wait=30, policy=Deadlines.from_timeout(5)).get_json(srv.url + "/j")
    assert time.monotonic() - t < 2


def test_http_cancel_interrupts_a_stalled_answer(srv):
    srv.route("GET", "/j", lambda req: (200, {}, {"ok": 1}))
    srv.stall_after_headers("/j")
    t = time.monotonic()
    mon = Monitor(is_canceled=lambda: time.monotonic() - t > 0.5)
    with pytest.raises(Canceled):
        HttpClient(policy=Deadlines.from_timeout(60), monitor=mon).get_json(srv.url + "/j")
    assert time.monotonic() - t < 2.5 and srv.wait_hung_up(3)


@pytest.mark.parametrize("mode", ["stall", "trickle"])
def test_download_stall_is_resumed_then_reported(srv, tmp_path, mode):
    """A download has no total deadline but a stall rule (under 1024 bytes/s for half the timeout): a stall is
    resumed like a dropped connection, then reported with the host; the bytes received are kept for the
    next run, which resumes from them."""
    data = os.urandom(200_000)
    srv.files["/f.zip"] = data
    slow(srv, "/f.zip", mode, 0.1)
    msgs = []
    dest = tmp_path / "f.zip"
    http = HttpClient(retries=1, backoff=0.01, policy=Deadlines.from_timeout(2), monitor=Monitor(info=msgs.append))
    t = time.monotonic()
    with pytest.raises(SatClassifyError) as e:
        http.download(srv.url + "/f.zip", str(dest), expected_md5=fs.md5(data), expected_size=len(data))
    dt = time.monotonic() - t
    assert 1.9 < dt < 5  # two tries of 1 s each (stall = half the 2 s timeout)
    msg = str(e.value)
    assert re.match(
        r"the server at 127.0.0.1:\d+ stopped sending \(download of f.zip\): less than 1024 bytes/s "
        r"for 1 s",
        msg,
    ) and re.search(HINT.format(t="2") + "$", msg), msg
    assert sum("stalled (less than 1024 bytes/s for 1 s); resuming" in m for m in msgs) == 1
    assert srv.wait_hung_up(3) and not dest.exists()
    part = tmp_path / "f.zip.part"
    if mode == "stall":
        assert not part.exists() and "partial download" not in msg  # nothing arrived: no file left
    else:
        assert f"(the partial download {part} is resumed on the next run)" in msg
        assert 0 < part.stat().st_size < 100 and part.read_bytes() == data[: part.stat().st_size]
    srv.normal()
    http.download(srv.url + "/f.zip", str(dest), expected_md5=fs.md5(data), expected_size=len(data))
    assert dest.read_bytes() == data and not part.exists()


def test_download_cancel_interrupts_a_stall(srv, tmp_path):
    srv.files["/f.zip"] = os.urandom(50_000)
    srv.stall_after_headers("/f.zip")
    t = time.monotonic()
    mon = Monitor(is_canceled=lambda: time.monotonic() - t > 0.5)
    with pytest.raises(Canceled, match="download cancelled by the user"):
        HttpClient(policy=Deadlines.from_timeout(60), monitor=mon).download(srv.url + "/f.zip", str(tmp_path / "f.zip"))
    assert time.monotonic() - t < 2.5 and srv.wait_hung_up(3) and not list(tmp_path.iterdir())


def test_deadlines_from_the_environment():
    assert Deadlines.from_env({}) == Deadlines(total=120.0, connect=10.0, stall=60.0, min_rate=1024)
    d = Deadlines.from_env({"SATCLASSIFY_HTTP_TIMEOUT": "4"})
    assert (d.total, d.connect, d.stall) == (4.0, 4.0, 2.0)
    assert d.gdal_options(2) == {
        "GDAL_HTTP_TIMEOUT": "4",
        "GDAL_HTTP_CONNECTTIMEOUT": "4",
        "GDAL_HTTP_LOW_SPEED_TIME": "2",
        "GDAL_HTTP_LOW_SPEED_LIMIT": "1024",
        "GDAL_HTTP_MAX_RETRY": "2",
    }
    for bad in ("soon", "0", "-3", "nan"):
        with pytest.raises(
            SatClassifyError, match=f"SATCLASSIFY_HTTP_TIMEOUT must be a number of seconds above 0 .*not '{bad}'"
        ):
            Deadlines.from_env({"SATCLASSIFY_HTTP_TIMEOUT": bad})


# ------------------------------------------------------------------------------------------------- SAFE


@pytest.fixture(scope="module")
def safe_arrays():
    return fs.tile_arrays(7, 120)


@pytest.mark.parametrize("baseline,offset", [("05.09", -1000), ("04.00", -1000), ("03.01", 0)])
def test_import_safe_zip_l2a(tmp_path, safe_arrays, baseline, offset):
    z = fs.make_safe_zip(tmp_path / "p.zip", safe_arrays, A0, baseline=baseline)
    r = gdal_s2.import_safe(z, str(tmp_path / "s.tif"), str(tmp_path / "m.tif"), ["B02", "B03", "B04", "B08", "B11"])
    ds, a = read(tmp_path / "s.tif")
    assert gdal_io_names(ds) == ["B02", "B03", "B04", "B08", "B11"]
    assert (r["width"], r["height"], r["epsg"]) == (120, 120, 32632)
    assert ds.GetGeoTransform() == (600000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0)
    for i, b in enumerate(("B02", "B03", "B04", "B08")):
        assert np.array_equal(a[i], s2.harmonise(safe_arrays[b], offset)), b
    scl = np.repeat(np.repeat(safe_arrays["SCL"], 2, 0), 2, 1)
    assert np.array_equal(read(tmp_path / "m.tif")[1], s2.scl_mask(scl))
    assert r["scenes"][0].baseline == baseline
    assert ds.GetMetadataItem("SATCLASSIFY_SOURCE") == "SAFE"


def test_import_safe_l1c_folder_with_aoi(tmp_path, safe_arrays):
    arrays = {k: v for k, v in safe_arrays.items() if k != "SCL"}
    z = fs.make_safe_zip(tmp_path / "p.zip", arrays, A0, level="L1C", baseline="04.00", offset=-1000)
    with zipfile.ZipFile(z) as zf:
        zf.extractall(tmp_path / "x")
    folder = next((tmp_path / "x").iterdir())
    assert folder.name.endswith(".SAFE")
    r = gdal_s2.import_safe(
        str(folder),
        str(tmp_path / "s.tif"),
        str(tmp_path / "m.tif"),
        ["B04", "B08"],
        aoi_wkt=aoi(600100, 4999900, 600400, 4999700),
        clouds="none",
    )
    a = read(tmp_path / "s.tif")[1]
    assert np.array_equal(a[0], s2.harmonise(window(arrays["B04"], r["bounds"], A0), -1000))
    assert r["has_scl"] is False and read(tmp_path / "m.tif")[1].min() == 1  # no SCL: nodata rule only
    with pytest.raises(SatClassifyError, match=r"has no band SCL \(SCL exists only in L2A products\)"):
        gdal_s2.import_safe(str(folder), str(tmp_path / "t.tif"), None, ["B04", "SCL"])


def test_malicious_zip_rejected(tmp_path, safe_arrays):
    z = fs.make_safe_zip(tmp_path / "evil.zip", safe_arrays, A0, extra_entries=[("../../evil.txt", b"pwned")])
    with pytest.raises(
        SatClassifyError,
        match=r"unsafe archive 'evil.zip': entry '../../evil.txt' points outside "
        r"the product folder \(zip-slip\)",
    ):
        gdal_s2.import_safe(z, str(tmp_path / "out" / "s.tif"), None, ["B04"])
    z2 = tmp_path / "abs.zip"
    z2.write_bytes(fs.zip_bytes([("/etc/evil", b"x")]))
    with pytest.raises(SatClassifyError, match="unsafe archive 'abs.zip'"):
        gdal_s2.open_safe(str(z2))
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "evil.txt").exists()


def test_safe_errors(tmp_path, safe_arrays):
    z = tmp_path / "notsafe.zip"
    z.write_bytes(fs.zip_bytes([("a/readme.txt", b"x")]))
    with pytest.raises(SatClassifyError, match="holds no MTD_MSIL2A.xml or MTD_MSIL1C.xml"):
        gdal_s2.open_safe(str(z))
    with pytest.raises(SatClassifyError, match="does not exist"):
        gdal_s2.open_safe(str(tmp_path / "missing.zip"))
    # an IMAGE_FILE listed but absent
    good = fs.make_safe_zip(tmp_path / "g.zip", safe_arrays, A0)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(tmp_path / "cut.zip", "w") as dst:
        for n in src.namelist():
            if not n.endswith("_B04_10m.jp2"):
                dst.writestr(n, src.read(n))
    with pytest.raises(
        SatClassifyError,
        match=r"'cut.zip' is incomplete: GRANULE/.*_B04_10m.jp2 listed in the "
        r"metadata is missing",
    ):
        gdal_s2.open_safe(str(tmp_path / "cut.zip"))
    bad = tmp_path / "badxml.zip"
    bad.write_bytes(fs.zip_bytes([("X.SAFE/MTD_MSIL2A.xml", b"<n1:Level-2A_User_Product")]))
    with pytest.raises(SatClassifyError, match="MTD_MSIL.*is not valid XML"):
        gdal_s2.open_safe(str(bad))


def test_parse_product_mtd_real_fields():
    xml = fs.mtd_xml(
        "L2A", "05.09", ["GRANULE/L2A_T32TQM_A1_2/IMG_DATA/R10m/T32TQM_20230601T101559_B04_10m"], offset=-1000
    ).encode()
    m = gdal_s2.parse_product_mtd(xml)
    assert m["level"] == "L2A" and m["baseline"] == "05.09" and m["platform"] == "sentinel-2b"
    assert m["offsets"]["B04"] == -1000 and m["offsets"]["B12"] == -1000 and len(m["offsets"]) == 13
    assert m["cloud"] == 12.5 and m["quantification"] == 10000.0


def test_gdal_remote_config_restores(monkeypatch):
    monkeypatch.setenv("SATCLASSIFY_HTTP_TIMEOUT", "30")
    keys = (
        "GDAL_DISABLE_READDIR_ON_OPEN",
        "GDAL_HTTP_MAX_RETRY",
        "GDAL_HTTP_TIMEOUT",
        "GDAL_HTTP_LOW_SPEED_TIME",
        "GDAL_HTTP_LOW_SPEED_LIMIT",
        "GDAL_HTTP_CONNECTTIMEOUT",
    )
    before = {k: gdal.GetConfigOption(k) for k in keys}
    with gdal_s2.gdal_remote_config(GDAL_HTTP_MAX_RETRY=7):
        assert gdal.GetConfigOption("GDAL_DISABLE_READDIR_ON_OPEN") == "EMPTY_DIR"
        assert gdal.GetConfigOption("GDAL_HTTP_MAX_RETRY") == "7"
        assert [gdal.GetConfigOption(k) for k in keys[2:]] == ["30", "15", "1024", "10"]
    assert {k: gdal.GetConfigOption(k) for k in keys} == before
    assert gdal.GetConfigOption("GDAL_HTTP_MAX_RETRY") is None and gdal.GetConfigOption("GDAL_HTTP_TIMEOUT") is None
