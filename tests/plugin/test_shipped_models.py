"""The shipped Processing models: installed into the user's models folder, listed by the model
provider, and runnable through processing.run."""
import json
import os

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingFeedback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAINING_MODEL = "model:Sentinel-2 + CLC -> training dataset"
AOI_MODEL = "model:Classify Sentinel-2 AOI with model"


def _dest(alg, suffix):
    """Name of the model's destination parameter for the output ``suffix`` (childId:name in QGIS 3.22)."""
    names = [d.name() for d in alg.destinationParameterDefinitions() if d.name().split(":")[-1] == suffix]
    assert len(names) == 1, [d.name() for d in alg.destinationParameterDefinitions()]
    return names[0]


def test_models_installed_and_listed(plugin):
    folder = plugin.models_folder()
    for name in ("satclassify_training_dataset.model3", "satclassify_classify_aoi.model3"):
        assert os.path.exists(os.path.join(folder, name))
    registry = QgsApplication.processingRegistry()
    for alg_id in (TRAINING_MODEL, AOI_MODEL):
        alg = registry.algorithmById(alg_id)
        assert alg is not None, alg_id
        # every step refers to a tool the provider really has, with parameters that tool declares
        for child in alg.childAlgorithms().values():
            tool = registry.algorithmById(child.algorithmId())
            assert tool is not None, child.algorithmId()
            declared = {d.name() for d in tool.parameterDefinitions()}
            assert set(child.parameterSources()) <= declared, (child.algorithmId(), set(child.parameterSources()))


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    import sys
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from make_sample import make_sample
    return make_sample(str(tmp_path_factory.mktemp("sample")), size=192, seed=3)


def test_training_dataset_model_runs(plugin, sample, tmp_path):
    import processing
    image, clc = sample
    alg = QgsApplication.processingRegistry().algorithmById(TRAINING_MODEL)
    folder = str(tmp_path / "dataset")
    labels = str(tmp_path / "labels.tif")
    res = processing.run(TRAINING_MODEL, {"IMAGE": image, "CLC": clc, "LEVEL": 1, "PATCH_SIZE": 32,
                                          _dest(alg, "labels"): labels, _dest(alg, "dataset"): folder},
                         context=QgsProcessingContext(), feedback=QgsProcessingFeedback())
    assert os.path.samefile(res[_dest(alg, "dataset")], folder)
    with open(os.path.join(folder, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["patch_size"] == 32
    # labels are CLC level 2 on the image grid
    img, lab = gdal.Open(image), gdal.Open(labels)
    assert lab.GetGeoTransform() == img.GetGeoTransform()
    assert (lab.RasterXSize, lab.RasterYSize) == (img.RasterXSize, img.RasterYSize)
    values = set(np.unique(lab.ReadAsArray()).tolist()) - {0}
    level2 = {c["value"] for c in manifest["classes"]}
    assert values and values <= level2
    assert manifest["splits"]["train"]["patches"] > 0
    assert manifest["bands"] == ["B02", "B03", "B04", "B08"]
