"""ClassifyOptions: the settings of one classify run, validated when made (no GDAL, no model)."""

import dataclasses

import pytest

from satclassify_plugin.core.classify.options import DEVICES, ClassifyOptions
from satclassify_plugin.core.contract.errors import SatClassifyError


def test_defaults_are_the_tool_defaults():
    o = ClassifyOptions()
    assert (o.bands, o.extent, o.device, o.tile_size, o.batch_size, o.resample, o.threads, o.decode_threads) == (
        "",
        None,
        "Auto",
        0,
        0,
        False,
        0,
        None,
    )
    assert DEVICES[0] == "Auto"


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ClassifyOptions().device = "CPU"


def test_extent_becomes_four_floats():
    assert ClassifyOptions(extent=[0, 1, "2", 3]).extent == (0.0, 1.0, 2.0, 3.0)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"device": "GPU"}, "unknown DEVICE 'GPU': choose one of Auto, CPU, CUDA, TensorRT"),
        ({"batch_size": -2}, "batch size must be >= 1 (or 0 for the default), got -2"),
        ({"tile_size": -1}, "tile size must be >= 1 (or 0 for the model's default), got -1"),
        ({"tile_size": 2.5}, "tile size must be >= 1"),
        ({"threads": -1}, "threads must be >= 1"),
        ({"bands": None}, "give the band numbers or names as text"),
        ({"extent": (5, 0, 5, 10)}, "has no area (zero width or height)"),
        ({"extent": (0, 0, 1)}, "is not four numbers"),
        ({"extent": (0, 0, float("nan"), 1)}, "is not four numbers"),
    ],
)
def test_bad_values_name_the_problem(kwargs, words):
    with pytest.raises(SatClassifyError, match=words.replace("(", r"\(").replace(")", r"\)")):
        ClassifyOptions(**kwargs)
