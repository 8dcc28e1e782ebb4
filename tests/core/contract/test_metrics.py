import numpy as np
import pytest

from satclassify_plugin.core.contract.errors import SatClassifyError
from satclassify_plugin.core.contract.metrics import ConfusionMatrix, compute_metrics, confusion_matrix


def test_hand_computed_two_class_example():
    # reference rows, predicted columns:
    #        p1  p2
    # r1     40  10
    # r2      5  45
    ref = np.array([1] * 50 + [2] * 50)
    pred = np.array([1] * 40 + [2] * 10 + [1] * 5 + [2] * 45)
    m = compute_metrics(confusion_matrix(ref, pred, [1, 2]), [1, 2])
    assert m["confusion_matrix"] == [[40, 10], [5, 45]]
    assert m["overall_accuracy"] == pytest.approx(0.85)
    pe = (50 * 45 + 50 * 55) / 100**2
    assert m["kappa"] == pytest.approx((0.85 - pe) / (1 - pe))
    c1, c2 = m["classes"]
    assert c1["precision"] == pytest.approx(40 / 45) and c1["recall"] == pytest.approx(0.8)
    assert c1["f1"] == pytest.approx(2 * 40 / (50 + 45))
    assert c1["iou"] == pytest.approx(40 / 55) and c2["iou"] == pytest.approx(45 / 60)
    assert m["miou"] == pytest.approx((40 / 55 + 45 / 60) / 2)
    assert c1["support"] == 50 and c2["predicted"] == 55


def test_streaming_equals_one_shot_and_ignores_zero():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 4, 10000)
    pred = rng.integers(0, 4, 10000)
    cm = ConfusionMatrix([1, 2, 3])
    for a, b in zip(np.array_split(ref, 7), np.array_split(pred, 7)):
        cm.update(a, b)
    assert (cm.matrix == confusion_matrix(ref, pred, [1, 2, 3])).all()
    assert cm.matrix.sum() + cm.ignored == 10000
    assert cm.ignored == int(((ref == 0) | (pred == 0)).sum())


def test_class_absent_from_prediction_has_undefined_precision():
    m = compute_metrics(confusion_matrix([1, 1, 2, 3], [1, 1, 2, 2], [1, 2, 3]), [1, 2, 3])
    c3 = m["classes"][2]
    assert c3["precision"] is None and c3["recall"] == 0.0 and c3["f1"] == 0.0
    c2 = m["classes"][1]
    assert c2["precision"] == 0.5 and c2["recall"] == 1.0


def test_all_ignored_gives_no_scores():
    m = compute_metrics(confusion_matrix([0, 0], [1, 2], [1, 2]), [1, 2])
    assert m["overall_accuracy"] is None and m["kappa"] is None and m["miou"] is None and m["pixels"] == 0


def test_perfect_agreement_kappa_one():
    m = compute_metrics(confusion_matrix([1, 2, 2], [1, 2, 2], [1, 2]), [1, 2])
    assert m["kappa"] == 1.0 and m["overall_accuracy"] == 1.0


def test_bad_inputs():
    with pytest.raises(SatClassifyError, match="differ in size"):
        confusion_matrix([1, 2], [1], [1, 2])
    with pytest.raises(SatClassifyError, match="duplicate"):
        ConfusionMatrix([1, 1])
    with pytest.raises(SatClassifyError, match="must be 2x2"):
        compute_metrics(np.zeros((3, 3)), [1, 2])
