"""End to end on the profile-only scene: search -> multi-date fetch (local STAC fake) -> buildpatches -> U-TAE
training and export in the training env (SATCLASSIFY_TRAIN_PYTHON) -> classify, through processing.run and once
through qgis_process. Classes differ only in their seasonal profile (tests/timeseries_scene.py)."""

import os
import subprocess

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException

from satclassify_plugin.core.contract.timeseries import parse_stack
from tests import timeseries_scene as tss
from tests.rasters import make_class_raster

from ..sentinel_helpers import band_names, utm_extent
from ..timeseries_helpers import ORIGIN, add_date, block_valid, series_server

TRAIN_PY = os.environ.get("SATCLASSIFY_TRAIN_PYTHON")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
pytestmark = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.skipif(
        not TRAIN_PY, reason="SATCLASSIFY_TRAIN_PYTHON is not set (scripts/test.sh sets it to .venv-train/bin/python)"
    ),
]
S = 192  # scene edge in 10 m pixels: 36 patches of 32 x 32
AOI = utm_extent(ORIGIN[0], ORIGIN[1] - S * 10, ORIGIN[0] + S * 10, ORIGIN[1])


@pytest.fixture(scope="module")
def world():
    """The STAC fake serving the scene's six dates (clouds as SCL 9 in 2 x 2 blocks) and the truth."""
    scene = tss.profile_scene(size=S, seed=11, cloud=0.0)
    rng = np.random.default_rng(4)
    srv = series_server()
    valids = []
    for k, date in enumerate(scene["dates"]):
        valid = block_valid(rng, S, S, 0.15)
        valids.append(valid)
        add_date(
            srv, f"S2A_32TQM_{date.replace('-', '')}_0_L2A", f"{date}T10:20:00Z", scene["dn"][k], valid, cloud=15.0
        )
    srv.scene, srv.valids = scene, valids
    yield srv
    srv.close()


def fetch(run_alg, srv, out, start="2023-03-01", end="2023-09-30"):
    return run_alg(
        "satclassify:fetchsentinel2",
        {
            "EXTENT": AOI,
            "START": start,
            "END": end,
            "MAX_CLOUD": 100,
            "SOURCE": 0,
            "URL": srv.url,
            "RETRIES": 1,
            "INTERVAL": 1,
            "BANDS": "B02,B03,B04,B08",
            "OUTPUT": str(out),
            "MASK": str(out).replace(".tif", "_m.tif"),
        },
    )


def _alg(alg_id, params):
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    return processing.run(alg_id, params, context=QgsProcessingContext(), feedback=QgsProcessingFeedback())


def _train(args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run(
        [TRAIN_PY, "-m", "training"] + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, f"{' '.join(args)} failed:\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def pipeline(world, tmp_path_factory, plugin):
    base = tmp_path_factory.mktemp("ts-e2e")
    res = {}
    found = _alg(
        "satclassify:searchsentinel2",
        {
            "EXTENT": AOI,
            "START": "2023-03-01",
            "END": "2023-09-30",
            "MAX_CLOUD": 100,
            "SOURCE": 0,
            "URL": world.url,
            "RETRIES": 1,
            "DATES": 6,
            "OUTPUT": str(base / "fp.gpkg"),
        },
    )
    res["count"] = found["COUNT"]
    res["fetch"] = fetch(_alg, world, base / "series.tif")
    stack = res["fetch"]["OUTPUT"]
    labels = make_class_raster(
        base / "labels.tif", world.scene["labels"], world.scene["classes"], origin=ORIGIN, epsg=32632, nodata=0
    )
    res["patches"] = _alg(
        "satclassify:buildpatches",
        {
            "IMAGE": stack,
            "LABELS": labels,
            "OUTPUT_FOLDER": str(base / "ds"),
            "PATCH_SIZE": 32,
            "STRIDE": 32,
            "BLOCK_SIZE": 1,
            "VAL_FRACTION": 0.25,
            "TEST_FRACTION": 0.0,
            "SEED": 1,
        },
    )
    cfg = base / "utae.yaml"
    cfg.write_text(
        "progress: false\nearly_stopping: 0\ntile_size: 64\nepochs: 15\nbatch_size: 4\nlr: 0.003\n"
        "utae_widths: [16, 32]\n"
    )
    _train(
        [
            "train",
            "--data",
            str(base / "ds"),
            "--model",
            "utae",
            "--device",
            "cpu",
            "--config",
            str(cfg),
            "--out",
            str(base / "run"),
        ]
    )
    res["onnx"] = str(base / "utae.onnx")
    _train(["export", "--checkpoint", str(base / "run" / "best.pt"), "--out", res["onnx"]])
    res.update(stack=stack, labels=labels, base=base)
    return res


def test_search_fetch_buildpatches(pipeline, world):
    import json

    assert pipeline["count"] == 6
    assert pipeline["fetch"]["DATES"] == ",".join(world.scene["dates"])  # July has no product: left out
    ds = gdal.Open(pipeline["stack"])
    lay = parse_stack(band_names(ds))
    assert lay.dates == world.scene["dates"] and ds.RasterCount == 30
    a = ds.ReadAsArray().reshape(6, 5, S, S)
    for k, valid in enumerate(world.valids):
        np.testing.assert_array_equal(a[k, 4], valid)
        np.testing.assert_array_equal(a[k, :4], np.where(valid > 0, world.scene["dn"][k], 0))
    ds = None
    with open(os.path.join(pipeline["base"], "ds", "manifest.json")) as f:
        man = json.load(f)
    ts = man["timeseries"]
    assert ts["dates"] == world.scene["dates"] and ts["doy"] == [tss.day_of_year(d) for d in ts["dates"]]
    assert ts["bands"] == ["B02", "B03", "B04", "B08"] and man["bands"] == band_names(gdal.Open(pipeline["stack"]))
    imgs = np.load(os.path.join(pipeline["base"], "ds", man["splits"]["train"]["shards"][0]["images"]), mmap_mode="r")
    assert imgs.shape[1:] == (30, 32, 32)  # = (T, C + 1, H, W) = (6, 5, 32, 32) flattened
    # a pixel cloudy on some dates keeps its label (masks: valid on at least one date)
    assert man["splits"]["train"]["patches"] + man["splits"]["val"]["patches"] == 36


def test_classify_with_the_trained_utae(pipeline, world, run_alg, tmp_path):
    out = str(tmp_path / "classes.tif")
    res = run_alg(
        "satclassify:classify", {"INPUT": pipeline["stack"], "MODEL": pipeline["onnx"], "OUTPUT": out, "DEVICE": 1}
    )
    ds = gdal.Open(res["OUTPUT"])
    cls = ds.ReadAsArray()
    assert ds.GetGeoTransform() == gdal.Open(pipeline["stack"]).GetGeoTransform()
    oa = float((cls == world.scene["labels"]).mean())
    print(f"end to end: U-TAE classify OA {oa:.3f} on the {S} x {S} profile-only scene")
    assert oa >= 0.9


def test_pixels_invalid_on_every_date_are_nodata(pipeline, world, run_alg, tmp_path):
    src = gdal.Open(pipeline["stack"])
    cut = str(tmp_path / "cut.tif")
    ds = gdal.Translate(cut, src)
    for k in range(6):  # no valid observation in the top-left 20 x 30 pixels, on any date
        for b in range(5):
            band = ds.GetRasterBand(k * 5 + b + 1)
            a = band.ReadAsArray()
            a[:20, :30] = 0
            band.WriteArray(a)
    ds = None
    res = run_alg(
        "satclassify:classify",
        {
            "INPUT": cut,
            "MODEL": pipeline["onnx"],
            "OUTPUT": str(tmp_path / "c.tif"),
            "CONFIDENCE": str(tmp_path / "conf.tif"),
            "DEVICE": 1,
        },
    )
    cls = gdal.Open(res["OUTPUT"]).ReadAsArray()
    conf = gdal.Open(str(tmp_path / "conf.tif")).ReadAsArray()
    assert (cls[:20, :30] == 0).all() and (conf[:20, :30] == 255).all()
    assert (cls[20:, :] > 0).all() and (cls[:, 30:] > 0).all()
    assert (cls[20:] == world.scene["labels"][20:]).mean() >= 0.9


def test_classify_refuses_a_stack_with_fewer_dates(pipeline, world, run_alg, tmp_path):
    short = fetch(run_alg, world, tmp_path / "short.tif", end="2023-05-31")
    assert short["DATES"] == "2023-03-15,2023-04-20,2023-05-25"
    with pytest.raises(QgsProcessingException) as e:
        run_alg(
            "satclassify:classify",
            {"INPUT": short["OUTPUT"], "MODEL": pipeline["onnx"], "OUTPUT": str(tmp_path / "c.tif")},
        )
    msg = str(e.value)
    assert "the stack has 3 date(s) (2023-03-15, 2023-04-20, 2023-05-25) but the model needs 6" in msg
    assert not (tmp_path / "c.tif").exists()


def test_classify_with_qgis_process(pipeline, world, tmp_path):
    out = tmp_path / "qp.tif"
    env = dict(os.environ, SATCLASSIFY_QGIS_CONFIG=str(tmp_path / "qgis-config"), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [
            os.path.join(ROOT, "scripts", "qgis_process.sh"),
            "run",
            "satclassify:classify",
            "--",
            f"INPUT={pipeline['stack']}",
            f"MODEL={pipeline['onnx']}",
            f"OUTPUT={out}",
            "DEVICE=1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "multi-date model: 6 dates" in proc.stdout
    cls = gdal.Open(str(out)).ReadAsArray()
    assert (cls == world.scene["labels"]).mean() >= 0.9


def test_multi_date_fetch_and_buildpatches_with_qgis_process(pipeline, world, tmp_path):
    """The same chain from a shell: the multi-date stack and dataset equal the processing.run ones."""
    import json

    env = dict(os.environ, SATCLASSIFY_QGIS_CONFIG=str(tmp_path / "qgis-config"), QT_QPA_PLATFORM="offscreen")

    def qp(alg, *args):
        proc = subprocess.run(
            [os.path.join(ROOT, "scripts", "qgis_process.sh"), "run", alg, "--", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return proc.stdout

    out = tmp_path / "qp_series.tif"
    qp(
        "satclassify:fetchsentinel2",
        f"EXTENT={AOI}",
        "START=2023-03-01",
        "END=2023-09-30",
        "MAX_CLOUD=100",
        "SOURCE=0",
        f"URL={world.url}",
        "RETRIES=1",
        "INTERVAL=1",
        "BANDS=B02,B03,B04,B08",
        f"OUTPUT={out}",
        f"MASK={tmp_path / 'qp_mask.tif'}",
    )
    a, b = gdal.Open(str(out)), gdal.Open(pipeline["stack"])
    assert band_names(a) == band_names(b) and a.GetGeoTransform() == b.GetGeoTransform()
    np.testing.assert_array_equal(a.ReadAsArray(), b.ReadAsArray())
    a = b = None
    qp(
        "satclassify:buildpatches",
        f"IMAGE={out}",
        f"LABELS={pipeline['labels']}",
        f"OUTPUT_FOLDER={tmp_path / 'ds'}",
        "PATCH_SIZE=32",
        "STRIDE=32",
        "BLOCK_SIZE=1",
        "VAL_FRACTION=0.25",
        "TEST_FRACTION=0",
        "SEED=1",
    )
    with open(tmp_path / "ds" / "manifest.json") as f:
        got = json.load(f)
    with open(os.path.join(pipeline["base"], "ds", "manifest.json")) as f:
        want = json.load(f)
    assert got["timeseries"] == want["timeseries"]
    assert {s: got["splits"][s]["patches"] for s in got["splits"]} == {
        s: want["splits"][s]["patches"] for s in want["splits"]
    }
