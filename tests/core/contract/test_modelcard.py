import json

import pytest

from satclassify_plugin.core.contract.modelcard import ModelCardError, card_from_metadata, parse_card


def good_card(**over):
    card = {"schema_version": 1, "architecture": "unet", "bands": ["B02", "B03", "B04", "B08"],
            "resolution_m": 10.0, "input_scale": 0.0001, "mean": [0.1] * 4, "std": [0.05] * 4,
            "tile_size": 256, "halo": 32,
            "heads": [{"name": "clc_level2", "output": "probs_clc_level2",
                       "classes": [{"value": 1, "code": "21", "name": "Arable land", "color": "#ffffa8"},
                                   {"value": 2, "code": "31", "name": "Forests", "color": "#80ff00"}]}],
            "training": {"dataset": "d", "epochs": 3, "metrics": {"val_miou": 0.5}}}
    card.update(over)
    return card


def test_round_trip():
    c = parse_card(json.dumps(good_card()))
    assert c.bands == ["B02", "B03", "B04", "B08"] and c.halo == 32 and c.heads[0].num_classes == 2
    assert parse_card(c.to_json()).to_dict() == c.to_dict()


@pytest.mark.parametrize("over,msg", [
    ({"bands": []}, "'bands' must be a non-empty list"),
    ({"bands": ["B02", "B02"]}, "duplicates"),
    ({"mean": [0.1] * 3}, "has 3 values but the model has 4 bands"),
    ({"std": None}, "both 'mean' and 'std'"),
    ({"std": [0.1, 0, 0.1, 0.1]}, "'std' values must be > 0"),
    ({"tile_size": 64, "halo": 32}, "larger than twice the halo"),
    ({"halo": -1}, "'halo' must be an integer"),
    ({"input_scale": 0}, "positive"),
    ({"heads": []}, "'heads' must be a non-empty list"),
    ({"schema_version": 7}, "schema_version 7 is not supported"),
    ({"heads": [{"name": "a", "output": "o", "classes": [{"value": 0, "name": "x"}]}]}, "out of range 1..255"),
    ({"heads": [{"name": "a", "output": "o", "classes": [{"value": 1, "color": "red"}]}]}, "not #rrggbb"),
    ({"heads": [{"name": "a", "output": "o", "classes": [{"value": 1}, {"value": 1}]}]}, "duplicate class values"),
    ({"heads": [{"output": "o", "classes": [{"value": 1}]}]}, "'name' is missing in head 0"),
])
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
    props = {"model_type": "Segmentor", "class_names": json.dumps({"0": "background", "1": "field"}),
             "resolution": "50", "tiles_size": "512", "tiles_overlap": "25",
             "standardization_mean": "[0.5, 0.5, 0.5]", "standardization_std": "[0.25, 0.25, 0.25]"}
    c = card_from_metadata(props, ["output"], 3)
    assert c.source == "deepness" and c.input_scale == pytest.approx(1 / 255)
    assert c.resolution_m == 0.5 and c.tile_size == 512 and c.halo == 64
    assert [k.name for k in c.heads[0].classes] == ["background", "field"]
    assert [k.value for k in c.heads[0].classes] == [1, 2]
    assert c.bands == ["1", "2", "3"] and c.mean == [0.5] * 3


def test_deepness_detector_rejected():
    with pytest.raises(ModelCardError, match="not supported"):
        card_from_metadata({"model_type": "Detector", "class_names": "['a']"}, ["o"], 3)


def test_one_class_record_for_clc_tables_cards_and_datasets():
    from satclassify_plugin.core.contract import clc, dataset, modelcard
    from satclassify_plugin.core.contract.classes import ClassRecord

    assert clc.ClassInfo is ClassRecord and modelcard.HeadClass is ClassRecord
    card = parse_card({"architecture": "unet", "bands": ["B02"], "heads": [
        {"name": "h", "output": "o", "classes": [{"value": 3, "code": "211", "name": "Arable", "color": "#ffffa8"}]}]})
    rec = card.heads[0].classes[0]
    assert rec == clc.classes(2)[3 - 1].__class__(3, "211", "Arable", "#ffffa8") and rec.rgb == (255, 255, 168)
    assert dataset._class_dict(rec) == rec.to_dict() == ClassRecord.from_dict(rec.to_dict()).to_dict()
