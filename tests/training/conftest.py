"""Training-env fixtures: tiny synthetic datasets written with core.contract.dataset.DatasetWriter and models
trained once per session (in-process, CPU)."""

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

torch = pytest.importorskip("torch")

CLASSES = [
    {"value": 1, "code": "211", "name": "Arable land", "color": "#ffffa8"},
    {"value": 2, "code": "311", "name": "Broad-leaved forest", "color": "#80ff00"},
    {"value": 3, "code": "512", "name": "Water bodies", "color": "#80f2e6"},
]
# per-class DN means for B02 B03 B04 B08 (separable, noisy)
MEANS = np.array([[800, 900, 700, 3000], [400, 600, 300, 4000], [600, 500, 300, 200]], dtype=np.float64)
BANDS = ["B02", "B03", "B04", "B08"]

MEDIUM_DUAL = {"s1": 32, "s2": 64, "s3": 64, "head": 64}
SMALL = {
    "encoder": "resnet18",
    "decoder_channels": [32, 16, 16, 8, 8],
    "batch_size": 8,
    "tile_size": 128,
    "progress": False,
    "early_stopping": 0,
}


def synth_patch(rng, p, nb=4):
    lab = np.zeros((p, p), np.uint8)
    cuts = np.sort(rng.integers(3, p - 3, 2))
    order = rng.permutation(3) + 1
    lab[:, : cuts[0]] = order[0]
    lab[:, cuts[0] : cuts[1]] = order[1]
    lab[:, cuts[1] :] = order[2]
    if rng.random() < 0.5:
        lab = np.ascontiguousarray(lab.T)
    img = MEANS[np.maximum(lab, 1) - 1].transpose(2, 0, 1)[:nb].copy()
    lab[rng.random((p, p)) < 0.05] = 0  # unlabelled pixels
    img += rng.normal(0, 150, img.shape)
    return np.clip(img, 1, 10000).astype(np.uint16), lab


def make_dataset(
    folder, splits=(("train", 24), ("val", 8), ("test", 8)), p=32, seed=0, bands=BANDS, classes=CLASSES, declare=()
):
    from satclassify_plugin.core.contract.dataset import DatasetSpec, DatasetWriter

    rng = np.random.default_rng(seed)
    w = DatasetWriter(
        str(folder), DatasetSpec(list(bands), p, classes, shard_size=16, splits=tuple(declare)), overwrite=True
    )
    for split, n in splits:
        for _ in range(n):
            img, lab = synth_patch(rng, p, len(bands))
            w.add(split, img, lab)
    w.close({"resolution_m": 10.0})
    return str(folder)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("ds") / "ds")


def run_train(data, out, **kw):
    from training.config import TrainConfig
    from training.train import train

    cfg = TrainConfig(data=data, out=str(out), **{**SMALL, **kw})
    return train(cfg, explicit=kw)


@pytest.fixture(scope="session")
def trained(dataset, tmp_path_factory):
    """Models trained once: {'cnn_dual': result, 'unet': result, 'cnn_class': result}."""
    base = tmp_path_factory.mktemp("runs")
    res = {}
    # a narrower CNN-dual than the default 1.26 M (same structure) keeps CPU test time low
    res["cnn_dual"] = run_train(dataset, base / "dual", model="cnn_dual", epochs=3, widths=MEDIUM_DUAL)
    res["unet"] = run_train(dataset, base / "unet", model="unet", epochs=5, lr=3e-3, batch_size=4)
    res["cnn_class"] = run_train(dataset, base / "cls", model="cnn_class", epochs=4)
    return res
