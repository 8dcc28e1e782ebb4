"""Multi-label (BigEarthNet-style) and single-label (EuroSAT-style) patch classification: train, thresholds,
metrics, export with sigmoid outputs and thresholds in the card, evaluate, resnet50, U-Net encoder transfer."""

import json
import os

import numpy as np
import pytest

from tests import benchmark_archives as ba
from training.cli import main

from .conftest import run_train

torch = pytest.importorskip("torch")
pytest.importorskip("rasterio")

FAST = {
    "encoder": "resnet18",
    "batch_size": 4,
    "epochs": 2,
    "model": "cnn_class",
    "progress": False,
    "early_stopping": 0,
}


@pytest.fixture(scope="module")
def ben_ds(tmp_path_factory):
    """The 6-patch BigEarthNet-style archive imported with four 10 m bands."""
    base = tmp_path_factory.mktemp("ml")
    ba.bigearthnet_archive(str(base / "src"))
    out = str(base / "ds")
    assert main(["import", "bigearthnet", str(base / "src"), "--out", out, "--bands", "B02,B03,B04,B08"]) == 0
    return out


@pytest.fixture(scope="module")
def ml_run(ben_ds, tmp_path_factory):
    from training.config import TrainConfig
    from training.train import train

    out = tmp_path_factory.mktemp("mlrun") / "run"
    return train(TrainConfig(data=ben_ds, out=str(out), class_weights=True, **FAST))


def test_multilabel_training_reports_f1_map_and_thresholds(ml_run, ben_ds):
    assert ml_run["epochs_run"] == 2
    row = ml_run["history"][-1]
    for key in ("val_loss", "val_micro_f1", "val_macro_f1", "val_map"):
        assert row[key] is not None and 0.0 <= row[key] <= (1.0 if key != "val_loss" else 1e3), key
    ck = torch.load(ml_run["best"], weights_only=True)
    assert ck["card"]["heads"][0]["task"] == "multilabel" and ck["card"]["heads"][0]["activation"] == "sigmoid"
    assert len(ck["thresholds"]) == 43 and all(0.0 <= t <= 1.0 for t in ck["thresholds"])
    log = open(os.path.join(ml_run["run_dir"], "log.csv")).read().splitlines()[0].split(",")
    assert {"val_micro_f1", "val_macro_f1", "val_map"} <= set(log)


def test_pos_weights_from_target_counts(ben_ds):
    from training.data import DataInfo, open_dataset, pos_weights

    info = DataInfo(open_dataset(ben_ds))
    w = pos_weights(info, "train").numpy()
    man = json.load(open(os.path.join(ben_ds, "manifest.json")))
    n = man["splits"]["train"]["patches"]
    for c, wk in zip(man["classes"], w):
        pos = man["splits"]["train"]["target_counts"][str(c["value"])]
        assert wk == pytest.approx(min(max((n - pos) / pos, 0.01), 100.0) if pos else 1.0)  # clipped to 1/100..100


def test_export_sigmoid_outputs_and_thresholds(ml_run, tmp_path):
    import onnxruntime as ort

    from training.card import read_card
    from training.evaluate import load_model

    out = str(tmp_path / "ml.onnx")
    assert main(["export", "--checkpoint", ml_run["best"], "--out", out]) == 0
    card = read_card(out)
    h = card.heads[0]
    ck = torch.load(ml_run["best"], weights_only=True)
    assert (h.task, h.activation, card.tile_size, card.halo) == ("multilabel", "sigmoid", 24, 0)
    assert h.thresholds == pytest.approx(ck["thresholds"])
    assert [c.code for c in h.classes][:3] == ["111", "112", "121"]
    x = np.random.default_rng(0).normal(0, 1, (2, 4, 24, 24)).astype(np.float32)
    got = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    with torch.no_grad():
        ref = torch.sigmoid(load_model(ck)(torch.from_numpy(x))).numpy()
    assert got.shape == (2, 43, 24, 24)
    np.testing.assert_allclose(got[:, :, 5, 7], ref, atol=1e-5)  # every pixel of a tile: the patch's sigmoid
    np.testing.assert_allclose(got[:, :, 0, 0], got[:, :, 23, 23])
    assert not np.allclose(got[:, :, 0, 0].sum(1), 1.0)  # independent probabilities, not a softmax


def test_evaluate_uses_the_checkpoint_thresholds(ml_run, ben_ds, tmp_path):
    from training.evaluate import evaluate

    res = evaluate(ml_run["best"], ben_ds, "test", "cpu", str(tmp_path / "m.json"))
    m = res["heads"]["class"]
    ck = torch.load(ml_run["best"], weights_only=True)
    assert m["thresholds"] == pytest.approx(ck["thresholds"]) and m["thresholds_from"].startswith("given")
    assert m["samples"] == 3 and 0 <= m["micro_f1"] <= 1 and m["map"] is not None
    assert [c["name"] for c in m["classes"]][:2] == ["Continuous urban fabric", "Discontinuous urban fabric"]
    support = {c["name"]: c["support"] for c in m["classes"] if c["support"]}
    # seed 0 puts the three neighbouring S2A patches in test
    assert support == {"Coniferous forest": 2, "Water bodies": 2, "Peat bogs": 1, "Transitional woodland-shrub": 1}


def test_unet_refuses_a_patch_only_dataset(ben_ds, tmp_path, capsys):
    assert main(["train", "--data", ben_ds, "--model", "unet", "--device", "cpu", "--out", str(tmp_path / "u")]) == 2
    err = capsys.readouterr().err
    assert "has patch-level targets only (task multilabel, no pixel labels): a U-Net needs pixel labels" in err


def test_resnet50_multilabel(ben_ds, tmp_path):
    res = run_train(ben_ds, tmp_path / "r50", **{**FAST, "encoder": "resnet50", "epochs": 1, "max_steps": 1})
    assert res["num_parameters"] > 23_000_000 and res["history"][0]["val_map"] is not None


def test_multilabel_encoder_initialises_a_unet(ml_run, dataset, tmp_path):
    """Two-stage fine-tuning (Ulmas & Liiv): the patch classifier's encoder, frozen for the first epoch."""
    from training.evaluate import load_model

    res = run_train(
        dataset,
        tmp_path / "unet",
        model="unet",
        epochs=1,
        freeze_epochs=1,
        batch_size=4,
        encoder_from=ml_run["best"],
        tile_size=96,
    )
    src = torch.load(ml_run["best"], weights_only=True)["state_dict"]
    unet = load_model(torch.load(res["last"], weights_only=True))
    enc = {k: v for k, v in unet.encoder.state_dict().items()}
    for k, v in src.items():
        if k.startswith("encoder."):
            torch.testing.assert_close(enc[k[len("encoder.") :]], v, msg=k)  # frozen: weights and BN statistics


def test_singlelabel_eurosat_trains(tmp_path):
    root = str(tmp_path / "eurosat")
    ba.eurosat_archive(root, per_class=4)
    ds = str(tmp_path / "ds")
    assert main(["import", "eurosat", root, "--out", ds, "--bands", "B02,B03,B04,B08"]) == 0
    res = run_train(ds, tmp_path / "run", **FAST)
    row = res["history"][-1]
    assert row["val_oa"] is not None and "val_map" not in row  # single label: OA / F1 from the confusion matrix
    out = str(tmp_path / "es.onnx")
    assert main(["export", "--checkpoint", res["best"], "--out", out]) == 0
    from training.card import read_card

    h = read_card(out).heads[0]
    assert (h.task, h.activation, h.thresholds) == ("multiclass", "softmax", None)
    assert [c.name for c in h.classes] == ["Forest", "Residential", "Sea or lake"]


def test_pixel_labels_with_targets_train_both_ways(tmp_path):
    """A buildpatches dataset with TARGET_FRACTION holds pixel labels and targets: cnn_class learns the targets
    (multi-label), a U-Net the pixel labels."""
    from satclassify_plugin.core.contract.dataset import DatasetSpec, DatasetWriter

    from .conftest import BANDS, CLASSES, synth_patch

    rng = np.random.default_rng(0)
    w = DatasetWriter(str(tmp_path / "ds"), DatasetSpec(BANDS, 32, CLASSES, task="multilabel", splits=("train", "val")))
    for split, n in (("train", 8), ("val", 4)):
        for _ in range(n):
            img, lab = synth_patch(rng, 32)
            frac = np.array([(lab == c["value"]).sum() for c in CLASSES]) / max((lab > 0).sum(), 1)
            w.add(split, img, lab, target=(frac >= 0.2).astype(np.uint8))
    w.close({"resolution_m": 10.0})
    ml = run_train(str(tmp_path / "ds"), tmp_path / "cls", **{**FAST, "epochs": 1})
    assert ml["history"][0]["val_map"] is not None
    seg = run_train(str(tmp_path / "ds"), tmp_path / "unet", model="unet", epochs=1, batch_size=4, tile_size=96)
    assert seg["history"][0]["val_miou"] is not None and "val_map" not in seg["history"][0]
