"""buildpatches TARGET_FRACTION: patch-level multi-label targets from the label raster (classes covering at
least that fraction of a patch's labelled pixels), next to the pixel labels."""

import json
import os

import numpy as np
import pytest

from satclassify_plugin.core.contract.dataset import Dataset
from tests.plugin.labels.test_patches import BANDS, PIX, X0, Y0, label_raster
from tests.rasters import make_raster


@pytest.fixture
def data(tmp_path):
    h = w = 64
    rng = np.random.default_rng(4)
    img = make_raster(
        tmp_path / "s2.tif",
        rng.integers(1, 5000, (4, h, w)).astype(np.uint16),
        origin=(X0, Y0),
        pixel=PIX,
        band_names=BANDS,
    )
    lab = np.full((h, w), 2, np.uint8)
    lab[:, :20] = 3  # patch column 1 holds 4 of 16 columns of class 3 (25 %)
    lab[:3, :] = 5  # patch row 0: 3 of 16 rows of class 5 (18.75 %)
    lab[40:44, 40:44] = 0  # one patch with 16 unlabelled pixels
    lab[50:, 50:] = 1
    return {"img": img, "labels": label_raster(tmp_path / "labels.tif", lab), "lab": lab, "dir": tmp_path}


@pytest.mark.parametrize("fraction", [0.2, 0.1])
def test_targets_are_the_classes_above_the_fraction(run_alg, data, fraction):
    out = str(data["dir"] / f"ds{fraction}")
    run_alg(
        "satclassify:buildpatches",
        {
            "IMAGE": data["img"],
            "LABELS": data["labels"],
            "PATCH_SIZE": 16,
            "BLOCK_SIZE": 2,
            "VAL_FRACTION": 0.25,
            "TEST_FRACTION": 0.25,
            "MIN_LABELLED": 0.5,
            "TARGET_FRACTION": fraction,
            "OUTPUT_FOLDER": out,
        },
    )
    man = json.load(open(os.path.join(out, "manifest.json")))
    assert man["task"] == "multilabel"
    assert man["target_rule"] == {"type": "class_fraction", "min_fraction": fraction, "of": "labelled pixels"}
    values = [c["value"] for c in man["classes"]]
    ds = Dataset(out)
    assert ds.has_labels and ds.task == "multilabel"
    n = 0
    for split in ds.splits:
        targets = ds.load_targets(split)
        _imgs, labels, _m = ds.load(split)
        for (r0, c0), t, pl in zip(man["positions"][split], targets, labels):
            src = data["lab"][r0 : r0 + 16, c0 : c0 + 16]
            np.testing.assert_array_equal(pl, src)  # pixel labels still stored
            lab = src[src > 0]
            want = [int(np.mean(lab == v) >= fraction) for v in values]
            assert t.tolist() == want, (r0, c0)
            n += 1
        assert man["splits"][split]["target_counts"] == {str(v): int(c) for v, c in zip(values, targets.sum(0))}
    assert n == 16
    # patch (0, 16): class 5 on 3 rows (18.75 %), class 3 on 4 columns of the 13 other rows (20.3 %), class 2 rest
    split = next(s for s in ds.splits if [0, 16] in man["positions"][s])
    t = ds.load_targets(split)[man["positions"][split].index([0, 16])]
    assert {v for v, x in zip(values, t) if x} == ({2, 3} if fraction == 0.2 else {2, 3, 5})


def test_no_targets_by_default(run_alg, data):
    out = str(data["dir"] / "plain")
    run_alg(
        "satclassify:buildpatches",
        {"IMAGE": data["img"], "LABELS": data["labels"], "PATCH_SIZE": 16, "BLOCK_SIZE": 2, "OUTPUT_FOLDER": out},
    )
    man = json.load(open(os.path.join(out, "manifest.json")))
    assert "task" not in man and "target_rule" not in man
    assert not [f for f in os.listdir(out) if f.startswith("targets")]
