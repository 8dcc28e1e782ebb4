"""The model list in QGIS: classifypatches' MODEL_ID (a model of the list, by id; a MODEL file wins), the raster
layer's right-click action with the default model, Plugins > SatClassify > Manage models... (list, card summary, add
from a file, add from a URL with a SHA-256 through the plugin's HTTP client against the local fake server, remove).
Tests make their own small models; the shipped folder is replaced by a temporary one."""

import hashlib
import os

import numpy as np
import pytest
from qgis.core import QgsProcessingException, QgsProject, QgsRasterLayer, QgsVectorLayer

from satclassify_plugin import compat
from satclassify_plugin.install import model_catalogue as mc
from tests import onnx_models as om
from tests.rasters import make_raster

from .. import fake_servers as fs

ALG = "satclassify:classifypatches"
W = [[40.0, -40.0, 0.0, 0.0], [0.0, 0.0, 0.0, 12.0], [-30.0, 0.0, 30.0, 0.0]]
W2 = [[-40.0, 40.0, 0.0, 0.0], [0.0, 0.0, 0.0, -12.0], [30.0, 0.0, -30.0, 0.0]]


@pytest.fixture
def catalogue(tmp_path, monkeypatch):
    """A shipped folder with one model ('first'), an empty user folder (SATCLASSIFY_MODELS_DIR)."""
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    om.patch_model(
        shipped / "first.onnx",
        W,
        activation="softmax",
        card_kw={"training": {"dataset": {"name": "synthetic", "licence": "CC0"}, "metrics": {"val_oa": 0.93}}},
    )
    monkeypatch.setattr(mc, "SHIPPED_DIR", str(shipped))
    monkeypatch.setenv(mc.ENV_DIR, str(tmp_path / "user"))
    return mc.Catalogue(str(tmp_path / "user"))


@pytest.fixture
def server():
    srv = fs.FakeServer()
    yield srv
    srv.close()


def _scene(tmp_path):
    raw = np.random.default_rng(1).integers(200, 5000, (4, 24, 32)).astype(np.uint16)
    return make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4), raw


def _tops(path):
    layer = QgsVectorLayer(path, "p", "ogr")
    assert layer.isValid()
    return {(f["row"], f["col"]): f["top_value"] for f in layer.getFeatures()}


def _expected_tops(raw, weights):
    return {
        (r, c): int(
            np.argmax(
                om.patch_expected(raw[:, r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8], weights, activation="softmax")
            )
        )
        + 1
        for r in range(raw.shape[1] // 8)
        for c in range(raw.shape[2] // 8)
    }


def test_model_id_runs_a_model_of_the_list_and_a_file_wins(run_alg, catalogue, tmp_path):
    src, raw = _scene(tmp_path)
    user = catalogue.add_file(om.patch_model(tmp_path / "mine.onnx", W2, activation="softmax"))
    assert catalogue.ids() == ["first", "mine"]
    # no model named: the default, the first shipped model
    res = run_alg(ALG, {"INPUT": src, "OUTPUT": str(tmp_path / "a.gpkg")})
    assert _tops(res["OUTPUT"]) == _expected_tops(raw, W)
    # a user model by its id (what qgis_process and a saved model pass)
    res = run_alg(ALG, {"INPUT": src, "MODEL_ID": "mine", "OUTPUT": str(tmp_path / "b.gpkg")})
    assert _tops(res["OUTPUT"]) == _expected_tops(raw, W2)
    # a MODEL file given wins over the list (the old parameter keeps working)
    res = run_alg(ALG, {"INPUT": src, "MODEL_ID": "first", "MODEL": user.path, "OUTPUT": str(tmp_path / "c.gpkg")})
    assert _tops(res["OUTPUT"]) == _expected_tops(raw, W2)


def test_no_model_and_unknown_id_are_clear_errors(run_alg, tmp_path, monkeypatch):
    monkeypatch.setattr(mc, "SHIPPED_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv(mc.ENV_DIR, str(tmp_path / "user"))
    src, _raw = _scene(tmp_path)
    with pytest.raises(QgsProcessingException, match=r"no model: choose one in the model list \(MODEL_ID\)"):
        run_alg(ALG, {"INPUT": src, "OUTPUT": str(tmp_path / "a.gpkg")})
    with pytest.raises(
        QgsProcessingException,
        match=r"MODEL_ID 'nope': no such model in the model list \(models: "
        r"none\)\. Add it with Plugins > SatClassify > Manage models",
    ):
        run_alg(ALG, {"INPUT": src, "MODEL_ID": "nope", "OUTPUT": str(tmp_path / "a.gpkg")})
    with pytest.raises(QgsProcessingException, match=r"MODEL_ID '0' \(the model's id, not a number\)"):
        run_alg(ALG, {"INPUT": src, "MODEL_ID": 0, "OUTPUT": str(tmp_path / "a.gpkg")})
    assert not os.path.exists(tmp_path / "a.gpkg")
    # a stale id beside a MODEL file (a saved model run in another profile): the file is used
    model = om.patch_model(tmp_path / "m.onnx", W, activation="softmax")
    res = run_alg(ALG, {"INPUT": src, "MODEL_ID": "gone", "MODEL": model, "OUTPUT": str(tmp_path / "b.gpkg")})
    assert res["COUNT"] == 12


def test_model_id_parameter_is_a_stable_id_enum(provider, catalogue):
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().createAlgorithmById(ALG)
    d = alg.parameterDefinition("MODEL_ID")
    assert d.usesStaticStrings() and d.options() == ["first"] and d.defaultValue() == "first"
    assert compat.has_flag(alg.parameterDefinition("MODEL").flags(), compat.PARAM_FLAG_OPTIONAL)
    assert compat.has_flag(d.flags(), compat.PARAM_FLAG_OPTIONAL)


def test_right_click_opens_the_dialog_with_the_default_model(plugin, catalogue, tmp_path):
    src, _raw = _scene(tmp_path)
    layer = QgsRasterLayer(src, "s2")
    QgsProject.instance().addMapLayer(layer)
    try:
        dlg = plugin.open_dialog_for_layer(ALG, "INPUT", layer)
        assert dlg is not None and dlg.algorithm().id() == ALG
        params = dlg.mainWidget().createProcessingParameters()
        assert params["MODEL_ID"] == "first"
        assert dlg.mainWidget().wrappers["MODEL_ID"].parameterValue() == "first"
        dlg.close()
    finally:
        QgsProject.instance().removeMapLayer(layer.id())


def test_manage_models_menu_entry_and_dialog(plugin, catalogue, tmp_path):
    assert "Manage models..." in [a.text() for a in plugin.menu_actions]
    dlg = plugin.open_models_dialog()
    try:
        assert dlg.ids() == ["first"] and dlg.current_id() == "first"
        text = dlg.summary_of_current()
        for want in (
            "shipped with the plugin",
            "Classes (3): class 1, class 2, class 3",
            "Bands: B02 B03 B04 B08",
            "val_oa 0.93",
            "Dataset: synthetic",
            "Licence: CC0",
        ):
            assert want in text, text
        assert not dlg.remove_button.isEnabled()  # a shipped model stays
        # add a file: listed, selected, summarised; the tool sees it
        e = dlg.add_file(om.patch_model(tmp_path / "added.onnx", W2, activation="sigmoid"), name="My model")
        assert e is not None and dlg.ids() == ["first", "added"] and dlg.current_id() == "added"
        assert "multi-label" in dlg.summary_of_current() and "Licence: not stated" in dlg.summary_of_current()
        assert dlg.remove_button.isEnabled()
        from qgis.core import QgsApplication

        alg = QgsApplication.processingRegistry().createAlgorithmById(ALG)
        assert alg.parameterDefinition("MODEL_ID").options() == ["first", "added"]
        # a file that is not a model: the status line says why, the list is unchanged
        bad = tmp_path / "bad.onnx"
        bad.write_bytes(b"not a model")
        assert dlg.add_file(str(bad)) is None
        assert "not an ONNX file" in dlg.status.text() and dlg.ids() == ["first", "added"]
        assert dlg.remove_selected() and dlg.ids() == ["first"]
    finally:
        dlg.close()


def test_add_from_url_with_checksum_through_the_fake_server(catalogue, server, tmp_path):
    from satclassify_plugin.install.models_dialog import ModelsDialog

    path = om.patch_model(tmp_path / "remote.onnx", W2, activation="softmax")
    with open(path, "rb") as f:
        data = f.read()
    server.files["/models/remote.onnx"] = data
    server.files["/models/page.onnx"] = b"<html>not a model</html>"
    good = mc.sha256_of(path)
    dlg = ModelsDialog(catalogue)
    try:
        # wrong checksum: refused, nothing left in the user folder
        assert dlg.add_url(server.url + "/models/remote.onnx", "0" * 64) is None
        assert "checksum mismatch" in dlg.status.text() and dlg.ids() == ["first"]
        # not a model (its checksum right): refused after the download
        page_sha = hashlib.sha256(b"<html>not a model</html>").hexdigest()
        assert dlg.add_url(server.url + "/models/page.onnx", page_sha) is None
        assert "not an ONNX file" in dlg.status.text() and "nothing was added" in dlg.status.text()
        # not found
        assert dlg.add_url(server.url + "/models/absent.onnx", good) is None
        assert "404" in dlg.status.text()
        assert not os.path.exists(tmp_path / "user") or sorted(os.listdir(tmp_path / "user")) == []
        # right checksum: downloaded, checked, listed
        e = dlg.add_url(server.url + "/models/remote.onnx", good, name="Remote")
        assert e is not None and (e.id, e.name, e.sha256) == ("remote", "Remote", good)
        assert dlg.ids() == ["first", "remote"] and dlg.current_id() == "remote"
        assert "'remote' is in the list" in dlg.status.text()
        with open(e.path, "rb") as f:
            assert f.read() == data
        assert sorted(os.listdir(tmp_path / "user")) == [mc.INDEX, "remote.onnx"]
        assert server.bytes_served["/models/remote.onnx"] == 2 * len(data)  # the failed try and this one
    finally:
        dlg.close()


def test_model_id_with_qgis_process(tmp_path, monkeypatch):
    """A headless run names a user model by its id; the user folder comes from SATCLASSIFY_MODELS_DIR."""
    from .test_classifypatches_qgis_process import run_qgis_process

    monkeypatch.setenv(mc.ENV_DIR, str(tmp_path / "user"))
    src, raw = _scene(tmp_path)
    mc.Catalogue(str(tmp_path / "user")).add_file(om.patch_model(tmp_path / "mine.onnx", W2, activation="softmax"))
    out = tmp_path / "patches.gpkg"
    stdout = run_qgis_process(tmp_path, {"INPUT": src, "MODEL_ID": "mine", "DEVICE": 1, "OUTPUT": out})
    assert "COUNT:\t12" in stdout
    assert _tops(str(out)) == _expected_tops(raw, W2)


def test_tool_batch_and_modeler_dialogs_with_a_model_list(provider, catalogue, tmp_path):
    """The enum of ids builds in every Processing dialog; the modeler stores the id (stable in a saved model)."""
    import processing
    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog
    from processing.modeler.ModelerParametersDialog import ModelerParametersDialog
    from qgis.core import QgsApplication, QgsProcessingModelAlgorithm

    catalogue.add_file(om.patch_model(tmp_path / "mine.onnx", W2, activation="softmax"))
    dlg = processing.createAlgorithmDialog(ALG, {"MODEL_ID": "mine"})
    assert dlg.mainWidget().wrappers["MODEL_ID"].parameterValue() == "mine"
    dlg.close()
    alg = QgsApplication.processingRegistry().createAlgorithmById(ALG)
    batch = BatchAlgorithmDialog(alg)
    assert batch.mainWidget() is not None
    batch.close()
    model = QgsProcessingModelAlgorithm("test", "test")
    mdlg = ModelerParametersDialog(alg, model)
    child = mdlg.createAlgorithm()
    source = child.parameterSources()["MODEL_ID"][0]
    assert source.staticValue() == "first"  # the default, stored as the id
    mdlg.close()
