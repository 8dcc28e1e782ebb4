import json

import pytest

from satclassify_plugin.core.contract.modelcard import ModelCardError, card_from_metadata, parse_card


def good_card(**over):
    card = {
        "schema_version": 1,
        "architecture": "unet",
        "bands": ["B02", "B03", "B04", "B08"],
        "resolution_m": 10.0,
        "input_scale": 0.0001,
        "mean": [0.1] * 4,
        "std": [0.05] * 4,
        "tile_size": 256,
        "halo": 32,
        "heads": [
            {
                "name": "clc_level2",
                "output": "probs_clc_level2",
                "classes": [
                    {"value": 1, "code": "21", "name": "Arable land", "color": "#ffffa8"},
                    {"value": 2, "code": "31", "name": "Forests", "color": "#80ff00"},
                ],
            }
        ],
        "training": {"dataset": "d", "epochs": 3, "metrics": {"val_miou": 0.5}},
    }
    card.update(over)
    return card


def test_round_trip():
    c = parse_card(json.dumps(good_card()))
    assert c.bands == ["B02", "B03", "B04", "B08"] and c.halo == 32 and c.heads[0].num_classes == 2
    assert parse_card(c.to_json()).to_dict() == c.to_dict()


@pytest.mark.parametrize(
    "over,msg",
    [
        ({"bands": []}, "'bands' must be a non-empty list"),
        ({"bands": ["B02", "B02"]}, "duplicates"),
        ({"mean": [0.1] * 3}, "has 3 values but the model has 4 bands"),
        ({"std": None}, "both 'mean' and 'std'"),
        ({"std": [0.1, 0, 0.1, 0.1]}, "every std value must be a finite number > 0"),
        ({"tile_size": 64, "halo": 32}, "larger than twice the halo"),
        ({"halo": -1}, "'halo' must be an integer"),
        ({"input_scale": 0}, "positive"),
        ({"heads": []}, "'heads' must be a non-empty list"),
        ({"schema_version": 7}, "schema_version 7 is not supported"),
        ({"heads": [{"name": "a", "output": "o", "classes": [{"value": 0, "name": "x"}]}]}, "out of range 1..255"),
        ({"heads": [{"name": "a", "output": "o", "classes": [{"value": 1, "color": "red"}]}]}, "not #rrggbb"),
        ({"heads": [{"name": "a", "output": "o", "classes": [{"value": 1}, {"value": 1}]}]}, "duplicate class values"),
        ({"heads": [{"output": "o", "classes": [{"value": 1}]}]}, "'name' is missing in head 0"),
    ],
)
def test_invalid_cards_name_the_problem(over, msg):
    with pytest.raises(ModelCardError, match=msg):
        parse_card(good_card(**over))


def test_missing_architecture_and_bad_json():
    d = good_card()
    del d["architecture"]
    with pytest.raises(ModelCardError, match="'architecture' is missing"):
        parse_card(d)
    with pytest.raises(ModelCardError, match="not valid JSON"):
        parse_card("{nope")


def test_card_from_metadata_checks_outputs():
    props = {"satclassify": json.dumps(good_card())}
    assert card_from_metadata(props, ["probs_clc_level2"], 4).architecture == "unet"
    with pytest.raises(ModelCardError, match="model's outputs are \\['logits'\\]"):
        card_from_metadata(props, ["logits"], 4)


def test_no_card_error_lists_missing_keys():
    with pytest.raises(ModelCardError, match="metadata key 'satclassify' is missing"):
        card_from_metadata({"author": "me"}, ["out"], 3)


def test_deepness_fallback():
    props = {
        "model_type": "Segmentor",
        "class_names": json.dumps({"0": "background", "1": "field"}),
        "resolution": "50",
        "tiles_size": "512",
        "tiles_overlap": "25",
        "standardization_mean": "[0.5, 0.5, 0.5]",
        "standardization_std": "[0.25, 0.25, 0.25]",
    }
    c = card_from_metadata(props, ["output"], 3)
    assert c.source == "deepness" and c.input_scale == pytest.approx(1 / 255)
    assert c.resolution_m == 0.5 and c.tile_size == 512 and c.halo == 64
    assert [k.name for k in c.heads[0].classes] == ["background", "field"]
    assert [k.value for k in c.heads[0].classes] == [1, 2]
    assert c.bands == ["1", "2", "3"] and c.mean == [0.5] * 3


@pytest.mark.parametrize("std", ["[0.25, 0.0, 0.25]", "[0.25, -1, 0.25]", "[0.25, NaN, 0.25]"])
def test_deepness_std_zero_refused_with_the_fix(std):
    """Issue 25 item 5: a std of 0 made every pixel NaN -> class 1, confidence 0; the parser refuses it."""
    props = {
        "model_type": "Segmentor",
        "class_names": "['a', 'b']",
        "standardization_mean": "[0.5, 0.5, 0.5]",
        "standardization_std": std,
    }
    with pytest.raises(ModelCardError, match=r"std value must be a finite number > 0.*band\(s\) 2.*std of 0"):
        card_from_metadata(props, ["output"], 3)


@pytest.mark.parametrize("std", [[0.05, 0.0, 0.05, 0.05], [0.05, float("nan"), 0.05, 0.05]])
def test_card_std_zero_or_nan_refused(std):
    with pytest.raises(ModelCardError, match="finite number > 0"):
        parse_card(good_card(std=std))
    with pytest.raises(ModelCardError, match="finite numbers"):
        parse_card(good_card(mean=[0.1, float("inf"), 0.1, 0.1]))


def test_deepness_detector_rejected():
    with pytest.raises(ModelCardError, match="not supported"):
        card_from_metadata({"model_type": "Detector", "class_names": "['a']"}, ["o"], 3)


def test_one_class_record_for_clc_tables_cards_and_datasets():
    from satclassify_plugin.core.contract import clc, dataset, modelcard
    from satclassify_plugin.core.contract.classes import ClassRecord

    assert clc.ClassInfo is ClassRecord and modelcard.HeadClass is ClassRecord
    card = parse_card(
        {
            "architecture": "unet",
            "bands": ["B02"],
            "heads": [
                {
                    "name": "h",
                    "output": "o",
                    "classes": [{"value": 3, "code": "211", "name": "Arable", "color": "#ffffa8"}],
                }
            ],
        }
    )
    rec = card.heads[0].classes[0]
    assert rec == clc.classes(2)[3 - 1].__class__(3, "211", "Arable", "#ffffa8") and rec.rgb == (255, 255, 168)
    assert dataset._class_dict(rec) == rec.to_dict() == ClassRecord.from_dict(rec.to_dict()).to_dict()


def test_input_clip_round_trip_and_preprocessing():
    """input_clip: raw values clipped per band before input_scale, then (x - mean) / std (EuroSAT RGB models)."""
    import numpy as np

    from satclassify_plugin.core.contract.modelcard import input_transform, preprocess

    clip = [[0, 2750], [0, 2750], [100, 3000], [0, 5000]]
    c = parse_card(good_card(input_clip=clip))
    assert c.input_clip == [[0.0, 2750.0], [0.0, 2750.0], [100.0, 3000.0], [0.0, 5000.0]]
    assert parse_card(c.to_json()).to_dict() == c.to_dict() and c.to_dict()["input_clip"] == c.input_clip
    raw = np.array([[[50, 2749, 2751, 9000]]] * 4, np.uint16).reshape(4, 1, 4)
    x = preprocess(c, raw)
    clipped = np.clip(raw.astype(np.float64), np.array(clip)[:, :1, None], np.array(clip)[:, 1:, None])
    np.testing.assert_allclose(x, (clipped * 1e-4 - 0.1) / 0.05, rtol=1e-6)
    assert x[0, 0, 3] == x[0, 0, 2] == np.float32((0.275 - 0.1) / 0.05)  # saturated like the training imagery
    assert x[2, 0, 0] == np.float32((0.01 - 0.1) / 0.05)  # raised to the band's low bound
    a, b, lo, hi = input_transform(parse_card(good_card()))  # no clip: infinite bounds, same affine
    assert np.isinf(lo).all() and np.isinf(hi).all() and np.allclose(a, 1e-4 / 0.05) and np.allclose(b, -2.0)
    np.testing.assert_allclose(preprocess(parse_card(good_card()), raw), (raw * 1e-4 - 0.1) / 0.05, rtol=1e-6)


@pytest.mark.parametrize(
    "clip", [[[0, 2750]] * 3, [[0, 2750]] * 3 + [[10, 5]], [[0, 1, 2]] * 4, "0,2750", [[0, "x"]] * 4]
)
def test_bad_input_clip_names_the_fix(clip):
    with pytest.raises(ModelCardError, match="'input_clip' must list one \\[low, high\\] pair"):
        parse_card(good_card(input_clip=clip))
