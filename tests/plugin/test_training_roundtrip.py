"""Cross-env round trip: train + export in the training env (subprocess), classify in QGIS.

Needs SATCLASSIFY_TRAIN_PYTHON (scripts/test.sh sets it to .venv-train/bin/python)."""

import os
import subprocess

import numpy as np
import pytest

from tests.rasters import make_raster

TRAIN_PY = os.environ.get("SATCLASSIFY_TRAIN_PYTHON")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.skipif(
    not TRAIN_PY, reason="SATCLASSIFY_TRAIN_PYTHON is not set (scripts/test.sh sets it to .venv-train/bin/python)"
)

BANDS = ["B02", "B03", "B04", "B08"]
MEANS = np.array([[800, 900, 700, 3000], [400, 600, 300, 4000], [600, 500, 300, 200]], dtype=np.float64)
CLASSES = [
    {"value": 1, "code": "211", "name": "Arable land", "color": "#ffffa8"},
    {"value": 2, "code": "311", "name": "Broad-leaved forest", "color": "#80ff00"},
    {"value": 3, "code": "512", "name": "Water bodies", "color": "#80f2e6"},
]


def _image(lab, rng):
    img = MEANS[lab - 1].transpose(2, 0, 1) + rng.normal(0, 120, (4,) + lab.shape)
    return np.clip(img, 1, 10000).astype(np.uint16)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from satclassify_plugin.core.contract.dataset import DatasetSpec, DatasetWriter

    rng = np.random.default_rng(0)
    folder = str(tmp_path_factory.mktemp("rt") / "ds")
    w = DatasetWriter(folder, DatasetSpec(BANDS, 32, CLASSES), overwrite=True)
    for split, n in (("train", 24), ("val", 6)):
        for _ in range(n):
            lab = np.ones((32, 32), np.uint8)
            a, b = np.sort(rng.integers(4, 28, 2))
            order = rng.permutation(3) + 1
            lab[:, :a], lab[:, a:b], lab[:, b:] = order
            if rng.random() < 0.5:
                lab = np.ascontiguousarray(lab.T)
            w.add(split, _image(lab, rng), lab)
    w.close({"resolution_m": 10.0})
    return folder


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    rng = np.random.default_rng(5)
    truth = np.ones((96, 128), np.uint8)
    truth[:, 40:90] = 2
    truth[60:, :] = 3
    truth[10:30, 100:120] = 3
    path = make_raster(tmp_path_factory.mktemp("scene") / "s2.tif", _image(truth, rng), band_names=BANDS)
    return path, truth


def _run(args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run(
        [TRAIN_PY, "-m", "training"] + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, f"{' '.join(args)} failed:\n{r.stderr[-3000:]}"
    return r


def _train_export(tmp_path, dataset, model, extra_yaml):
    cfg = tmp_path / f"{model}.yaml"
    cfg.write_text("progress: false\nearly_stopping: 0\ntile_size: 96\n" + extra_yaml)
    _run(
        [
            "train",
            "--data",
            dataset,
            "--model",
            model,
            "--device",
            "cpu",
            "--config",
            str(cfg),
            "--out",
            str(tmp_path / model),
        ],
        ROOT,
    )
    onnx_path = str(tmp_path / f"{model}.onnx")
    _run(["export", "--checkpoint", str(tmp_path / model / "best.pt"), "--out", onnx_path], ROOT)
    return onnx_path


def _direct(onnx_path, raster):
    """The model run on the whole raster at once with onnxruntime, standardised as the card says."""
    import onnxruntime as ort
    from osgeo import gdal

    from satclassify_plugin.core.contract.modelcard import card_from_metadata

    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    card = card_from_metadata(meta, [o.name for o in sess.get_outputs()], 4)
    ds = gdal.Open(raster)
    x = ds.ReadAsArray().astype(np.float64) * card.input_scale
    x = (x - np.array(card.mean)[:, None, None]) / np.array(card.std)[:, None, None]
    outs = sess.run(None, {"image": x[None].astype(np.float32)})
    return [np.array([c.value for c in h.classes])[o[0].argmax(0)] for h, o in zip(card.heads, outs)], card


def _read(path):
    from osgeo import gdal

    ds = gdal.Open(path)
    return ds.ReadAsArray(), ds.GetGeoTransform(), ds.GetProjection()


def _check_geo(out, raster):
    from osgeo import gdal, osr

    a, gt, wkt = _read(out)
    src = gdal.Open(raster)
    assert gt == src.GetGeoTransform()
    assert osr.SpatialReference(wkt).IsSame(osr.SpatialReference(src.GetProjection()))
    assert a.shape == (src.RasterYSize, src.RasterXSize)
    return a


def test_unet_roundtrip(dataset, scene, tmp_path, run_alg):
    raster, truth = scene
    model = _train_export(
        tmp_path,
        dataset,
        "unet",
        "encoder: resnet18\ndecoder_channels: [32, 16, 16, 8, 8]\nepochs: 6\nbatch_size: 4\nlr: 0.003\n",
    )
    (direct,), card = _direct(model, raster)
    assert card.architecture == "unet" and card.halo == 32
    res = run_alg("satclassify:classify", {"INPUT": raster, "MODEL": model, "OUTPUT": str(tmp_path / "u.tif")})
    cls = _check_geo(res["OUTPUT"], raster)
    assert set(np.unique(cls)) <= {1, 2, 3}
    # tiles of 96 with a 32-pixel halo vs one pass over the whole raster: same classes almost everywhere
    assert (cls == direct).mean() > 0.97
    assert (cls == truth).mean() > 0.8


def test_cnn_dual_roundtrip_two_heads(dataset, scene, tmp_path, run_alg):
    raster, truth = scene
    model = _train_export(tmp_path, dataset, "cnn_dual", "widths: {s1: 32, s2: 64, s3: 64, head: 64}\nepochs: 3\n")
    (fine, coarse), card = _direct(model, raster)
    assert [h.name for h in card.heads] == ["class", "coarse"] and card.halo == 2
    res = run_alg(
        "satclassify:classify",
        {"INPUT": raster, "MODEL": model, "OUTPUT": str(tmp_path / "f.tif"), "OUTPUT_2": str(tmp_path / "c.tif")},
    )
    f = _check_geo(res["OUTPUT"], raster)
    c = _check_geo(res["OUTPUT_2"], raster)
    # a 5x5 model with halo 2: tiled inference equals the whole-raster run pixel by pixel inside the raster
    inner = (slice(2, -2), slice(2, -2))
    np.testing.assert_array_equal(f[inner], fine[inner])
    np.testing.assert_array_equal(c[inner], coarse[inner])
    assert (f == truth).mean() > 0.9
    # coarse head = CLC level 1: 211 -> 2, 311 -> 3, 512 -> 5
    assert (c == np.array([0, 2, 3, 5])[truth]).mean() > 0.9
