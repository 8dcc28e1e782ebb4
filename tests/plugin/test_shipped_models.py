"""The shipped Processing models: installed into the user's models folder, listed by the model
provider, and runnable through processing.run."""

import json
import os

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingFeedback

from .model_helpers import check_model_steps, model_dest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAINING_MODEL = "model:Sentinel-2 + CLC -> training dataset"
AOI_MODEL = "model:Classify Sentinel-2 AOI with model"
LABELS_MODEL = "model:Sentinel-2 + own labels -> training dataset"


def test_models_installed_and_listed(plugin):
    folder = plugin.models_folder()
    for name in (
        "satclassify_training_dataset.model3",
        "satclassify_classify_aoi.model3",
        "satclassify_training_dataset_labels.model3",
    ):
        assert os.path.exists(os.path.join(folder, name))
    registry = QgsApplication.processingRegistry()
    for alg_id in (TRAINING_MODEL, AOI_MODEL, LABELS_MODEL):
        alg = registry.algorithmById(alg_id)
        assert alg is not None, alg_id
        check_model_steps(registry, alg)  # tools the provider has, parameters they declare


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
    res = processing.run(
        TRAINING_MODEL,
        {
            "IMAGE": image,
            "CLC": clc,
            "LEVEL": 1,
            "PATCH_SIZE": 32,
            model_dest(alg, "labels"): labels,
            model_dest(alg, "dataset"): folder,
        },
        context=QgsProcessingContext(),
        feedback=QgsProcessingFeedback(),
    )
    assert os.path.samefile(res[model_dest(alg, "dataset")], folder)
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


def test_own_labels_model_runs_the_lpis_route(plugin, tmp_path):
    """docs/training.md's LPIS route as written: crop parcels with text codes + a class table CSV -> the own-labels
    model (rasterizelabels, majority, on the stack's grid -> buildpatches) -> a dataset with the table's legend."""
    import processing
    from osgeo import ogr

    from .labels.test_rasterize_labels import TEXT_CODES, _grid_truth, image, parcel_layer

    src = parcel_layer(tmp_path / "lpis.gpkg", TEXT_CODES, ogr.OFTString)
    table = tmp_path / "crops.csv"
    table.write_text(
        "code,value,name\nWWH,1,Winter wheat\nMAI,2,Maize\nGRA,3,Grassland\nRAP,4,Rapeseed\n", encoding="utf-8"
    )
    values = {"WWH": 1, "MAI": 2, "GRA": 3, "RAP": 4}
    img = image(tmp_path / "s2.tif", _grid_truth(TEXT_CODES, values).astype(np.int64))
    alg = QgsApplication.processingRegistry().algorithmById(LABELS_MODEL)
    folder, labels = str(tmp_path / "dataset"), str(tmp_path / "labels.tif")
    res = processing.run(
        LABELS_MODEL,
        {
            "IMAGE": img,
            "LABELS": src,
            "FIELD": "crop",
            "CLASS_TABLE": str(table),
            "PATCH_SIZE": 8,
            model_dest(alg, "labels"): labels,
            model_dest(alg, "dataset"): folder,
        },
        context=QgsProcessingContext(),
        feedback=QgsProcessingFeedback(),
    )
    assert os.path.samefile(res[model_dest(alg, "dataset")], folder)
    np.testing.assert_array_equal(gdal.Open(labels).ReadAsArray(), _grid_truth(TEXT_CODES, values))
    with open(os.path.join(folder, "manifest.json")) as f:
        manifest = json.load(f)
    assert [(c["value"], c["code"], c["name"]) for c in manifest["classes"]] == [
        (1, "WWH", "Winter wheat"),
        (2, "MAI", "Maize"),
        (3, "GRA", "Grassland"),
        (4, "RAP", "Rapeseed"),
    ]
    assert manifest["patch_size"] == 8 and manifest["splits"]["train"]["patches"] > 0


@pytest.fixture(scope="module")
def stac():
    from . import fake_servers as fs
    from .sentinel_helpers import A0

    srv = fs.FakeServer()
    arr = fs.tile_arrays(21, 1024)
    assets = fs.make_cog_tile(srv, "A", arr, A0)
    srv.items = [
        fs.make_item(
            "S2A_32TQM_20230601_0_L2A",
            "2023-06-01T10:20:00Z",
            arr,
            A0,
            assets,
            cloud=5.0,
            baseline="05.10",
            applied=False,
        )
    ]
    fs.add_stac_api(srv, srv.items)
    yield srv
    srv.close()


def test_classify_aoi_model_runs_against_a_stac_server(plugin, stac, tmp_path):
    """fetch (local STAC fake) -> classify (small ONNX model) -> rasterize CLC -> assess, as one model."""
    import processing
    from osgeo import ogr

    from tests import onnx_models as om
    from tests.rasters import make_polygons

    from .sentinel_helpers import utm_extent

    alg = QgsApplication.processingRegistry().algorithmById(AOI_MODEL)
    x0, y0, x1, y1 = 602000, 4998000, 603000, 4999000
    # CLC: west half arable land (211 -> level 1 value 2), east half forest (311 -> value 3), in EPSG:32632
    half = (x0 + x1) // 2
    clc = make_polygons(
        tmp_path / "clc.gpkg",
        [
            (
                f"POLYGON(({x0 - 500} {y0 - 500},{half} {y0 - 500},{half} {y1 + 500},{x0 - 500} {y1 + 500},"
                f"{x0 - 500} {y0 - 500}))",
                {"code_18": "211"},
            ),
            (
                f"POLYGON(({half} {y0 - 500},{x1 + 500} {y0 - 500},{x1 + 500} {y1 + 500},{half} {y1 + 500},"
                f"{half} {y0 - 500}))",
                {"code_18": "311"},
            ),
        ],
        epsg=32632,
        fields={"code_18": ogr.OFTString},
    )
    # a 1x1 model with level-1 style classes 1..5 that always answers "forest" (value 3)
    model = om.linear_model(tmp_path / "m.onnx", np.zeros((5, 4)), bias=[0, 0, 5, 0, 0])
    params = {
        "EXTENT": utm_extent(x0, y0, x1, y1),
        "START": "2023-05-01",
        "END": "2023-06-30",
        "MAX_CLOUD": 50,
        "SOURCE": 0,
        "URL": stac.url,
        "MODEL": model,
        "CLC": clc,
        "LEVEL": 0,
    }
    outs = {
        "s2_stack": "s2.tif",
        "s2_mask": "mask.tif",
        "classes": "classes.tif",
        "reference": "ref.tif",
        "report": "report.html",
        "metrics": "metrics.json",
        "map": "map.tif",
        "map_polygons": "map.gpkg",
    }
    for key, name in outs.items():
        params[model_dest(alg, key)] = str(tmp_path / name)
    res = processing.run(AOI_MODEL, params, context=QgsProcessingContext(), feedback=QgsProcessingFeedback())
    stack = gdal.Open(res[model_dest(alg, "s2_stack")])
    assert [stack.GetRasterBand(i + 1).GetDescription() for i in range(stack.RasterCount)] == [
        "B02",
        "B03",
        "B04",
        "B08",
    ]
    gt = stack.GetGeoTransform()
    assert (gt[0], gt[3], stack.RasterXSize, stack.RasterYSize) == (x0, y1, 100, 100)
    classes = gdal.Open(res[model_dest(alg, "classes")]).ReadAsArray()
    assert (classes == 3).all()
    ref = gdal.Open(res[model_dest(alg, "reference")]).ReadAsArray()
    assert (ref[:, :50] == 2).all() and (ref[:, 50:] == 3).all()
    with open(res[model_dest(alg, "metrics")]) as f:
        metrics = json.load(f)
    # half the AOI is forest and predicted forest: OA 0.5 over the valid (mask) pixels
    valid = gdal.Open(res[model_dest(alg, "s2_mask")]).ReadAsArray() > 0
    expected = float(((ref == 3) & valid).sum()) / valid.sum()
    assert metrics["overall_accuracy"] == pytest.approx(expected, abs=1e-9)
    assert os.path.getsize(res[model_dest(alg, "report")]) > 1000
    # the generalised map (MMU 25 ha by default): the AOI (100 ha) is one polygon of the answered class
    assert (gdal.Open(res[model_dest(alg, "map")]).ReadAsArray() == 3).all()
    polys = ogr.Open(res[model_dest(alg, "map_polygons")])
    rows = [(f["value"], f["name"], round(f["area_ha"], 6)) for f in polys.GetLayer(0)]
    assert rows == [(3, "class 3", 100.0)]  # the model card's class names
