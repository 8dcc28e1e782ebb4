"""EuroSAT RGB end to end in the training env: import (8-bit -> DN), the light CNN-class ('satimnet' encoder) with the
recipe's schedule and label smoothing, export; the card carries the input clip and the ONNX model classifies the
dataset's patches through the card's preprocessing (what classify / classifypatches run) like torch does."""

import json
import math
import os

import numpy as np
import pytest

from training.cli import main

from .conftest import ROOT

torch = pytest.importorskip("torch")
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data", "eurosat_rgb")


def _coloured_archive(root, p=16, per_class=12):
    """Three classes of distinct colour (with noise), 8-bit RGB PNGs."""
    from PIL import Image

    rng = np.random.default_rng(4)
    colours = {"Forest": (40, 90, 40), "SeaLake": (20, 40, 110), "Industrial": (200, 190, 180)}
    for c, rgb in colours.items():
        os.makedirs(os.path.join(root, c))
        for i in range(per_class):
            a = np.clip(np.array(rgb)[None, None] + rng.normal(0, 25, (p, p, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a, "RGB").save(os.path.join(root, c, f"{c}_{i}.png"))
    return root


def test_light_cnn_class_size_and_any_input():
    from training.models import count_parameters, get_spec

    m = get_spec("cnn_class").build(3, 10, 0, {"encoder": "satimnet", "dropout": 0.3})
    assert count_parameters(m) == 1_241_578
    assert m(torch.zeros(2, 3, 64, 64)).shape == (2, 10) and m(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    small = get_spec("cnn_class").build(4, 5, 0, {"encoder": "satimnet", "light_widths": [8, 16]})
    assert small(torch.zeros(3, 4, 16, 16)).shape == (3, 5) and count_parameters(small) < count_parameters(m)


def test_cosine_schedule_warms_up_then_decays_to_zero():
    from training.config import TrainConfig
    from training.train import make_scheduler

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = make_scheduler(TrainConfig(schedule="cosine", epochs=4, warmup_epochs=1, lr=0.1), opt, 10)
    lrs = []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.005) and lrs[5] == pytest.approx(0.005 + 0.095 * 0.5)
    assert lrs[10] == pytest.approx(0.1) and lrs[25] == pytest.approx(0.05 * (1 + math.cos(math.pi * 15 / 30)))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and opt.param_groups[0]["lr"] == pytest.approx(0.0)


def test_label_smoothing_is_the_loss():
    import torch.nn.functional as F

    from training.models import get_spec

    spec = get_spec("cnn_class")
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    x, y = torch.randn(6, 3, 4, 4), torch.tensor([0, 1, 2, 3, 4, 0])
    want = F.cross_entropy(net(x), y, label_smoothing=0.1)
    assert float(spec.train_loss(net, x, y, smoothing=0.1)) == pytest.approx(float(want), rel=1e-6)
    assert float(spec.train_loss(net, x, y)) == pytest.approx(float(F.cross_entropy(net(x), y)), rel=1e-6)


@pytest.mark.parametrize(
    "bad,msg",
    [
        ({"schedule": "step"}, "schedule 'step' is not one of plateau, cosine"),
        ({"label_smoothing": 1.0}, "label_smoothing must be in"),
        ({"warmup_epochs": -1}, "warmup_epochs must be >= 0"),
    ],
)
def test_bad_recipe_options(bad, msg):
    from training.config import TrainConfig
    from training.errors import TrainingError

    with pytest.raises(TrainingError, match=msg):
        TrainConfig(model="cnn_class", **bad).resolved()


def test_rgb_import_train_export_card_clip_and_onnx_classes(tmp_path, capsys):
    import onnxruntime as ort

    from satclassify_plugin.core.contract.dataset import Dataset
    from satclassify_plugin.core.contract.modelcard import preprocess
    from training.card import read_card

    root = _coloured_archive(str(tmp_path / "rgb"))
    data, run, onnx_path = str(tmp_path / "ds"), str(tmp_path / "run"), str(tmp_path / "m.onnx")
    assert main(["import", "eurosat", root, "--out", data, "--val-fraction", "0.25", "--test-fraction", "0"]) == 0
    cfg = tmp_path / "r.yaml"
    cfg.write_text(
        open(os.path.join(ROOT, "training", "recipes", "eurosat_rgb.yaml")).read() + "light_widths: [8, 16]\n"
    )
    assert (
        main(
            [
                "train",
                "--config",
                str(cfg),
                "--data",
                data,
                "--out",
                run,
                "--epochs",
                "6",
                "--batch-size",
                "8",
                "--lr",
                "0.01",
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["final"]["val_oa"] >= 0.8, res
    assert main(["export", "--checkpoint", os.path.join(run, "best.pt"), "--out", onnx_path]) == 0
    card = read_card(onnx_path)
    assert card.architecture == "cnn_class" and card.bands == ["B04", "B03", "B02"] and card.tile_size == 16
    assert card.input_clip == [[0.0, 2750.0]] * 3 and card.resolution_m == 10.0
    assert card.training["config"]["encoder"] == "satimnet"
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    ck = torch.load(os.path.join(run, "best.pt"), weights_only=False)
    from training.models import get_spec

    model = get_spec("cnn_class").build(3, 3, 0, ck["config"])
    model.load_state_dict(ck["state_dict"])
    model.eval()
    ds = Dataset(data)
    imgs = np.concatenate([np.asarray(s[0]) for s in ds.shards("val")])
    x = preprocess(card, imgs)
    onnx_cls = sess.run(None, {"image": x})[0].mean(axis=(2, 3)).argmax(1)
    with torch.no_grad():
        torch_cls = model(torch.from_numpy(x)).argmax(1).numpy()
    np.testing.assert_array_equal(onnx_cls, torch_cls)
    # --card-info: a published model's dataset, licence and citation replace the local folder's path
    info = tmp_path / "info.json"
    info.write_text(
        json.dumps(
            {"dataset": {"name": "EuroSAT RGB", "licence": "MIT", "citation": "Helber et al."}, "description": "test"}
        )
    )
    published = str(tmp_path / "pub.onnx")
    assert (
        main(["export", "--checkpoint", os.path.join(run, "best.pt"), "--out", published, "--card-info", str(info)])
        == 0
    )
    pc = read_card(published)
    assert pc.training["dataset"] == {"name": "EuroSAT RGB", "licence": "MIT", "citation": "Helber et al."}
    assert pc.training["description"] == "test" and pc.training["metrics"] == card.training["metrics"]
    assert pc.input_clip == card.input_clip
    capsys.readouterr()
    info.write_text("[1, 2]")
    assert (
        main(
            [
                "export",
                "--checkpoint",
                os.path.join(run, "best.pt"),
                "--out",
                str(tmp_path / "no.onnx"),
                "--card-info",
                str(info),
            ]
        )
        == 2
    )
    assert "must hold a JSON object" in capsys.readouterr().err and not (tmp_path / "no.onnx").exists()
    # a pixel brighter than the clip classifies as if saturated (the training imagery's 255)
    bright = imgs[:1].astype(np.uint16)
    bright[:, :, :4] = 9000
    sat = bright.copy()
    sat[:, :, :4] = 2750
    np.testing.assert_allclose(
        sess.run(None, {"image": preprocess(card, bright)})[0],
        sess.run(None, {"image": preprocess(card, sat)})[0],
        atol=1e-6,
    )


@pytest.mark.skipif(not os.path.isdir(SHARED), reason=f"the shared EuroSAT RGB folder {SHARED} is absent")
def test_real_eurosat_rgb_subset_imports_exactly(tmp_path):
    """Five real images of each of three classes (copied from ../shared/data/eurosat_rgb): every pixel is the DN of
    the decoded JPEG, the names and classes are EuroSAT's."""
    import shutil

    from PIL import Image

    from training.importers.eurosat import rgb_to_dn

    root = tmp_path / "src"
    picked = {}
    for c in ("Forest", "Highway", "SeaLake"):
        os.makedirs(root / c)
        for f in sorted(os.listdir(os.path.join(SHARED, c)))[:5]:
            shutil.copy(os.path.join(SHARED, c, f), root / c / f)
            with Image.open(os.path.join(SHARED, c, f)) as im:
                picked[f"{c}/{os.path.splitext(f)[0]}"] = (c, np.asarray(im).transpose(2, 0, 1))
    out = str(tmp_path / "ds")
    assert main(["import", "eurosat", str(root), "--out", out, "--val-fraction", "0", "--test-fraction", "0"]) == 0
    import sqlite3

    from satclassify_plugin.core.contract.dataset import Dataset

    con = sqlite3.connect(os.path.join(out, "patches.gpkg"))
    rows = {r[0]: r[1:] for r in con.execute('SELECT source, shard, "index" FROM patches')}
    con.close()
    ds = Dataset(out)
    names = [c["code"] for c in ds.manifest["classes"]]
    assert names == ["Forest", "Highway", "SeaLake"] and ds.patch_size == 64
    for name, (cls, rgb) in picked.items():
        shard, idx = rows[name]
        np.testing.assert_array_equal(np.asarray(ds.shards("train")[shard][0][idx]), rgb_to_dn(rgb))
        assert names[int(np.asarray(ds.targets("train")[shard][idx]).argmax())] == cls


def test_calibration_patches_are_spread_over_the_split():
    """The int8 calibration (and its check) take patches spread over the whole split, not the first N: an
    importer writes class by class, so the first 64 would all be one class."""
    from training.quantize import spread

    assert spread(10, 20).tolist() == list(range(10))
    s = spread(21482, 64)
    assert len(s) == 64 and s[0] == 0 and s[-1] == 21481 and (np.diff(s) > 300).all()


def test_amp_on_a_cpu_without_native_bf16_trains_in_float32(dataset, tmp_path, monkeypatch):
    """The recipe asks for bf16 AMP (fast on AVX512-BF16 CPUs); on a CPU that would emulate bf16 (~20x slower) the
    run warns and trains in float32 instead of crawling."""
    import yaml

    import training.train as tr

    from .conftest import run_train

    monkeypatch.setattr(tr, "cpu_bf16_native", lambda: False)
    res = run_train(
        dataset,
        tmp_path / "run",
        model="cnn_class",
        encoder="satimnet",
        light_widths=[8, 16],
        epochs=1,
        amp=True,
        device="cpu",
        max_steps=2,
    )
    assert any("no native bfloat16" in w and "trains in float32" in w for w in res["warnings"])
    assert yaml.safe_load(open(tmp_path / "run" / "config.yaml"))["amp"] is False
    monkeypatch.setattr(tr, "cpu_bf16_native", lambda: True)
    res = run_train(
        dataset,
        tmp_path / "run2",
        model="cnn_class",
        encoder="satimnet",
        light_widths=[8, 16],
        epochs=1,
        amp=True,
        device="cpu",
        max_steps=2,
    )
    assert not any("bfloat16" in w for w in res["warnings"])
    assert yaml.safe_load(open(tmp_path / "run2" / "config.yaml"))["amp"] is True


def test_export_does_not_import_the_training_loop():
    """Exporting (and evaluating) a model loads the checkpoint's model through training/checkpoint.py: neither
    imports training.train (the loop, its optimizers and schedulers)."""
    import subprocess
    import sys

    code = "import sys, training.export, training.evaluate, training.quantize; print('training.train' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
