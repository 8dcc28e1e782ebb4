"""Model card heads: task (multiclass / multilabel), activation and per-class thresholds; old cards unchanged."""

import json

import pytest

from satclassify_plugin.core.contract.modelcard import ModelCardError, parse_card

CLASSES = [
    {"value": 12, "code": "211", "name": "Non-irrigated arable land", "color": "#ffffa8"},
    {"value": 24, "code": "312", "name": "Coniferous forest", "color": "#00a600"},
]


def _card(**head):
    return {
        "schema_version": 1,
        "architecture": "cnn_class",
        "bands": ["B02", "B03", "B04", "B08"],
        "tile_size": 120,
        "halo": 0,
        "heads": [{"name": "class", "output": "probs_class", "classes": CLASSES, **head}],
    }


def test_old_cards_are_multiclass_softmax_and_stay_as_they_were():
    card = parse_card(_card())
    h = card.heads[0]
    assert (h.task, h.activation, h.thresholds, h.multilabel) == ("multiclass", "softmax", None, False)
    assert set(card.to_dict()["heads"][0]) == {"name", "output", "classes"}


def test_multilabel_head_with_thresholds_roundtrips():
    card = parse_card(_card(task="multilabel", activation="sigmoid", thresholds=[0.3, 0.75]))
    h = card.heads[0]
    assert h.multilabel and h.activation == "sigmoid" and h.class_thresholds() == [0.3, 0.75]
    again = parse_card(json.loads(card.to_json()))
    assert again.heads[0].thresholds == [0.3, 0.75] and again.heads[0].task == "multilabel"
    only_sigmoid = parse_card(_card(activation="sigmoid")).heads[0]
    assert only_sigmoid.task == "multilabel" and only_sigmoid.class_thresholds() == [0.5, 0.5]


@pytest.mark.parametrize(
    "head, message",
    [
        ({"task": "regression"}, "has task 'regression'; expected one of multiclass, multilabel"),
        ({"task": "multilabel", "activation": "softmax"}, "a multiclass head uses softmax, a multilabel head sigmoid"),
        ({"thresholds": [0.5, 0.5]}, "has thresholds but is not a multilabel head"),
        ({"task": "multilabel", "thresholds": [0.5]}, "thresholds must be 2 numbers in 0..1"),
        ({"task": "multilabel", "thresholds": [0.5, 1.5]}, "thresholds must be 2 numbers in 0..1"),
    ],
)
def test_bad_heads(head, message):
    with pytest.raises(ModelCardError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        parse_card(_card(**head))
