"""Proxies (issue 26): QGIS's proxy settings reach the plugin's searches, downloads and GDAL /vsicurl/ reads;
headless, the standard variables do. A forwarding proxy on 127.0.0.1 (fake_servers.ForwardingProxy) records
every request it forwards to the local fakes. No internet."""

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsSettings

from satclassify_plugin.algorithms._network import qgis_proxy
from satclassify_plugin.core.contract.errors import SatClassifyError
from satclassify_plugin.core.net import HttpClient, ProxyConfig
from satclassify_plugin.core.s2.stack import gdal_remote_config

from .. import fake_servers as fs
from ..sentinel_helpers import ID_A, LogFeedback, basic_authcfg, two_tile_stac, utm_extent

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

KEYS = (
    "proxyEnabled",
    "proxyType",
    "proxyHost",
    "proxyPort",
    "proxyUser",
    "proxyPassword",
    "noProxyUrls",
    "proxyExcludedUrls",
    "authcfg",
)
GDAL_PROXY_KEYS = ("GDAL_HTTP_PROXY", "GDAL_HTTPS_PROXY", "GDAL_HTTP_PROXYUSERPWD")


@pytest.fixture(autouse=True)
def _no_proxy_from_the_environment(monkeypatch):
    """The machine's own proxy variables must not decide these tests (curl reads them too)."""
    for k in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(k, raising=False)
        monkeypatch.delenv(k.upper(), raising=False)
    gdal.VSICurlClearCache()  # GDAL keeps what it read of a URL: each test must read through the network again


@pytest.fixture
def qgis_settings():
    """QGIS's proxy settings, restored after the test."""
    s = QgsSettings()
    old = {k: s.value(f"proxy/{k}") for k in KEYS if s.contains(f"proxy/{k}")}

    def set_proxy(enabled=True, kind="HttpProxy", host="127.0.0.1", port=0, **more):
        for k in KEYS:
            s.remove(f"proxy/{k}")
        s.setValue("proxy/proxyEnabled", enabled)
        s.setValue("proxy/proxyType", kind)
        s.setValue("proxy/proxyHost", host)
        s.setValue("proxy/proxyPort", str(port))
        for k, v in more.items():
            s.setValue(f"proxy/{k}", v)

    yield set_proxy
    for k in KEYS:
        s.remove(f"proxy/{k}")
    for k, v in old.items():
        s.setValue(f"proxy/{k}", v)


@pytest.fixture(scope="module")
def stac():
    srv = two_tile_stac(21, 22)
    yield srv
    srv.close()


@pytest.fixture
def proxy():
    p = fs.ForwardingProxy()
    yield p
    p.close()


def common(stac, **kw):
    p = {
        "START": "2023-05-01",
        "END": "2023-06-30",
        "MAX_CLOUD": 100,
        "SOURCE": 0,
        "URL": stac.url,
        "RETRIES": 1,
        "EXTENT": utm_extent(603000, 4999500, 603500, 4999000),
    }
    p.update(kw)
    return p


# ------------------------------------------------------------------------------------------------- QGIS tools


def test_search_goes_through_qgis_proxy_and_not_when_disabled(run_alg, stac, proxy, qgis_settings):
    qgis_settings(port=proxy.port)
    fb = LogFeedback()
    res = run_alg("satclassify:searchsentinel2", common(stac, OUTPUT="TEMPORARY_OUTPUT"), feedback=fb)
    assert res["COUNT"] == 2 and res["BEST_ITEMS"] == ID_A
    urls = proxy.urls()
    assert stac.url + "/search" in [u.split("?")[0] for u in urls], urls  # the STAC search passed the proxy
    assert all(u.startswith(stac.url) for u in urls)
    assert f"network: through the proxy 127.0.0.1:{proxy.port} (QGIS proxy settings" in fb.text
    proxy.clear()
    qgis_settings(enabled=False, port=proxy.port)
    fb = LogFeedback()
    res = run_alg("satclassify:searchsentinel2", common(stac, OUTPUT="TEMPORARY_OUTPUT"), feedback=fb)
    assert res["COUNT"] == 2 and proxy.urls() == [] and "through the proxy" not in fb.text


def test_fetch_reads_bands_through_qgis_proxy_and_restores_gdal(run_alg, stac, proxy, qgis_settings, tmp_path):
    """The search (pystac-client) and GDAL's /vsicurl/ range reads of the COGs both pass the proxy; the GDAL
    proxy options exist only during the reads; the stack equals the one read directly."""
    qgis_settings(port=proxy.port)
    before = {k: gdal.GetConfigOption(k) for k in GDAL_PROXY_KEYS}
    res = run_alg(
        "satclassify:fetchsentinel2",
        common(stac, ITEM=ID_A, BANDS="B04,B08", OUTPUT=str(tmp_path / "p.tif"), MASK=str(tmp_path / "pm.tif")),
    )
    paths = [u.split("?")[0][len(stac.url) :] for u in proxy.urls()]
    assert "/search" in paths
    assert {"/data/A/B04.tif", "/data/A/B08.tif", "/data/A/SCL.tif"} <= set(paths), paths  # GDAL's range reads
    assert {k: gdal.GetConfigOption(k) for k in GDAL_PROXY_KEYS} == before == {k: None for k in GDAL_PROXY_KEYS}
    proxy.clear()
    qgis_settings(enabled=False)
    run_alg(
        "satclassify:fetchsentinel2",
        common(stac, ITEM=ID_A, BANDS="B04,B08", OUTPUT=str(tmp_path / "d.tif"), MASK=str(tmp_path / "dm.tif")),
    )
    assert proxy.urls() == []
    assert np.array_equal(gdal.Open(res["OUTPUT"]).ReadAsArray(), gdal.Open(str(tmp_path / "d.tif")).ReadAsArray())


def test_no_proxy_urls_are_reached_directly(run_alg, stac, proxy, qgis_settings):
    qgis_settings(port=proxy.port, noProxyUrls=[stac.url])
    res = run_alg("satclassify:searchsentinel2", common(stac, OUTPUT="TEMPORARY_OUTPUT"))
    assert res["COUNT"] == 2 and proxy.urls() == []


def test_proxy_login_from_qgis_authcfg_is_used_and_never_shown(run_alg, stac, qgis_settings, tmp_path):
    secret = "pr0xy-S3cret"
    p = fs.ForwardingProxy(login=("alice", secret))
    try:
        qgis_settings(port=p.port, authcfg=basic_authcfg("alice", secret, "proxy login"))
        fb = LogFeedback()
        res = run_alg(
            "satclassify:fetchsentinel2",
            common(stac, ITEM=ID_A, BANDS="B04", OUTPUT=str(tmp_path / "s.tif")),
            feedback=fb,
        )
        assert gdal.Open(res["OUTPUT"]).RasterCount == 1
        assert "/data/A/B04.tif" in [u[len(stac.url) :] for u in p.urls("GET")]  # GDAL sent the login too
        assert secret not in fb.text
        # a wrong password: a 407 named as a proxy problem, the password masked
        qgis_settings(port=p.port, proxyUser="alice", proxyPassword="wrong-pass")
        fb = LogFeedback()
        with pytest.raises(QgsProcessingException) as e:
            run_alg("satclassify:searchsentinel2", common(stac, OUTPUT="TEMPORARY_OUTPUT"), feedback=fb)
        assert "Proxy Authentication Required" in str(e.value) or "407" in str(e.value), str(e.value)
        assert "wrong-pass" not in str(e.value) + fb.text
    finally:
        p.close()


def test_qgis_proxy_settings_are_read_like_qgis(qgis_settings):
    qgis_settings(enabled=False)
    assert qgis_proxy() is None
    qgis_settings(
        port=3128,
        host="proxy.example",
        proxyUser="bob",
        proxyPassword="pw:1",
        noProxyUrls=["http://intranet"],
        proxyExcludedUrls=["http://legacy"],
    )
    cfg = qgis_proxy()
    assert cfg.proxy_for("https://earth-search.example/v1") == "http://bob:pw%3A1@proxy.example:3128"
    assert cfg.proxy_for("http://intranet/x") == ""
    assert cfg.gdal_options() == {
        "GDAL_HTTP_PROXY": "proxy.example:3128",
        "GDAL_HTTPS_PROXY": "proxy.example:3128",
        "GDAL_HTTP_PROXYUSERPWD": "bob:pw:1",
    }
    qgis_settings(kind="HttpCachingProxy", port=8080, host="cache.example")
    cfg = qgis_proxy()
    assert cfg.proxy_for("http://a.example/") == "http://cache.example:8080" and cfg.proxy_for("https://a/") == ""
    qgis_settings(kind="FtpCachingProxy", port=21, host="ftp.example")
    assert not qgis_proxy() and qgis_proxy() is not None  # QGIS's own choice: no proxy for http(s)
    qgis_settings(kind="Socks5Proxy", port=1080, host="socks.example")
    assert qgis_proxy().https == "socks5h://socks.example:1080"


# ------------------------------------------------------------------------------------------------- core


def test_gdal_vsicurl_read_through_the_proxy_is_scoped(stac, proxy):
    path = "/vsicurl/" + stac.url + "/data/A/B03.tif"
    http = HttpClient(proxy=ProxyConfig.from_url(proxy.url))
    with gdal_remote_config(**http.gdal_options([stac.url + "/data/A/B03.tif"])):
        assert gdal.GetConfigOption("GDAL_HTTP_PROXY") == f"127.0.0.1:{proxy.port}"
        ds = gdal.Open(path)
        a = ds.GetRasterBand(1).ReadAsArray(0, 0, 64, 64)
        ds = None
    assert np.array_equal(a, stac.arrays["A"]["B03"][:64, :64])
    assert stac.url + "/data/A/B03.tif" in proxy.urls()
    assert all(gdal.GetConfigOption(k) is None for k in GDAL_PROXY_KEYS)
    # the reads of URLs the proxy excludes get no proxy options
    direct = ProxyConfig.from_url(proxy.url, no_proxy=["127.0.0.1"])
    assert HttpClient(proxy=direct).gdal_options([stac.url + "/x.tif"]).get("GDAL_HTTP_PROXY") is None


def test_client_requests_and_downloads_go_through_the_proxy(proxy, tmp_path):
    srv = fs.FakeServer()
    try:
        srv.route("GET", "/j", lambda req: (200, {}, {"ok": 1}))
        srv.files["/f.zip"] = b"z" * 5000
        http = HttpClient(proxy=ProxyConfig.from_url(f"127.0.0.1:{proxy.port}"))
        assert http.get_json(srv.url + "/j") == {"ok": 1}
        http.download(srv.url + "/f.zip", str(tmp_path / "f.zip"), expected_size=5000)
        assert (tmp_path / "f.zip").read_bytes() == b"z" * 5000
        assert proxy.urls() == [srv.url + "/j", srv.url + "/f.zip"]
        assert [p for _, p, _, _ in srv.log] == ["/j", "/f.zip"]  # the server saw the proxy's requests only
    finally:
        srv.close()


def test_headless_honours_the_standard_variables(proxy, monkeypatch):
    srv = fs.FakeServer()
    try:
        srv.route("GET", "/j", lambda req: (200, {}, {"ok": 2}))
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        http = HttpClient()
        assert http.get_json(srv.url + "/j") == {"ok": 2} and proxy.urls() == [srv.url + "/j"]
        assert http.gdal_options()["GDAL_HTTP_PROXY"] == f"127.0.0.1:{proxy.port}"
        proxy.clear()
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.0/8")
        assert HttpClient().get_json(srv.url + "/j") == {"ok": 2} and proxy.urls() == []
        # an explicit configuration (QGIS's) wins over the variables
        monkeypatch.delenv("NO_PROXY")
        assert HttpClient(proxy=ProxyConfig()).get_json(srv.url + "/j") == {"ok": 2} and proxy.urls() == []
    finally:
        srv.close()


def test_unreachable_proxy_is_named():
    http = HttpClient(retries=0, proxy=ProxyConfig.from_url("http://127.0.0.1:9"))
    with pytest.raises(
        SatClassifyError,
        match=r"cannot reach example.invalid through the proxy 127.0.0.1:9 .*check "
        r"the proxy settings \(QGIS: Settings > Options > Network",
    ):
        http.get_json("http://example.invalid/x")


def test_manage_models_add_from_url_goes_through_qgis_proxy(proxy, qgis_settings, tmp_path, monkeypatch):
    """Plugins > SatClassify > Manage models... > Add from URL downloads through QGIS's proxy too."""
    from satclassify_plugin.install import model_catalogue as mc
    from satclassify_plugin.install.models_dialog import ModelsDialog
    from tests import onnx_models as om

    path = om.patch_model(
        tmp_path / "remote.onnx", [[40.0, -40.0, 0.0, 0.0], [0.0, 0.0, 0.0, 12.0]], activation="softmax"
    )
    monkeypatch.setenv(mc.ENV_DIR, str(tmp_path / "user"))
    srv = fs.FakeServer()
    dlg = ModelsDialog(mc.Catalogue(str(tmp_path / "user")))
    try:
        with open(path, "rb") as f:
            srv.files["/m/remote.onnx"] = f.read()
        qgis_settings(port=proxy.port)
        e = dlg.add_url(srv.url + "/m/remote.onnx", mc.sha256_of(str(path)))
        assert e is not None and e.id == "remote", dlg.status.text()
        assert proxy.urls() == [srv.url + "/m/remote.onnx"]
    finally:
        dlg.close()
        srv.close()
