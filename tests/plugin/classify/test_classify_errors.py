"""satclassify:classify: every bad input stops with its exact message and leaves no output file."""

import os

import numpy as np
import pytest

from tests import onnx_models as om
from tests.rasters import make_raster

ALG = "satclassify:classify"


@pytest.fixture
def data(tmp_path):
    raw = np.random.default_rng(0).integers(10, 4000, (4, 30, 40)).astype(np.uint16)
    d = {
        "tmp": tmp_path,
        "s2": make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4),
        "lin": om.linear_model(tmp_path / "lin.onnx", np.eye(3, 4), card_kw={"tile_size": 16}),
        "conv": om.conv_model(tmp_path / "conv.onnx", layers=(3, 5)),
    }  # halo 3
    return d


def run_error(run_alg, params):
    from qgis.core import QgsProcessingException

    out = params.setdefault("OUTPUT", str(params.pop("_tmp") / "out.tif"))
    with pytest.raises(QgsProcessingException) as e:
        run_alg(ALG, params)
    assert not os.path.exists(out)
    assert not [f for f in os.listdir(os.path.dirname(out)) if ".part" in f]
    return str(e.value)


def test_wrong_band_count(run_alg, data):
    src = make_raster(data["tmp"] / "rgb.tif", np.ones((3, 10, 10), np.uint16) * 5)
    msg = run_error(run_alg, {"_tmp": data["tmp"], "INPUT": src, "MODEL": data["lin"]})
    assert msg == (
        "wrong band count: the model needs 4 bands (B02, B03, B04, B08) but the raster has 3 unnamed "
        "band(s); give BANDS (band numbers in the model's order) or use a stack with band names"
    )


def test_band_names_not_found(run_alg, data):
    src = make_raster(
        data["tmp"] / "s2b.tif", np.ones((4, 10, 10), np.uint16) * 5, band_names=["B02", "B03", "B04", "B05"]
    )
    msg = run_error(run_alg, {"_tmp": data["tmp"], "INPUT": src, "MODEL": data["lin"]})
    assert msg == (
        "model bands B08 not found in the raster: the model needs B02, B03, B04, B08, the raster's bands "
        "are 1:B02, 2:B03, 3:B04, 4:B05; give BANDS (numbers or names in the model's order)"
    )


def test_bands_parameter_errors(run_alg, data):
    msg = run_error(run_alg, {"_tmp": data["tmp"], "INPUT": data["s2"], "MODEL": data["lin"], "BANDS": "1,2,3"})
    assert msg == "BANDS lists 3 band(s) (1, 2, 3) but the model needs 4: B02, B03, B04, B08"
    msg = run_error(run_alg, {"_tmp": data["tmp"], "INPUT": data["s2"], "MODEL": data["lin"], "BANDS": "1 2 3 9"})
    assert msg == ("BANDS: band number 9 does not exist; the raster has 4 band(s) (1:B02, 2:B03, 3:B04, 4:B08)")
    msg = run_error(run_alg, {"_tmp": data["tmp"], "INPUT": data["s2"], "MODEL": data["lin"], "BANDS": "1 2 3 B8A"})
    assert msg == "BANDS: no raster band is named 'B8A'; the raster's bands are 1:B02, 2:B03, 3:B04, 4:B08"


def test_model_without_card(run_alg, data):
    model = om.linear_model(data["tmp"] / "nocard.onnx", np.eye(3, 4), with_card=False)
    msg = run_error(run_alg, {"_tmp": data["tmp"], "INPUT": data["s2"], "MODEL": model})
    assert msg == (
        "the model has no SatClassify model card: metadata key 'satclassify' is missing (and no Deepness "
        "keys model_type, class_names, resolution...). Export it with 'python -m training export', or add "
        "the card with training.card.write_card"
    )


def test_corrupt_model(run_alg, data):
    with open(data["lin"], "rb") as f:
        blob = f.read()
    bad = data["tmp"] / "corrupt.onnx"
    bad.write_bytes(blob[: len(blob) // 2])
    msg = run_error(run_alg, {"_tmp": data["tmp"], "INPUT": data["s2"], "MODEL": str(bad)})
    assert msg.startswith(
        "cannot load the ONNX model 'corrupt.onnx': the file is corrupt, truncated or uses "
        "operators this onnxruntime does not support ("
    )


def test_not_an_onnx_file(run_alg, data):
    bad = data["tmp"] / "notes.onnx"
    bad.write_text("this is a text file\n")
    msg = run_error(run_alg, {"_tmp": data["tmp"], "INPUT": data["s2"], "MODEL": str(bad)})
    assert msg == (
        "'notes.onnx' is not an ONNX file: choose a model exported to .onnx (e.g. with 'python -m training export')"
    )


def test_missing_model_file(run_alg, data):
    path = str(data["tmp"] / "nowhere.onnx")
    msg = run_error(run_alg, {"_tmp": data["tmp"], "INPUT": data["s2"], "MODEL": path})
    assert msg == f"model file '{path}' does not exist"


def test_extent_outside_raster(run_alg, data):
    msg = run_error(
        run_alg,
        {
            "_tmp": data["tmp"],
            "INPUT": data["s2"],
            "MODEL": data["lin"],
            "EXTENT": "600000,600100,4000000,4000100 [EPSG:32632]",
        },
    )
    assert msg == (
        "the extent (600000, 4e+06, 600100, 4.0001e+06) lies outside the raster (500000, 4.9997e+06, "
        "500400, 5e+06): choose an extent that overlaps the input layer"
    )


def test_geographic_crs_with_metric_model(run_alg, data):
    src = make_raster(
        data["tmp"] / "wgs84.tif",
        np.ones((4, 10, 10), np.uint16) * 5,
        origin=(10.0, 50.0),
        pixel=0.0001,
        epsg=4326,
        band_names=om.S2_BANDS4,
    )
    msg = run_error(run_alg, {"_tmp": data["tmp"], "INPUT": src, "MODEL": data["lin"]})
    assert msg == (
        "unsupported CRS units: the raster's CRS (WGS 84) is geographic (degrees) but the model expects "
        "10 m pixels; reproject the raster to a projected CRS in metres (e.g. UTM) first"
    )


def test_tile_smaller_than_two_halos(run_alg, data):
    msg = run_error(run_alg, {"_tmp": data["tmp"], "INPUT": data["s2"], "MODEL": data["conv"], "TILE_SIZE": 6})
    assert msg == (
        "tile size 6 is too small for the model's halo of 3 pixels: a tile must be larger than 2 x halo "
        "= 6; set TILE_SIZE to at least 7 (or 0 for the model's default)"
    )


def test_negative_batch_size(run_alg, data):
    msg = run_error(run_alg, {"_tmp": data["tmp"], "INPUT": data["s2"], "MODEL": data["lin"], "BATCH_SIZE": -1})
    # Processing checks the parameter's minimum (0 = default batch) before the tool runs
    assert msg == "Unable to execute algorithm\nIncorrect parameter value for BATCH_SIZE"


def test_core_batch_size_checks(data):
    from satclassify_plugin.core.classify.options import ClassifyOptions
    from satclassify_plugin.core.classify.pipeline import classify
    from satclassify_plugin.core.contract.errors import SatClassifyError

    with pytest.raises(SatClassifyError) as e:
        classify(data["s2"], data["lin"], [str(data["tmp"] / "o.tif")], options=ClassifyOptions(batch_size=-2))
    assert str(e.value) == "batch size must be >= 1 (or 0 for the default), got -2"


@pytest.mark.parametrize("device,ep", [(2, "CUDAExecutionProvider"), (3, "TensorrtExecutionProvider")])
def test_gpu_device_without_gpu(run_alg, data, device, ep):
    import onnxruntime

    if ep in onnxruntime.get_available_providers():
        pytest.skip(f"this onnxruntime has {ep}")
    name = ["Auto", "CPU", "CUDA", "TensorRT"][device]
    avail = ", ".join(onnxruntime.get_available_providers())
    msg = run_error(run_alg, {"_tmp": data["tmp"], "INPUT": data["s2"], "MODEL": data["lin"], "DEVICE": device})
    assert msg == (
        f"DEVICE {name} was requested but this onnxruntime has no {ep} (available: {avail}). Install "
        f"onnxruntime-gpu matching your CUDA/cuDNN{' and TensorRT' if name == 'TensorRT' else ''} "
        "version, or choose DEVICE Auto or CPU"
    )


def test_second_output_for_one_head_model(run_alg, data):
    msg = run_error(
        run_alg,
        {"_tmp": data["tmp"], "INPUT": data["s2"], "MODEL": data["lin"], "OUTPUT_2": str(data["tmp"] / "o2.tif")},
    )
    assert msg == ("an output was given for head 2 but the model has 1 head(s) (class); leave OUTPUT_2 empty")
    assert not os.path.exists(data["tmp"] / "o2.tif")


def test_card_class_count_differs_from_output(run_alg, data):
    model = om.linear_model(
        data["tmp"] / "k.onnx",
        np.eye(3, 4),
        card_kw={"heads": [{"name": "lc", "output": "probs", "classes": om.classes(5)}]},
    )
    msg = run_error(run_alg, {"_tmp": data["tmp"], "INPUT": data["s2"], "MODEL": model})
    assert msg == "head 'lc': the card lists 5 classes but output 'probs' has 3 channels"


def test_card_band_count_differs_from_input(run_alg, data):
    model = om.linear_model(data["tmp"] / "b.onnx", np.eye(3, 4), card_kw={"bands": ["B02", "B03", "B04"]})
    msg = run_error(run_alg, {"_tmp": data["tmp"], "INPUT": data["s2"], "MODEL": model})
    assert msg == ("the model card lists 3 bands (B02, B03, B04) but the model's input 'image' has 4 channels")


def test_missing_onnxruntime_is_explained(provider, monkeypatch):
    from qgis.core import QgsApplication

    from satclassify_plugin.algorithms import base

    monkeypatch.setattr(base, "missing_modules", lambda mods: list(mods))
    alg = QgsApplication.processingRegistry().createAlgorithmById(ALG)
    ok, msg = alg.canExecute()
    assert not ok and "onnxruntime (or onnxruntime-gpu with an NVIDIA GPU)" in msg
    assert "pip install --user onnxruntime" in msg


def test_provider_choice():
    from satclassify_plugin.core.classify.inference import choose_providers
    from satclassify_plugin.core.contract.errors import SatClassifyError

    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    cpu = ["AzureExecutionProvider", "CPUExecutionProvider"]
    logged = []
    assert choose_providers("Auto", gpu, logged.append) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert logged == []
    assert choose_providers("Auto", cpu, logged.append) == ["CPUExecutionProvider"]
    assert logged == [
        "DEVICE Auto: no CUDA in this onnxruntime (providers: AzureExecutionProvider, "
        "CPUExecutionProvider); running on the CPU"
    ]
    assert choose_providers("CPU", gpu) == ["CPUExecutionProvider"]
    assert choose_providers("CUDA", gpu) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("TensorRT", gpu) == gpu
    with pytest.raises(SatClassifyError) as e:
        choose_providers("TensorRT", ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert str(e.value).startswith(
        "DEVICE TensorRT was requested but this onnxruntime has no TensorrtExecutionProvider"
    )
    with pytest.raises(SatClassifyError, match="unknown DEVICE 'GPU': choose one of Auto, CPU, CUDA, TensorRT"):
        choose_providers("GPU", gpu)
