"""Multi-label metrics (core.contract.metrics): micro/macro F1, per-class F1, average precision, thresholds;
hand-computed values."""

import numpy as np
import pytest

from satclassify_plugin.core.contract.errors import SatClassifyError
from satclassify_plugin.core.contract.metrics import (
    average_precision,
    best_thresholds,
    mean_average_precision,
    multilabel_scores,
)


def test_micro_macro_and_per_class_f1():
    truth = [[1, 0], [1, 1], [0, 1], [0, 0]]
    pred = [[1, 0], [0, 1], [1, 1], [0, 0]]
    m = multilabel_scores(truth, pred, names=["forest", "water"])
    # class 0: TP 1, FP 1, FN 1 -> P = R = F1 = 0.5; class 1: TP 2, no error -> 1
    assert [(c["name"], c["precision"], c["recall"], c["f1"], c["support"], c["predicted"]) for c in m["classes"]] == [
        ("forest", 0.5, 0.5, 0.5, 2, 2),
        ("water", 1.0, 1.0, 1.0, 2, 2),
    ]
    assert m["micro_f1"] == pytest.approx(6 / 8) and m["micro_precision"] == 0.75 and m["micro_recall"] == 0.75
    assert m["macro_f1"] == pytest.approx(0.75)
    assert m["sample_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3 + 1) / 4)
    assert m["samples"] == 4


def test_class_never_seen_is_left_out_of_the_macro_mean():
    m = multilabel_scores([[1, 0, 0], [0, 0, 0]], [[1, 0, 0], [1, 0, 0]])
    assert m["classes"][1]["f1"] is None and m["classes"][2]["f1"] is None
    assert m["macro_f1"] == pytest.approx(2 / 3)  # class 0 only: TP 1, FP 1
    with pytest.raises(SatClassifyError, match="differ in shape"):
        multilabel_scores([[1, 0]], [[1, 0, 0]])


def test_average_precision():
    t = np.array([[1, 0, 1, 0, 1]]).T
    s = np.array([[0.9, 0.8, 0.7, 0.6, 0.1]]).T
    assert average_precision(t, s) == [pytest.approx((1 + 2 / 3 + 3 / 5) / 3)]
    assert average_precision([[1], [0]], [[0.5], [0.5]]) == [0.5]  # a tie is one step
    assert average_precision([[0], [0]], [[0.2], [0.1]]) == [None]
    both = mean_average_precision([[1, 0], [0, 1], [0, 0]], [[0.9, 0.1], [0.2, 0.3], [0.1, 0.8]])
    assert both == pytest.approx((1.0 + 0.5) / 2)  # class 1: its positive ranks 2nd
    assert mean_average_precision([[1, 0], [0, 1]], [[0.9, 0.1], [0.1, 0.9]]) == 1.0


def test_best_thresholds_maximise_each_class_f1():
    truth = np.array([[1, 1, 0, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]]).T
    scores = np.array([[0.9, 0.8, 0.7, 0.4, 0.2], [0.9, 0.1, 0.3, 0.2, 0.4], [0.9, 0.5, 0.6, 0.7, 0.8]]).T
    th = best_thresholds(truth, scores)
    # class 0: keeping the top 4 gives F1 6/7 (the best); halfway between 0.4 and 0.2
    assert th[0] == pytest.approx(0.3)
    assert th[1] == 0.5  # no positive: the default
    assert th[2] == pytest.approx(0.25)  # every sample positive: keep all, halfway below the lowest score
    pred = (scores >= np.array(th)).astype(int)
    assert multilabel_scores(truth[:, :1], pred[:, :1])["classes"][0]["f1"] == pytest.approx(6 / 7)
