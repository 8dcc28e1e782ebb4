"""ONNX export: graph contract, model card, parity, onnxruntime predictions vs torch and evaluate."""
import json
import os

import numpy as np
import pytest

from satclassify_plugin.core.metrics import ConfusionMatrix
from satclassify_plugin.core.modelcard import card_from_metadata, parse_card
from training import export as export_mod
from training.card import read_card, write_card
from training.data import DataInfo, open_dataset
from training.errors import TrainingError
from training.evaluate import evaluate

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    out = {}
    for arch in ("cnn_dual", "unet", "cnn_class"):
        out[arch] = export_mod.export(trained[arch]["best"], str(d / f"{arch}.onnx"), log=None)
    return out


def _session(path):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def _props(path):
    return {p.key: p.value for p in onnx.load(path).metadata_props}


def test_card_in_metadata_is_valid(exported):
    res = exported["cnn_dual"]
    props = _props(res["path"])
    card = parse_card(props["satclassify"])
    assert card.architecture == "cnn_dual" and card.bands == ["B02", "B03", "B04", "B08"]
    assert card.halo == 2 and card.tile_size == 128 and card.input_scale == 1e-4 and card.resolution_m == 10.0
    assert [h.output for h in card.heads] == ["probs_class", "probs_coarse"]
    assert [(c.value, c.name, c.color) for c in card.heads[0].classes] == [
        (1, "Arable land", "#ffffa8"), (2, "Broad-leaved forest", "#80ff00"), (3, "Water bodies", "#80f2e6")]
    assert [(c.value, c.code) for c in card.heads[1].classes] == [(2, "2"), (3, "3"), (5, "5")]
    assert card.training["metrics"]["val_oa"] > 0.9
    sess = _session(res["path"])
    outs = [o.name for o in sess.get_outputs()]
    assert card_from_metadata(props, outs, 4).heads[1].output == "probs_coarse"
    u = read_card(exported["unet"]["path"])
    assert u.halo == 32 and u.tile_size % 32 == 0 and len(u.heads) == 1


def test_graph_io_names_dynamic_shapes_and_softmax(exported):
    for arch, res in exported.items():
        sess = _session(res["path"])
        inp = sess.get_inputs()
        assert [i.name for i in inp] == ["image"]
        assert all(d < 1e-4 for d in res["max_abs_diff"].values()), res["max_abs_diff"]
        assert set(res["max_abs_diff"]) == {"random", "tile"}
        if arch == "cnn_class":
            shape = (3, 4, 32, 32)
        elif arch == "unet":
            shape = (2, 4, 96, 64)
        else:
            shape = (2, 4, 19, 27)
        x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
        outs = sess.run(None, {"image": x})
        for o, k in zip(outs, [3, 3] if arch == "cnn_dual" else [3]):
            assert o.shape == (shape[0], k, shape[2], shape[3])
            np.testing.assert_allclose(o.sum(axis=1), 1.0, atol=1e-5)


def test_onnx_predictions_match_evaluate_metrics(exported, trained, dataset, tmp_path):
    """Run the exported CNN-dual over the test patches like the classify tool would (standardise with the
    card) and compare its confusion matrix with `evaluate` (torch)."""
    res = exported["cnn_dual"]
    card = res["card"]
    info = DataInfo(open_dataset(dataset))
    sess = _session(res["path"])
    cm = ConfusionMatrix([1, 2, 3])
    for imgs, labels, _ in info.shards("test"):
        x = (np.asarray(imgs, np.float64) * card.input_scale - np.array(card.mean)[:, None, None]) \
            / np.array(card.std)[:, None, None]
        probs = sess.run(["probs_class"], {"image": x.astype(np.float32)})[0]
        cm.update(np.asarray(labels), probs.argmax(1) + 1)
    ev = evaluate(trained["cnn_dual"]["best"], dataset, "test", "cpu", str(tmp_path / "m.json"))
    assert ev["heads"]["class"]["confusion_matrix"] == cm.matrix.tolist()
    assert ev["heads"]["class"]["overall_accuracy"] > 0.9
    assert set(ev["heads"]) == {"class", "coarse"}
    with open(tmp_path / "m.json") as f:
        assert json.load(f)["heads"]["coarse"]["overall_accuracy"] == ev["heads"]["coarse"]["overall_accuracy"]


def test_parity_failure_is_loud_and_writes_nothing(trained, tmp_path, monkeypatch):
    monkeypatch.setattr(export_mod, "TOLERANCE", -1.0)
    out = tmp_path / "bad.onnx"
    with pytest.raises(TrainingError, match="ONNX parity check failed: max abs diff"):
        export_mod.export(trained["cnn_dual"]["best"], str(out), log=None)
    assert not out.exists() and os.listdir(tmp_path) == []


def test_write_card_on_any_onnx_file(exported, tmp_path):
    import shutil
    p = str(tmp_path / "m.onnx")
    shutil.copy(exported["unet"]["path"], p)
    m = onnx.load(p)
    del m.metadata_props[:]
    m.metadata_props.add(key="other", value="kept")
    onnx.save(m, p)
    card = exported["unet"]["card"].to_dict()
    card["heads"][0]["classes"][0]["name"] = "Fields"
    write_card(p, card)
    props = _props(p)
    assert props["other"] == "kept" and parse_card(props["satclassify"]).heads[0].classes[0].name == "Fields"
    bad = dict(card, heads=[dict(card["heads"][0], output="probs_nothing")])
    with pytest.raises(TrainingError, match="names output 'probs_nothing'"):
        write_card(p, bad)
    with pytest.raises(Exception, match="colour"):
        write_card(p, dict(card, heads=[dict(card["heads"][0], classes=[{"value": 1, "color": "red"}])]))
    assert parse_card(_props(p)["satclassify"]).heads[0].classes[0].name == "Fields"  # unchanged
