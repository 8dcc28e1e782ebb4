"""The shipped models 'Classify -> reference sample design' and 'Land-cover change between two dates': listed,
built on declared parameters, and runnable through processing.run with a small ONNX model."""

import json
import os
from pathlib import Path

import numpy as np
from osgeo import gdal, ogr
from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingFeedback

from tests import onnx_models as om
from tests.rasters import make_raster

from .model_helpers import check_model_steps, model_dest

SAMPLE_MODEL = "model:Classify -> reference sample design"
CHANGE_MODEL = "model:Land-cover change between two dates"
FILES = ("satclassify_sampling_design.model3", "satclassify_change_two_dates.model3")


def test_models_installed_listed_and_built_on_declared_parameters(plugin):
    for name in FILES:
        assert os.path.exists(os.path.join(plugin.models_folder(), name))
    registry = QgsApplication.processingRegistry()
    steps = {}
    for alg_id in (SAMPLE_MODEL, CHANGE_MODEL):
        alg = registry.algorithmById(alg_id)
        assert alg is not None, alg_id
        steps[alg_id] = check_model_steps(registry, alg)  # tools the provider has, parameters they declare
    assert steps == {
        SAMPLE_MODEL: ["satclassify:classify", "satclassify:samplingdesign"],
        CHANGE_MODEL: ["satclassify:classify", "satclassify:classify", "satclassify:landcoverchange"],
    }


def image(path, b08):
    """A 4-band stack (B02 B03 B04 B08) whose B08 decides the class of the test model."""
    bands = np.full((4, 60, 60), 800, np.uint16)
    bands[3] = b08
    return make_raster(path, bands, band_names=["B02", "B03", "B04", "B08"])


def two_class_model(path):
    # class 1 where B08 reflectance < 0.1, class 2 above: logits 2 - 20 x and -2 + 20 x
    return om.linear_model(path, [[0, 0, 0, -20], [0, 0, 0, 20]], bias=[2, -2])


def run_model(alg_id, params, outs, tmp_path):
    import processing

    alg = QgsApplication.processingRegistry().algorithmById(alg_id)
    for key, name in outs.items():
        params[model_dest(alg, key)] = str(tmp_path / name)
    res = processing.run(alg_id, params, context=QgsProcessingContext(), feedback=QgsProcessingFeedback())
    return {key: res[model_dest(alg, key)] for key in outs}


def test_sampling_design_model_runs(plugin, tmp_path):
    b08 = np.full((60, 60), 500, np.uint16)
    b08[:, 40:] = 3000
    res = run_model(
        SAMPLE_MODEL,
        {
            "IMAGE": image(tmp_path / "img.tif", b08),
            "MODEL": two_class_model(tmp_path / "m.onnx"),
            "TARGET_SE": 0.05,
            "EXPECTED_UA": 0.8,
            "MIN_PER_CLASS": 10,
            "SEED": 2,
        },
        {"classes": "classes.tif", "sample_points": "points.gpkg", "strata": "strata.json"},
        tmp_path,
    )
    classes = gdal.Open(res["classes"]).ReadAsArray()
    assert (classes[:, :40] == 1).all() and (classes[:, 40:] == 2).all()
    meta = json.loads(Path(res["strata"]).read_text(encoding="utf-8"))
    assert [(s["value"], s["pixels"]) for s in meta["strata"]] == [(1, 2400), (2, 1200)]
    assert meta["design"]["n_from_target_se"] == 64  # (0.4 / 0.05)^2
    ds = ogr.Open(res["sample_points"])
    strata = [f.GetField("stratum") for f in ds.GetLayer(0)]
    ds = None
    assert len(strata) == 64 and sorted(set(strata)) == [1, 2]


def test_change_two_dates_model_runs(plugin, tmp_path):
    b1 = np.full((60, 60), 500, np.uint16)
    b1[:, 40:] = 3000
    b2 = b1.copy()
    b2[:30, :30] = 3000  # 9 ha of class 1 -> class 2
    res = run_model(
        CHANGE_MODEL,
        {
            "IMAGE_1": image(tmp_path / "d1.tif", b1),
            "IMAGE_2": image(tmp_path / "d2.tif", b2),
            "MODEL": two_class_model(tmp_path / "m.onnx"),
            "MMU": 5.0,
            "THRESHOLD": 80.0,
        },
        {
            "classes_1": "c1.tif",
            "classes_2": "c2.tif",
            "confidence_2": "conf2.tif",
            "from_to": "ft.tif",
            "change_matrix": "change.csv",
            "change_summary": "change.json",
            "change_polygons": "change.gpkg",
            "update_candidates": "candidates.gpkg",
        },
        tmp_path,
    )
    s = json.loads(Path(res["change_summary"]).read_text(encoding="utf-8"))
    assert s["matrix_pixels"] == [[1500, 900], [0, 1200]] and s["changed_ha"] == 9.0
    for key in ("change_polygons", "update_candidates"):
        ds = ogr.Open(res[key])
        feats = [(f.GetField("change"), f.GetField("area_ha")) for f in ds.GetLayer(0)]
        ds = None
        assert feats == [("class 1 -> class 2", 9.0)], key
    assert gdal.Open(res["confidence_2"]).ReadAsArray().min() >= 80
