"""evaluate --model FILE.onnx: onnxruntime + the card's preprocessing as the plugin runs it; --split all; the JSON's
headline keys (also for --checkpoint)."""

import csv
import json
import os

import numpy as np
import pytest

from training.cli import main

from .conftest import make_dataset, run_train

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

HEADLINE = ("oa", "macro_f1", "kappa", "f1_per_class", "confusion_matrix")


@pytest.fixture(scope="module")
def models(dataset, tmp_path_factory):
    """Small CNN-class and U-Net checkpoints on the session dataset and their ONNX exports."""
    from training.export import export

    d = tmp_path_factory.mktemp("evonnx")
    out = {}
    for arch, kw in (("cnn_class", dict(epochs=2)), ("unet", dict(epochs=1, batch_size=4, lr=3e-3))):
        res = run_train(dataset, d / arch, model=arch, **kw)
        out[arch] = (res["best"], export(res["best"], str(d / f"{arch}.onnx"), log=None)["path"])
    return out


def _err(capsys):
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.startswith("error: ")]
    assert len(err) == 1, err
    return err[0]


def _plugin_cell_classes(onnx_path, imgs):
    """The class index of each patch as classifypatches computes a grid cell's (core/classify/patches.py): float32
    raw * a + b, the clip to the card's input bounds, nodata (DN 0) set to 0, the mean of the output over the
    cell, argmax."""
    from satclassify_plugin.core.classify.inference import input_bounds, load_model, scale_coefficients

    model = load_model(onnx_path, "CPU")
    a, b = scale_coefficients(model.card)
    bounds = input_bounds(model.card)
    out = []
    for img in imgs:
        x = img.astype(np.float32) * a[:, None, None] + b[:, None, None]
        if bounds is not None:
            np.clip(x, bounds[0][:, None, None], bounds[1][:, None, None], out=x)
        x[:, (img == 0).any(axis=0)] = 0.0
        o = model.run(x[None])[0][:1]
        out.append(int(o.reshape(1, o.shape[1], -1).mean(axis=2).astype(np.float64).argmax(1)[0]))
    return out


def test_cnn_class_onnx_gives_the_checkpoints_classes(models, dataset, tmp_path):
    from training.evaluate import evaluate
    from training.evaluate_onnx import evaluate_onnx

    ckpt, onnx_path = models["cnn_class"]
    ck = evaluate(ckpt, dataset, "val", "cpu", str(tmp_path / "ck.json"))
    ox = evaluate_onnx(
        onnx_path, dataset, "val", "cpu", str(tmp_path / "ox.json"), predictions=str(tmp_path / "pred.csv")
    )
    assert ox["mode"] == "patch" and ox["evaluated_with"] == "onnxruntime" and ox["patches"] == 8
    for key in HEADLINE:
        assert key in ck and key in ox
    assert ox["confusion_matrix"]["matrix"] == ck["confusion_matrix"]["matrix"]
    assert ox["oa"] == ck["oa"] == ck["heads"]["class"]["overall_accuracy"]
    assert ox["macro_f1"] == pytest.approx(ck["macro_f1"]) and ox["kappa"] == pytest.approx(ck["kappa"])
    assert set(ox["f1_per_class"]) == {"Arable land", "Broad-leaved forest", "Water bodies"}
    assert ox["confusion_matrix"]["values"] == [1, 2, 3] and ox["confusion_matrix"]["rows"] == "reference"
    assert json.load(open(tmp_path / "ox.json"))["oa"] == ox["oa"]
    # each patch's class is the one classifypatches gives that patch as a grid cell
    from satclassify_plugin.core.contract.dataset import Dataset

    imgs = Dataset(dataset).load("val")[0]
    rows = list(csv.DictReader(open(tmp_path / "pred.csv")))
    assert [(r["split"], int(r["shard"]), int(r["index"])) for r in rows] == [("val", 0, i) for i in range(8)]
    values = [1, 2, 3]
    assert [int(r["predicted"]) for r in rows] == [values[i] for i in _plugin_cell_classes(onnx_path, imgs)]


def test_unet_onnx_pixel_metrics_match_the_checkpoint(models, dataset, tmp_path):
    from training.evaluate import evaluate
    from training.evaluate_onnx import evaluate_onnx

    ckpt, onnx_path = models["unet"]
    ck = evaluate(ckpt, dataset, "test", "cpu", str(tmp_path / "ck.json"))
    ox = evaluate_onnx(onnx_path, dataset, "test", "cpu", str(tmp_path / "ox.json"))
    assert ox["mode"] == "pixel"
    a, b = np.asarray(ox["confusion_matrix"]["matrix"]), np.asarray(ck["confusion_matrix"]["matrix"])
    assert a.sum() == b.sum() == ck["heads"]["class"]["pixels"]
    assert np.abs(a - b).sum() <= 0.001 * a.sum()  # float32 rounding only (ties)
    assert ox["oa"] == pytest.approx(ck["oa"], abs=1e-3)


def test_split_all_evaluates_every_patch(models, dataset, tmp_path, capsys):
    ckpt, onnx_path = models["cnn_class"]
    assert (
        main(
            ["evaluate", "--model", onnx_path, "--data", dataset, "--split", "all", "--out", str(tmp_path / "all.json")]
        )
        == 0
    )
    ox = json.loads(capsys.readouterr().out)
    assert ox["splits"] == ["train", "val", "test"] and ox["patches"] == 40 and ox["split"] == "all"
    assert np.asarray(ox["confusion_matrix"]["matrix"]).sum() == 40
    assert main(["evaluate", "--checkpoint", ckpt, "--data", dataset, "--split", "all"]) == 0
    ck = json.loads(capsys.readouterr().out)
    assert ck["confusion_matrix"]["matrix"] == ox["confusion_matrix"]["matrix"]
    assert os.path.isfile(os.path.join(os.path.dirname(ckpt), "metrics-all.json"))
    # the per-split matrices add up to the one of all
    total = 0
    for s in ("train", "val", "test"):
        assert (
            main(
                [
                    "evaluate",
                    "--model",
                    onnx_path,
                    "--data",
                    dataset,
                    "--split",
                    s,
                    "--out",
                    str(tmp_path / f"{s}.json"),
                ]
            )
            == 0
        )
        total = total + np.asarray(json.loads(capsys.readouterr().out)["confusion_matrix"]["matrix"])
    assert total.tolist() == ox["confusion_matrix"]["matrix"]


def test_the_cards_input_clip_is_applied(models, dataset, tmp_path):
    """A card with input_clip: evaluate clips the raw bands before scaling (modelcard.preprocess) as the plugin."""
    import shutil

    from satclassify_plugin.core.contract.dataset import Dataset
    from satclassify_plugin.core.contract.modelcard import preprocess
    from training.card import read_card, write_card
    from training.evaluate_onnx import evaluate_onnx, model_input

    _ckpt, onnx_path = models["cnn_class"]
    clipped = str(tmp_path / "clipped.onnx")
    shutil.copy(onnx_path, clipped)
    card = read_card(clipped)
    card.input_clip = [[0, 700]] * card.num_bands  # below most of the classes' signatures
    write_card(clipped, card)
    ox = evaluate_onnx(clipped, dataset, "val", "cpu", str(tmp_path / "m.json"), predictions=str(tmp_path / "p.csv"))
    assert ox["preprocessing"]["input_clip"] == [[0, 700]] * 4
    imgs = Dataset(dataset).load("val")[0]
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert [int(r["predicted"]) for r in rows] == [[1, 2, 3][i] for i in _plugin_cell_classes(clipped, imgs)]
    # the float32 arithmetic is the card's one definition of the preprocessing (modelcard.preprocess)
    from satclassify_plugin.core.classify.inference import input_bounds, scale_coefficients

    card = read_card(clipped)
    a, b = scale_coefficients(card)
    x = model_input(imgs, a, b, input_bounds(card))
    np.testing.assert_allclose(x, preprocess(card, imgs), rtol=1e-5, atol=1e-5)
    assert np.isclose(
        x.max(axis=(0, 2, 3)), (700 * card.input_scale - np.array(card.mean)) / np.array(card.std), rtol=1e-5
    ).all()


def test_evaluate_model_errors(models, dataset, tmp_path, capsys):
    ckpt, onnx_path = models["cnn_class"]
    with pytest.raises(SystemExit) as e:  # exactly one of --checkpoint and --model
        main(["evaluate", "--checkpoint", ckpt, "--model", onnx_path, "--data", dataset])
    assert e.value.code == 2
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["evaluate", "--data", dataset])
    capsys.readouterr()
    rgb = make_dataset(tmp_path / "rgb", splits=(("test", 2),), bands=["B02", "B03", "B04"])
    assert main(["evaluate", "--model", onnx_path, "--data", rgb]) == 2
    assert "needs the bands B02, B03, B04, B08; the dataset has B02, B03, B04 (missing B08)" in _err(capsys)
    small = make_dataset(tmp_path / "small", splits=(("test", 2),), p=16)
    assert main(["evaluate", "--model", onnx_path, "--data", small]) == 2
    assert "takes 32 x 32 pixel patches but the dataset's patches are 16 x 16" in _err(capsys)
    assert main(["evaluate", "--model", onnx_path, "--data", dataset, "--split", "nope"]) == 2
    assert "the dataset's 'nope' split is empty or missing" in _err(capsys)
    assert main(["evaluate", "--model", str(tmp_path / "none.onnx"), "--data", dataset]) == 2
    assert "does not exist" in _err(capsys)
    assert main(["evaluate", "--checkpoint", ckpt, "--data", dataset, "--predictions", str(tmp_path / "p.csv")]) == 2
    assert "--predictions is written with --model" in _err(capsys)
    assert main(["evaluate", "--model", onnx_path, "--data", dataset, "--out", onnx_path]) == 2
    assert "would destroy that input" in _err(capsys)
