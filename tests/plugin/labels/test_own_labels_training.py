"""Own labels through the whole chain: crop parcels with text codes and with integer codes (generated here) ->
satclassify:rasterizelabels -> satclassify:buildpatches -> a tiny training in the training env (U-Net) -> the model
card carries the parcels' own legend; points -> a patch-label dataset -> a tiny cnn_class training.

Needs SATCLASSIFY_TRAIN_PYTHON (scripts/test.sh sets it to .venv-train/bin/python)."""

import json
import os
import subprocess

import numpy as np
import pytest
from osgeo import ogr

from satclassify_plugin.core.contract.dataset import Dataset

from .test_rasterize_labels import PIX, TEXT_CODES, X0, Y0, _grid_truth, image, make_points, parcel_layer

TRAIN_PY = os.environ.get("SATCLASSIFY_TRAIN_PYTHON")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
pytestmark = pytest.mark.skipif(
    not TRAIN_PY, reason="SATCLASSIFY_TRAIN_PYTHON is not set (scripts/test.sh sets it to .venv-train/bin/python)"
)


def _train_env(args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run(
        [TRAIN_PY, "-m", "training"] + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, f"{' '.join(args)} failed:\n{r.stderr[-3000:]}"
    return r.stdout


@pytest.mark.parametrize("kind", ["text", "integer"])
def test_parcels_rasterize_build_patches_and_train(run_alg, tmp_path, kind):
    as_int = {"WWH": 3110, "MAI": 1100, "GRA": 41, "RAP": 450, "XYZ": 7}
    codes = TEXT_CODES if kind == "text" else [None if c is None else as_int[c] for c in TEXT_CODES]
    src = parcel_layer(tmp_path / "lpis.gpkg", codes, ogr.OFTString if kind == "text" else ogr.OFTInteger)
    table = tmp_path / "crops.csv"
    if kind == "text":
        table.write_text(
            "code,value,name,colour\nWWH,1,Winter wheat,#f5deb3\nMAI,2,Maize,#ffd700\n"
            "GRA,3,Grassland,#7cfc00\nRAP,4,Rapeseed,#ffff00\nXYZ,5,Other,#808080\n",
            encoding="utf-8",
        )
        params = {"CLASS_TABLE": str(table)}
        values = {"WWH": 1, "MAI": 2, "GRA": 3, "RAP": 4, "XYZ": 5}
    else:
        params = {}  # derived: 7, 41, 450, 1100, 3110 -> 1..5
        values = {7: 1, 41: 2, 450: 3, 1100: 4, 3110: 5}
    truth = _grid_truth(codes, values)
    img = image(tmp_path / "s2.tif", truth.astype(np.int64), seed=1)
    lab = run_alg(
        "satclassify:rasterizelabels",
        {"INPUT": src, "FIELD": "crop", "REFERENCE": img, "RULE": 2, "OUTPUT": str(tmp_path / "labels.tif"), **params},
    )
    assert lab["NULL_FEATURES"] == 1
    res = run_alg(
        "satclassify:buildpatches",
        {
            "IMAGE": img,
            "LABELS": lab["OUTPUT"],
            "PATCH_SIZE": 32,
            "STRIDE": 16,
            "BLOCK_SIZE": 1,
            "VAL_FRACTION": 0.2,
            "TEST_FRACTION": 0.0,
            "MIN_LABELLED": 0.5,
            "SEED": 3,
            "OUTPUT_FOLDER": str(tmp_path / "ds"),
        },
    )
    ds = Dataset(res["OUTPUT_FOLDER"])
    want_codes = [str(c) for c in sorted(values, key=values.get)]
    assert [c["code"] for c in ds.classes] == want_codes  # the parcels' own legend, codes kept
    if kind == "text":
        assert [c["name"] for c in ds.classes][:2] == ["Winter wheat", "Maize"]
        assert ds.manifest["class_table"]["source"] == "class table 'crops.csv'"
    else:
        assert ds.manifest["class_table"]["derived"] is True
    cfg = tmp_path / "unet.yaml"
    cfg.write_text(
        "progress: false\nearly_stopping: 0\ntile_size: 96\nencoder: resnet18\n"
        "decoder_channels: [16, 16, 8, 8, 8]\nepochs: 1\nbatch_size: 4\n"
    )
    _train_env(
        [
            "train",
            "--data",
            res["OUTPUT_FOLDER"],
            "--model",
            "unet",
            "--device",
            "cpu",
            "--config",
            str(cfg),
            "--out",
            str(tmp_path / "run"),
        ]
    )
    onnx_path = str(tmp_path / "m.onnx")
    _train_env(["export", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--out", onnx_path, "--no-check"])
    import onnxruntime as ort

    card = json.loads(
        ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        .get_modelmeta()
        .custom_metadata_map["satclassify"]
    )
    assert [(c["value"], c["code"]) for c in card["heads"][0]["classes"]] == [
        (c["value"], c["code"]) for c in ds.classes
    ]


def test_points_patch_dataset_trains_a_patch_classifier(run_alg, tmp_path):
    rng = np.random.default_rng(4)
    truth = np.zeros((96, 128), np.int64)
    truth[:, 64:] = 1
    truth[48:, :] = 2
    img = image(tmp_path / "s2.tif", truth, seed=2)
    names = {0: "bare", 1: "forest", 2: "crop"}
    feats = []
    for _ in range(60):
        r, c = int(rng.integers(8, 88)), int(rng.integers(8, 120))
        feats.append((f"POINT({X0 + (c + 0.5) * PIX} {Y0 - (r + 0.5) * PIX})", {"crop": names[int(truth[r, c])]}))
    src = make_points(tmp_path / "pts.gpkg", feats)
    lab = run_alg(
        "satclassify:rasterizelabels",
        {"INPUT": src, "FIELD": "crop", "REFERENCE": img, "OUTPUT": str(tmp_path / "pts.tif")},
    )
    res = run_alg(
        "satclassify:buildpatches",
        {
            "IMAGE": img,
            "LABELS": lab["OUTPUT"],
            "PATCH_SIZE": 16,
            "BLOCK_SIZE": 2,
            "VAL_FRACTION": 0.2,
            "TEST_FRACTION": 0.0,
            "SEED": 1,
            "OUTPUT_FOLDER": str(tmp_path / "ds"),
        },
    )
    ds = Dataset(res["OUTPUT_FOLDER"])
    assert ds.task == "singlelabel" and res["TRAIN_COUNT"] > 10 and res["VAL_COUNT"] > 0
    _train_env(
        [
            "train",
            "--data",
            res["OUTPUT_FOLDER"],
            "--model",
            "cnn_class",
            "--encoder",
            "resnet18",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--device",
            "cpu",
            "--no-progress",
            "--early-stopping",
            "0",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert os.path.isfile(tmp_path / "run" / "best.pt")
