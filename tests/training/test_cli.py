"""CLI: YAML config + overrides, exit codes and one-line errors for bad input."""

import json
import os
import subprocess
import sys

from training.cli import main
from training.config import make_config

from .conftest import ROOT, make_dataset


def _err(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_yaml_config_and_flags_override(tmp_path):
    p = tmp_path / "cfg.yaml"
    p.write_text("model: cnn_dual\nepochs: 7\nlr: 0.05\nbatch-size: 64\nbands: [B02, B08]\n")
    cfg = make_config(str(p), {"epochs": 2}).resolved()
    assert (cfg.model, cfg.epochs, cfg.lr, cfg.batch_size, cfg.bands, cfg.optimizer) == (
        "cnn_dual",
        2,
        0.05,
        64,
        ["B02", "B08"],
        "sgd",
    )
    p.write_text("modle: unet\n")
    assert main(["train", "--data", str(tmp_path), "--config", str(p)]) == 2


def test_missing_manifest(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path), "--model", "cnn_dual"]) == 2
    assert "has no manifest.json" in _err(capsys)


def test_bad_device(dataset, tmp_path, capsys):
    assert main(["train", "--data", dataset, "--device", "tpu", "--out", str(tmp_path / "r")]) == 2
    assert _err(capsys) == "error: --device 'tpu' is not one of auto, cpu, cuda, cuda:N"
    import torch

    if not torch.cuda.is_available():
        assert main(["train", "--data", dataset, "--device", "cuda", "--out", str(tmp_path / "r")]) == 2
        assert "no CUDA device is available" in _err(capsys)


def test_band_mismatch(dataset, trained, tmp_path, capsys):
    assert main(["train", "--data", dataset, "--bands", "B02,B05", "--out", str(tmp_path / "r")]) == 2
    assert "band(s) B05 not in the dataset" in _err(capsys)
    other = make_dataset(tmp_path / "rgb", splits=(("test", 2),), bands=["B02", "B03", "B04"])
    assert main(["evaluate", "--checkpoint", trained["cnn_dual"]["best"], "--data", other]) == 2
    msg = _err(capsys)
    assert "trained on bands ['B02', 'B03', 'B04', 'B08']" in msg and "['B02', 'B03', 'B04']" in msg


def test_empty_split(tmp_path, trained, capsys):
    d = make_dataset(tmp_path / "d", splits=(("val", 2),), declare=("train",))
    assert main(["train", "--data", d, "--model", "cnn_dual", "--out", str(tmp_path / "r")]) == 2
    assert "'train' split is empty" in _err(capsys)
    assert main(["evaluate", "--checkpoint", trained["cnn_dual"]["best"], "--data", d, "--split", "test"]) == 2
    assert "'test' split is empty" in _err(capsys)
    assert not os.path.exists(tmp_path / "r")


def test_evaluate_and_export_via_main(trained, dataset, tmp_path, capsys):
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                trained["unet"]["best"],
                "--data",
                dataset,
                "--split",
                "val",
                "--out",
                str(tmp_path / "m.json"),
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["heads"]["class"]["pixels"] > 0 and os.path.isfile(tmp_path / "m.json")
    assert main(["export", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "does not exist" in _err(capsys)


def test_module_entry_point_exit_code_without_traceback(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run(
        [sys.executable, "-m", "training", "train", "--data", str(tmp_path / "none")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: dataset folder '{tmp_path / 'none'}' does not exist"
    assert "Traceback" not in r.stderr


def test_unet_tile_size_must_fit_the_halo(dataset, tmp_path, capsys):
    assert main(["train", "--data", dataset, "--model", "unet", "--tile-size", "64", "--out", str(tmp_path / "r")]) == 2
    assert _err(capsys) == "error: tile_size 64 must be a multiple of 32 larger than 64 for the U-Net (e.g. 256)"


def test_amp_bf16_on_cpu_trains(dataset, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("widths: {s1: 8, s2: 16, s3: 16, head: 16}\npixels_per_patch: 4\nprogress: false\n")
    assert (
        main(
            [
                "train",
                "--data",
                dataset,
                "--model",
                "cnn_dual",
                "--config",
                str(cfg),
                "--epochs",
                "1",
                "--amp",
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "amp bfloat16" in out
    final = json.loads(out.strip().splitlines()[-1])["final"]
    assert final["train_loss"] > 0 and final["val_oa"] is not None


def _one_class_dataset(folder, classes=None):
    """Patches whose labelled pixels are all value 1 (the manifest may list more classes)."""
    import numpy as np

    from satclassify_plugin.core.contract.dataset import DatasetSpec, DatasetWriter

    from .conftest import CLASSES, synth_patch

    rng = np.random.default_rng(5)
    w = DatasetWriter(
        str(folder), DatasetSpec(["B02", "B03", "B04", "B08"], 32, classes or CLASSES, shard_size=16), overwrite=True
    )
    for split, n in (("train", 6), ("val", 2)):
        for _ in range(n):
            img, lab = synth_patch(rng, 32)
            lab[lab > 0] = 1
            w.add(split, img, lab)
    w.close({"resolution_m": 10.0})
    return str(folder)


def test_single_class_dataset_warns(dataset, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("widths: {s1: 8, s2: 16, s3: 16, head: 16}\npixels_per_patch: 4\nprogress: false\n")
    args = ["--model", "cnn_dual", "--config", str(cfg), "--epochs", "1", "--device", "cpu"]
    for classes, listed in ((None, 3), ([{"value": 1, "code": "211", "name": "Arable land", "color": "#ffffa8"}], 1)):
        d = _one_class_dataset(tmp_path / f"one{listed}", classes)
        assert main(["train", "--data", d, *args, "--out", str(tmp_path / f"r{listed}")]) == 0
        out = capsys.readouterr()
        warns = [ln for ln in out.err.splitlines() if ln.startswith("warning: ")]
        assert len(warns) == 1, out.err
        assert (
            warns[0].startswith(
                "warning: the dataset has only one class in its 'train' split (value 1 'Arable land', code 211, "
            )
            and f"the class table lists {listed})" in warns[0]
        )
        assert "the model cannot learn to separate classes" in warns[0] and "CLC field and level" in warns[0]
        assert json.loads(out.out.strip().splitlines()[-1])["epochs_run"] == 1
    assert main(["train", "--data", dataset, *args, "--out", str(tmp_path / "r-all")]) == 0  # r3 holds a run
    assert "warning" not in capsys.readouterr().err


def test_labelled_classes_without_manifest_counts(tmp_path, monkeypatch):
    from training.data import DataInfo, labelled_classes, open_dataset

    info = DataInfo(open_dataset(_one_class_dataset(tmp_path / "d")))
    from_manifest = labelled_classes(info)
    monkeypatch.setattr(type(info.ds), "class_counts", lambda self, split: {})
    assert labelled_classes(info) == from_manifest and [c["value"] for c, _ in from_manifest] == [1]
