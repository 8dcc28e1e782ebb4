"""The model catalogue (pure Python, no QGIS): shipped and user models, adding a file (card checked, copied in,
index), ids stable and unique, errors that leave nothing behind, card summaries. The URL case (download through the
plugin's HTTP client, SHA-256 checked) runs against the local fake server in tests/plugin/classify/
test_model_catalogue_qgis.py."""

import hashlib
import json
import os

import pytest

from satclassify_plugin.install import model_catalogue as mc
from tests import onnx_models as om

W = [[40.0, -40.0, 0.0, 0.0], [0.0, 0.0, 0.0, 12.0], [-30.0, 0.0, 30.0, 0.0]]


def _model(path, bands=om.S2_BANDS4, **card_kw):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    return om.patch_model(path, W, activation="softmax", bands=bands, card_kw=card_kw or None)


def open_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def _cat(tmp_path, shipped=()):
    sdir = tmp_path / "shipped"
    sdir.mkdir(exist_ok=True)
    for name in shipped:
        _model(sdir / name)
    return mc.Catalogue(str(tmp_path / "user"), str(sdir))


def _leftovers(folder):
    return (
        sorted(f for f in os.listdir(folder) if f not in (mc.INDEX,) and not f.endswith(mc.EXT))
        if os.path.isdir(folder)
        else []
    )


def test_shipped_models_come_first_and_the_first_is_the_default(tmp_path):
    cat = _cat(tmp_path, ["b_model.onnx", "a_model.onnx"])
    (tmp_path / "shipped" / "notes.txt").write_text("not a model")
    assert cat.ids() == ["a_model", "b_model"]
    assert cat.default_id() == "a_model"
    assert all(e.shipped for e in cat.entries())
    assert cat.get("b_model").path == str(tmp_path / "shipped" / "b_model.onnx")
    with pytest.raises(mc.CatalogueError, match=r"no model 'nope'.*a_model, b_model.*Manage models"):
        cat.get("nope")


def test_empty_catalogue(tmp_path):
    cat = mc.Catalogue(str(tmp_path / "user"), str(tmp_path / "absent"))
    assert cat.entries() == [] and cat.default_id() is None
    assert not (tmp_path / "user").exists()  # listing writes nothing


def test_add_file_copies_checks_and_indexes(tmp_path):
    cat = _cat(tmp_path, ["shipped_one.onnx"])
    src = _model(tmp_path / "My Model (v2).onnx")
    logs = []
    e = cat.add_file(src, name="My model", log=logs.append)
    assert e.id == "My_Model_v2" and not e.shipped and e.name == "My model"
    assert e.path == str(tmp_path / "user" / "My_Model_v2.onnx") and os.path.isfile(e.path)
    assert e.sha256 == hashlib.sha256(open_bytes(src)).hexdigest() == mc.sha256_of(e.path)
    assert e.source == os.path.abspath(src) and e.added
    assert cat.ids() == ["shipped_one", "My_Model_v2"] and cat.default_id() == "shipped_one"
    assert "added model 'My_Model_v2'" in logs[-1]
    index = json.loads((tmp_path / "user" / mc.INDEX).read_text())
    assert index["models"][0]["file"] == "My_Model_v2.onnx" and index["schema_version"] == 1
    # a new Catalogue object (another QGIS session, qgis_process) sees the same list
    assert mc.Catalogue(str(tmp_path / "user"), str(tmp_path / "shipped")).ids() == cat.ids()
    assert _leftovers(tmp_path / "user") == []


def test_same_file_twice_is_one_entry_and_names_stay_unique(tmp_path):
    cat = _cat(tmp_path, ["model.onnx"])
    a = _model(tmp_path / "a" / "model.onnx")
    assert cat.add_file(a).id == "model_2"  # the shipped 'model' keeps its id
    assert cat.add_file(a).id == "model_2"  # the same file again: nothing new
    (tmp_path / "b").mkdir()
    b = om.patch_model(tmp_path / "b" / "model.onnx", W, activation="sigmoid")
    assert cat.add_file(b).id == "model_3"
    assert cat.ids() == ["model", "model_2", "model_3"]
    with pytest.raises(mc.CatalogueError, match=r"already has a model 'model' \(shipped"):
        cat.add_file(b, model_id="model")
    with pytest.raises(mc.CatalogueError, match="already has a model 'model_2'"):
        cat.add_file(b, model_id="model_2")


@pytest.mark.parametrize("what", ["not onnx", "no card", "bad card", "missing"])
def test_add_file_refuses_what_is_not_a_model_and_leaves_nothing(tmp_path, what):
    cat = _cat(tmp_path)
    path = tmp_path / "x.onnx"
    if what == "not onnx":
        path.write_bytes(b"<html>not a model</html>")
        match = "not an ONNX file"
    elif what == "no card":
        om.linear_model(path, [[1.0, 0, 0, 0], [0, 1.0, 0, 0]], with_card=False)
        match = "no SatClassify model card"
    elif what == "bad card":  # the card lists 3 bands, the graph takes 4
        _model(path, bands=["B02", "B03", "B04"])
        match = "3 bands"
    else:
        match = "does not exist"
    with pytest.raises(mc.CatalogueError, match=match):
        cat.add_file(str(path))
    assert cat.entries() == []
    assert not (tmp_path / "user").exists() or os.listdir(tmp_path / "user") == []


def test_remove_a_user_model_not_a_shipped_one(tmp_path):
    cat = _cat(tmp_path, ["s.onnx"])
    e = cat.add_file(_model(tmp_path / "u.onnx"))
    cat.remove("u")
    assert cat.ids() == ["s"] and not os.path.exists(e.path)
    with pytest.raises(mc.CatalogueError, match="shipped with the plugin"):
        cat.remove("s")


def test_a_user_model_whose_file_is_gone_is_not_listed(tmp_path):
    cat = _cat(tmp_path)
    e = cat.add_file(_model(tmp_path / "u.onnx"))
    os.remove(e.path)
    assert cat.entries() == []


def test_a_corrupt_index_is_a_clear_error(tmp_path):
    cat = _cat(tmp_path)
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / mc.INDEX).write_text("{not json")
    with pytest.raises(mc.CatalogueError, match="cannot be read.*fix or delete it"):
        cat.entries()


def test_add_url_refuses_bad_input_before_any_download(tmp_path):
    cat = _cat(tmp_path)
    calls = []
    with pytest.raises(mc.CatalogueError, match="64 hexadecimal digits"):
        cat.add_url("http://127.0.0.1:1/m.onnx", "abc", download=lambda u, d: calls.append(u))
    with pytest.raises(mc.CatalogueError, match="not an http"):
        cat.add_url("file:///etc/passwd", "0" * 64, download=lambda u, d: calls.append(u))
    assert calls == []
    assert mc.normalise_sha256("SHA256:" + "AB" * 32) == "ab" * 32


def test_add_url_with_an_injected_download(tmp_path):
    """The checks of add_url without a network (the fake-server test covers the real client)."""
    cat = _cat(tmp_path)
    src = _model(tmp_path / "remote.onnx")
    good = mc.sha256_of(src)

    def download(url, dest):
        with open(src, "rb") as f, open(dest, "wb") as g:
            g.write(f.read())

    with pytest.raises(mc.CatalogueError, match="checksum mismatch.*Nothing was added"):
        cat.add_url("https://models.example/x/remote.onnx", "0" * 64, download=download)
    assert cat.entries() == [] and _leftovers(tmp_path / "user") == []
    e = cat.add_url("https://models.example/x/remote.onnx?v=1", good.upper(), download=download)
    assert (e.id, e.source, e.sha256) == ("remote", "https://models.example/x/remote.onnx?v=1", good)
    assert _leftovers(tmp_path / "user") == []


def test_card_summary_and_text(tmp_path):
    training = {
        "dataset": {"name": "EuroSAT (RGB)", "licence": "MIT", "citation": "Helber et al. 2019"},
        "epochs": 30,
        "metrics": {"val_oa": 0.9812, "val_macro_f1": 0.98, "per_class_f1": [0.9, 0.8]},
        "crossval": {"folds": 5, "macro_f1": {"mean": 0.9791, "std": 0.0021}},
    }
    path = _model(
        tmp_path / "m.onnx", training=training, bands=["B04", "B03", "B02", "B08"], input_clip=[[0, 2750]] * 4
    )
    cat = _cat(tmp_path)
    e = cat.add_file(path)
    s = mc.entry_summary(e)
    assert s["classes"] == ["class 1", "class 2", "class 3"] and s["task"] == "single-label"
    assert s["bands"] == ["B04", "B03", "B02", "B08"] and s["resolution_m"] == 10.0 and s["tile_size"] == 8
    assert s["figures"] == {
        "val_oa": 0.9812,
        "val_macro_f1": 0.98,
        "crossval.folds": 5.0,
        "crossval.macro_f1.mean": 0.9791,
        "crossval.macro_f1.std": 0.0021,
    }
    assert (s["dataset"], s["licence"], s["citation"], s["epochs"]) == (
        "EuroSAT (RGB)",
        "MIT",
        "Helber et al. 2019",
        30,
    )
    text = mc.summary_text(s)
    for want in (
        "Classes (3): class 1, class 2, class 3",
        "Bands: B04 B03 B02 B08 at 10 m, patch 8 px",
        "val_oa 0.9812",
        "crossval.macro_f1.mean 0.9791",
        "Dataset: EuroSAT (RGB)",
        "Licence: MIT",
        "Citation: Helber et al. 2019",
        "input clipped",
    ):
        assert want in text, text
    # a card with only the synthetic defaults still summarises (no figures, licence not stated)
    plain = mc.summary_text(mc.card_summary(mc.read_card(_model(tmp_path / "p.onnx"))))
    assert "Figures: none in the card" in plain and "Licence: not stated in the card" in plain
    assert "Dataset: synthetic" in plain


def test_user_dir_from_the_environment_or_the_profile(tmp_path):
    assert mc.user_dir("/profile", environ={}) == os.path.join("/profile", "satclassify", "models")
    assert mc.user_dir("/profile", environ={mc.ENV_DIR: str(tmp_path)}) == str(tmp_path)


def test_ids_of_file_names():
    assert mc.model_id_of("/a/b/EuroSAT rgb.onnx") == "EuroSAT_rgb"
    assert mc.model_id_of("C:\\m\\x.ONNX") == "x"
    assert mc.model_id_of("...onnx") == "model"


def test_shipped_models_all_have_valid_cards():
    """Every .onnx the plugin ships (resources/onnx/) opens with a valid card and summarises."""
    cat = mc.Catalogue(os.devnull)
    for e in cat.shipped():
        s = mc.card_summary(mc.read_card(e.path))
        assert s["classes"] and s["bands"], e.id
        assert mc.summary_text(s)
