"""Issue 25 item 12: Deepness cards that gave tracebacks (an IndexError for 300 class names, a ValueError for a std
list shorter than the bands, non-numeric tile sizes) are refused with a message naming the key."""

import json

import pytest

from satclassify_plugin.core.contract.modelcard import ModelCardError, card_from_metadata


def _props(**kw):
    p = {"model_type": "Segmentor", "class_names": json.dumps(["a", "b"]), "tiles_size": "256"}
    p.update(kw)
    return p


def test_more_than_255_classes_are_refused():
    names = json.dumps({str(i): f"class {i}" for i in range(300)})
    with pytest.raises(
        ModelCardError,
        match=r"output 'out' has 300 classes \('class_names'\), but a class raster "
        r"holds at most 255 classes",
    ):
        card_from_metadata(_props(class_names=names), ["out"], 3, [300])
    card = card_from_metadata(_props(class_names=json.dumps([f"c{i}" for i in range(255)])), ["out"], 3)
    assert card.heads[0].classes[-1].value == 255


@pytest.mark.parametrize(
    "mean,std,msg",
    [
        ("[0.5, 0.5, 0.5]", "[0.2, 0.2]", "standardization_std has 2 values, input has 3 channels"),
        ("[0.5, 0.5, 0.5]", None, "give both standardization_mean and standardization_std"),
        (None, "[0.2, 0.2, 0.2]", "give both standardization_mean and standardization_std"),
    ],
)
def test_std_must_match_the_input_channels(mean, std, msg):
    kw = {k: v for k, v in (("standardization_mean", mean), ("standardization_std", std)) if v is not None}
    with pytest.raises(ModelCardError, match=msg):
        card_from_metadata(_props(**kw), ["out"], 3)


@pytest.mark.parametrize(
    "key,value,msg",
    [
        ("tiles_size", "big", "'tiles_size' must be a whole number, got 'big'"),
        ("tiles_size", "0", "'tiles_size' must be a whole number, got '0'"),
        ("resolution", "fine", "'resolution' must be a number > 0, got 'fine'"),
        ("tiles_overlap", "150", "'tiles_overlap' must be a number in 0..100, got '150'"),
    ],
)
def test_numbers_that_are_not_numbers_are_named(key, value, msg):
    with pytest.raises(ModelCardError, match=msg):
        card_from_metadata(_props(**{key: value}), ["out"], 3)
