"""A remote raster as a tool's input (issue 25 #15): ``/vsicurl/https://...`` or a plain URL of a GeoTIFF / COG
goes to GDAL itself (QGIS 3.22's qgis_process cannot load it as a layer: "Could not load source layer for INPUT"),
through QGIS's proxy when one is set; a URL GDAL cannot open is a clear parameter error."""

import json
import os
import subprocess

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsSettings

from tests import onnx_models as om
from tests.rasters import make_raster

from .. import fake_servers as fs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture
def served(tmp_path):
    raw = np.random.default_rng(7).integers(200, 5000, (4, 96, 80)).astype(np.uint16)
    local = make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4)
    srv = fs.FakeServer()
    with open(local, "rb") as f:
        srv.files["/cogs/s2.tif"] = f.read()
    gdal.VSICurlClearCache()
    yield {
        "local": str(local),
        "url": f"{srv.url}/cogs/s2.tif",
        "server": srv,
        "tmp": tmp_path,
    }
    srv.close()


def _classes(path):
    ds = gdal.Open(path)
    out = ds.ReadAsArray(), ds.GetGeoTransform(), ds.GetProjection()
    ds = None
    return out


def test_classify_reads_a_vsicurl_input_like_the_local_file(run_alg, served):
    t = served["tmp"]
    model = om.patch_model(t / "p.onnx", [[1.0, 0, 0, 0], [0, 1.0, 0, 0]], [0.0, 0.0])
    local = run_alg(
        "satclassify:classifypatches", {"INPUT": served["local"], "MODEL": model, "OUTPUT": str(t / "local.gpkg")}
    )
    for given in (f"/vsicurl/{served['url']}", served["url"]):
        res = run_alg(
            "satclassify:classifypatches", {"INPUT": given, "MODEL": model, "OUTPUT": str(t / f"r{len(given)}.gpkg")}
        )
        assert res["COUNT"] == local["COUNT"] > 0
    assert served["server"].bytes_served["/cogs/s2.tif"] > 0
    assert gdal.GetConfigOption("CPL_VSIL_CURL_ALLOWED_EXTENSIONS") is None  # the scope was restored


def test_classify_pixels_and_grid_of_a_remote_input(run_alg, served):
    t = served["tmp"]
    model = om.patch_model(t / "p.onnx", [[1.0, 0, 0, 0], [0, 1.0, 0, 0]], [0.0, 0.0])
    run_alg("satclassify:classify", {"INPUT": served["local"], "MODEL": model, "OUTPUT": str(t / "a.tif")})
    run_alg(
        "satclassify:classify",
        {
            "INPUT": f"/vsicurl/{served['url']}",
            "MODEL": model,
            "OUTPUT": str(t / "b.tif"),
            "EXTENT": "500000,500800,4999040,5000000 [EPSG:32632]",
        },
    )
    a, gt_a, wkt_a = _classes(str(t / "a.tif"))
    b, gt_b, wkt_b = _classes(str(t / "b.tif"))
    assert wkt_a == wkt_b and gt_b[1] == gt_a[1] and gt_b[5] == gt_a[5]
    # b covers the extent given in the raster's CRS: its pixels are a's pixels there
    col, row = round((gt_b[0] - gt_a[0]) / gt_a[1]), round((gt_b[3] - gt_a[3]) / gt_a[5])
    assert np.array_equal(b, a[row : row + b.shape[0], col : col + b.shape[1]])


def test_a_remote_input_gdal_cannot_open_is_a_clear_error(run_alg, served):
    t = served["tmp"]
    model = om.patch_model(t / "p.onnx", [[1.0, 0, 0, 0], [0, 1.0, 0, 0]], [0.0, 0.0])
    missing = served["url"].replace("s2.tif", "gone.tif")
    with pytest.raises(
        QgsProcessingException,
        match=r"INPUT: GDAL cannot open the remote raster '/vsicurl/http://"
        r"127\.0\.0\.1:\d+/cogs/gone\.tif'.*check the address",
    ):
        run_alg("satclassify:classify", {"INPUT": missing, "MODEL": model, "OUTPUT": str(t / "x.tif")})
    assert not os.path.exists(t / "x.tif")


def test_a_remote_input_is_read_through_qgis_proxy(run_alg, served, monkeypatch):
    for k in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(k, raising=False)
        monkeypatch.delenv(k.upper(), raising=False)
    t = served["tmp"]
    model = om.patch_model(t / "p.onnx", [[1.0, 0, 0, 0], [0, 1.0, 0, 0]], [0.0, 0.0])
    proxy = fs.ForwardingProxy()
    s = QgsSettings()
    keys = ("proxyEnabled", "proxyType", "proxyHost", "proxyPort")
    old = {k: s.value(f"proxy/{k}") for k in keys if s.contains(f"proxy/{k}")}
    try:
        for k, v in zip(keys, (True, "HttpProxy", "127.0.0.1", str(proxy.port))):
            s.setValue(f"proxy/{k}", v)
        run_alg("satclassify:classifypatches", {"INPUT": served["url"], "MODEL": model, "OUTPUT": str(t / "p.gpkg")})
        assert any(u.endswith("/cogs/s2.tif") for u in proxy.urls()), proxy.urls()
    finally:
        for k in keys:
            s.remove(f"proxy/{k}")
        for k, v in old.items():
            s.setValue(f"proxy/{k}", v)
        proxy.close()
    assert gdal.GetConfigOption("GDAL_HTTP_PROXY") is None


def test_qgis_process_classifies_a_remote_input(served):
    t = served["tmp"]
    model = om.patch_model(t / "p.onnx", [[1.0, 0, 0, 0], [0, 1.0, 0, 0]], [0.0, 0.0])
    env = dict(os.environ, SATCLASSIFY_QGIS_CONFIG=str(t / "qgis-config"), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [
            os.path.join(ROOT, "scripts", "qgis_process.sh"),
            "run",
            "satclassify:classify",
            "--json",
            "--",
            f"INPUT=/vsicurl/{served['url']}",
            f"MODEL={model}",
            f"OUTPUT={t / 'q.tif'}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    res = json.loads(proc.stdout[proc.stdout.index("{") :])
    a, _, _ = _classes(res["results"]["OUTPUT"])
    assert a.shape == (96, 80)
