"""The shipped EuroSAT RGB model (satclassify_plugin/resources/onnx/eurosat_rgb_satimnet.onnx) on a Sentinel-2-like
stack: a georeferenced mosaic of real EuroSAT patches (../shared/data/eurosat_rgb) written as digital numbers (the
inverse of the RGB scaling), classified by satclassify:classifypatches with the model of the list (no file path).
Each 64 x 64 cell's class must equal what ``python -m training evaluate --model`` gives for that patch (training env,
SATCLASSIFY_TRAIN_PYTHON), and the cells must mostly be the patches' own classes."""

import csv
import os
import shutil
import sqlite3
import subprocess

import numpy as np
import pytest
from qgis.core import QgsVectorLayer

from tests.rasters import make_raster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data", "eurosat_rgb")
MODEL = os.path.join(ROOT, "satclassify_plugin", "resources", "onnx", "eurosat_rgb_satimnet.onnx")
TRAIN_PY = os.environ.get("SATCLASSIFY_TRAIN_PYTHON")
CLASSES = (
    "AnnualCrop",
    "Forest",
    "HerbaceousVegetation",
    "Highway",
    "Industrial",
    "Pasture",
    "PermanentCrop",
    "Residential",
    "River",
    "SeaLake",
)
PER_CLASS, COLS, P = 4, 8, 64


def test_the_eurosat_model_is_shipped_with_its_card():
    from satclassify_plugin.core.classify.inference import load_model

    assert os.path.isfile(MODEL), "the plugin ships its EuroSAT RGB model"
    assert os.path.getsize(MODEL) < 8 * 2**20
    card = load_model(MODEL, "CPU").card
    assert card.architecture == "cnn_class" and card.bands == ["B04", "B03", "B02"] and card.tile_size == P
    assert card.input_clip == [[0.0, 2750.0]] * 3 and card.resolution_m == 10.0
    assert [c.code for c in card.heads[0].classes] == list(CLASSES)
    ds = card.training["dataset"]
    assert ds["licence"] == "MIT" and "Helber" in ds["citation"] and ds["name"].startswith("EuroSAT")
    assert card.training["evaluation"]["float32"]["macro_f1"] >= 0.9665  # SatImNet's CNN-class figure
    from satclassify_plugin.install import model_catalogue as mc

    cat = mc.Catalogue(str(os.path.join(os.path.dirname(MODEL), "no-user-models")))
    assert cat.default_id() == "eurosat_rgb_satimnet"  # what classifypatches runs when no model is chosen
    text = mc.summary_text(mc.entry_summary(cat.get("eurosat_rgb_satimnet")))
    assert "Classes (10): Annual crop" in text and "B04 B03 B02 at 10 m" in text and "MIT" in text


@pytest.mark.skipif(not os.path.isdir(SHARED), reason=f"the shared EuroSAT RGB folder {SHARED} is absent")
@pytest.mark.skipif(not TRAIN_PY, reason="SATCLASSIFY_TRAIN_PYTHON is not set (scripts/test.sh sets it)")
def test_shipped_model_on_a_mosaic_of_real_patches_equals_evaluate(run_alg, tmp_path):
    from PIL import Image

    src = tmp_path / "src"
    names, tiles = [], []
    for c in CLASSES:
        os.makedirs(src / c)
        files = sorted(os.listdir(os.path.join(SHARED, c)))
        for f in files[7 : 7 + 97 * PER_CLASS : 97]:  # spread over the folder
            shutil.copy(os.path.join(SHARED, c, f), src / c / f)
            with Image.open(os.path.join(SHARED, c, f)) as im:
                rgb = np.asarray(im).transpose(2, 0, 1).astype(np.float64)
            names.append(f"{c}/{os.path.splitext(f)[0]}")
            tiles.append(np.maximum(np.rint(rgb * 2750 / 255), 1).astype(np.uint16))  # B04 B03 B02 as DN
    rows = len(tiles) // COLS
    mosaic = np.zeros((3, rows * P, COLS * P), np.uint16)
    for k, t in enumerate(tiles):
        r, c = divmod(k, COLS)
        mosaic[:, r * P : (r + 1) * P, c * P : (c + 1) * P] = t[::-1]  # the stack's band order B02 B03 B04
    stack = make_raster(tmp_path / "stack.tif", mosaic, band_names=["B02", "B03", "B04"])
    res = run_alg("satclassify:classifypatches", {"INPUT": stack, "OUTPUT": str(tmp_path / "grid.gpkg")})
    layer = QgsVectorLayer(res["OUTPUT"], "grid", "ogr")
    cells = {(f["row"], f["col"]): f["top_value"] for f in layer.getFeatures()}
    assert len(cells) == len(tiles) == rows * COLS

    env = dict(os.environ, PYTHONPATH=ROOT)
    for args in (
        ["import", "eurosat", str(src), "--out", str(tmp_path / "ds"), "--val-fraction", "0", "--test-fraction", "0"],
        [
            "evaluate",
            "--model",
            MODEL,
            "--data",
            str(tmp_path / "ds"),
            "--split",
            "all",
            "--out",
            str(tmp_path / "m.json"),
            "--predictions",
            str(tmp_path / "pred.csv"),
        ],
    ):
        p = subprocess.run([TRAIN_PY, "-m", "training", *args], cwd=ROOT, env=env, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
    con = sqlite3.connect(str(tmp_path / "ds" / "patches.gpkg"))
    rows_db = con.execute('SELECT source, split, shard, "index" FROM patches').fetchall()
    where = {(s, int(sh), int(i)): n for n, s, sh, i in rows_db}
    con.close()
    with open(tmp_path / "pred.csv") as f:
        evaluated = {
            where[(r["split"], int(r["shard"]), int(r["index"]))]: (int(r["reference"]), int(r["predicted"]))
            for r in csv.DictReader(f)
        }
    assert len(evaluated) == len(names)
    right = 0
    for k, name in enumerate(names):
        ref, pred = evaluated[name]
        assert cells[divmod(k, COLS)] == pred, name  # the plugin's cell = evaluate's patch
        assert ref == CLASSES.index(name.split("/")[0]) + 1
        right += pred == ref
    print(f"{right} of {len(names)} cells are their patch's class")
    assert right >= 0.9 * len(names)  # real patches, mostly seen in training: a sanity floor, not the accuracy
