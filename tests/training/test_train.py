"""Training learns the separable synthetic classes; checkpoints, logs, resume, transfer, weights."""

import csv
import os

import numpy as np
import pytest
import torch

from training.data import DataInfo, class_weights, coarse_classes, open_dataset, sample_pixels
from training.engine import augment
from training.errors import TrainingError

from .conftest import run_train

TINY_DUAL = {"s1": 16, "s2": 32, "s3": 32, "head": 32}


def test_cnn_dual_learns_both_heads(trained):
    h = trained["cnn_dual"]["history"]
    last = h[-1]
    assert last["val_oa"] > 0.9 and last["val_miou"] > 0.8  # chance is 1/3
    assert last["val_coarse_oa"] > 0.9  # 211 -> 2, 311 -> 3, 512 -> 5 (CLC level 1)
    assert h[-1]["val_loss"] < h[0]["val_loss"]


def test_unet_learns(trained):
    last = trained["unet"]["history"][-1]
    assert last["val_oa"] > 0.8 and last["val_miou"] > 0.6


def test_cnn_class_learns_patch_majority(trained):
    best = max(r["val_oa"] for r in trained["cnn_class"]["history"])
    assert best >= 0.75  # 8 val patches, chance 1/3


def test_run_folder_checkpoint_log_and_curves(trained):
    res = trained["unet"]
    run = res["run_dir"]
    for name in ("best.pt", "last.pt", "log.csv", "curves.png", "config.yaml", "metrics.json"):
        assert os.path.isfile(os.path.join(run, name)), name
    ck = torch.load(res["best"], map_location="cpu", weights_only=True)
    assert ck["format"] == "satclassify-train" and ck["config"]["model"] == "unet"
    assert ck["card"]["bands"] == ["B02", "B03", "B04", "B08"] and len(ck["card"]["mean"]) == 4
    with open(os.path.join(run, "log.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    assert {"train_loss", "val_loss", "val_oa", "val_miou", "lr"} <= set(rows[0])
    best_row = max(res["history"], key=lambda r: r["val_miou"])
    assert ck["metrics"]["epoch"] == best_row["epoch"]
    with open(os.path.join(run, "curves.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_band_stats_are_reflectance_of_training_split(dataset, trained):
    ds = open_dataset(dataset)
    imgs = np.concatenate([np.asarray(s[0]) for s in ds.shards("train")]).astype(np.float64) * 1e-4
    card = torch.load(trained["cnn_dual"]["best"], weights_only=True)["card"]
    np.testing.assert_allclose(card["mean"], imgs.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(card["std"], imgs.std(axis=(0, 2, 3)), rtol=1e-5)
    assert card["input_scale"] == 1e-4 and card["halo"] == 2


def test_resume_gives_the_same_continuation(dataset, tmp_path):
    kw = dict(model="cnn_dual", widths=TINY_DUAL, pixels_per_patch=8, seed=3)
    full = run_train(dataset, tmp_path / "full", epochs=2, **kw)
    run_train(dataset, tmp_path / "part", epochs=1, **kw)
    res = run_train(dataset, tmp_path / "resumed", epochs=2, resume=str(tmp_path / "part" / "last.pt"))
    a = torch.load(full["last"], weights_only=True)
    b = torch.load(res["last"], weights_only=True)
    assert b["epoch"] == 1 and len(b["history"]) == 2
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    assert a["history"][1]["val_loss"] == b["history"][1]["val_loss"]


def test_encoder_from_cnn_class_with_frozen_warmup(dataset, trained, tmp_path):
    src = torch.load(trained["cnn_class"]["best"], weights_only=True)["state_dict"]
    res = run_train(
        dataset,
        tmp_path / "tl",
        model="unet",
        epochs=2,
        freeze_epochs=1,
        encoder_from=trained["cnn_class"]["best"],
        max_steps=2,
    )
    ck = torch.load(res["last"], weights_only=True)
    # epoch 2: fine-tuned
    assert not torch.equal(ck["state_dict"]["encoder.conv1.weight"], src["encoder.conv1.weight"])
    assert ck["frozen_until"] == 1


def test_frozen_epoch_keeps_encoder(dataset, trained, tmp_path):
    src = torch.load(trained["cnn_class"]["best"], weights_only=True)["state_dict"]
    res = run_train(
        dataset,
        tmp_path / "fz",
        model="unet",
        epochs=1,
        freeze_epochs=1,
        encoder_from=trained["cnn_class"]["best"],
        max_steps=2,
    )
    ck = torch.load(res["last"], weights_only=True)
    for k in ("encoder.conv1.weight", "encoder.layer4.1.conv2.weight", "encoder.bn1.running_mean"):
        assert torch.equal(ck["state_dict"][k], src[k]), k
    assert ck["history"][0]["train_loss"] > 0


def test_pixel_sampling_context_and_targets(dataset):
    info = DataInfo(open_dataset(dataset))
    x, y = sample_pixels(info, "train", 5, np.random.default_rng(0), halo=2)
    assert x.shape[1:] == (4, 5, 5) and x.shape[0] == y.shape[0] <= 24 * 5 and y.shape[0] > 24 * 4
    assert int(y.min()) >= 0 and int(y.max()) <= 2
    # the centre pixel's spectrum belongs to its class: nearest class mean
    from .conftest import MEANS

    centre = x[:, :, 2, 2].numpy() / 1e-4
    nearest = np.argmin(((centre[:, None, :] - MEANS[None]) ** 2).sum(-1), axis=1)
    assert (nearest == y.numpy()).mean() > 0.97


def test_augment_transforms_image_and_labels_together():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(16 * 9, dtype=torch.float32).reshape(16, 1, 3, 3).repeat(1, 2, 1, 1)
    y = x[:, 0].long()
    xa, ya = augment(x, y, g)
    assert torch.equal(xa[:, 0].long(), ya) and torch.equal(xa[:, 0], xa[:, 1])
    seen = set()
    for i in range(16):
        cands = [torch.rot90(x[i, 0], k % 4, dims=(-2, -1)) for k in range(8)]
        cands = [c if k < 4 else torch.flip(c, dims=(-1,)) for k, c in enumerate(cands)]
        match = [k for k, c in enumerate(cands) if torch.equal(c, xa[i, 0])]
        assert match, i
        seen.add(match[0])
    assert len(seen) >= 4  # random per sample


def test_class_weights_from_manifest_counts(dataset):
    ds = open_dataset(dataset)
    info = DataInfo(ds)
    w = class_weights(info).numpy()
    c = np.array([ds.class_counts("train")[v] for v in (1, 2, 3)], dtype=float)
    np.testing.assert_allclose(w, c.sum() / (3 * c), rtol=1e-6)


def test_coarse_map_csv_and_non_clc_codes(dataset, tmp_path):
    info = DataInfo(open_dataset(dataset))
    table, f2c = coarse_classes(info)
    assert [c["value"] for c in table] == [2, 3, 5] and f2c.tolist() == [0, 1, 2]
    p = tmp_path / "map.csv"
    p.write_text("fine,coarse,name,color\n1,1,Land,#00ff00\n2,1,Land,\n3,2,Water,0-0-255\n")
    table, f2c = coarse_classes(info, str(p))
    assert table == [
        {"value": 1, "code": "1", "name": "Land", "color": "#00ff00"},
        {"value": 2, "code": "2", "name": "Water", "color": "#0000ff"},
    ]
    assert f2c.tolist() == [0, 0, 1]
    p.write_text("1,1,Land\n")
    with pytest.raises(TrainingError, match=r"no row for fine class value\(s\) \[2, 3\]"):
        coarse_classes(info, str(p))
