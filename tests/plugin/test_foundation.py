"""The plugin loads in real QGIS, registers its provider and layer actions, and unloads cleanly."""

import os
import sys

import numpy as np
import pytest
from qgis.core import QgsApplication, QgsMapLayerType

from satclassify_plugin.algorithms import algorithm_classes

from .conftest import IfaceStub


def test_provider_is_registered_with_id_name_icon(provider):
    assert provider.id() == "satclassify"
    assert provider.name() == "SatClassify"
    assert not provider.icon().isNull()
    ids = {a.id() for a in provider.algorithms()}
    assert ids == {f"satclassify:{cls.ALGORITHM_ID}" for cls in algorithm_classes()}


def test_unload_removes_provider_and_actions_and_reload_restores_them(plugin):
    registry = QgsApplication.processingRegistry()
    n_actions = len(plugin.iface.custom_actions)
    assert registry.providerById("satclassify") is plugin.provider
    plugin.unload()
    assert registry.providerById("satclassify") is None
    assert plugin.iface.custom_actions == [] and plugin.layer_actions == []
    plugin.initGui()
    assert registry.providerById("satclassify") is plugin.provider
    assert len(plugin.iface.custom_actions) == n_actions


def test_classfactory_returns_plugin_bound_to_iface():
    import satclassify_plugin

    iface = IfaceStub()
    p = satclassify_plugin.classFactory(iface)
    assert p.iface is iface and p.provider is None  # nothing registered before initGui/initProcessing


def test_layer_actions_are_wired_to_registered_tools(plugin):
    from satclassify_plugin.plugin import LAYER_ACTIONS, STYLE_ACTIONS

    registry = QgsApplication.processingRegistry()
    expected = [(label, t) for label, t, alg, _ in LAYER_ACTIONS if registry.algorithmById(alg)]
    expected += [(label, QgsMapLayerType.RasterLayer) for label, _ in STYLE_ACTIONS]
    got = [(a.text(), t) for (a, menu, t, all_layers) in plugin.iface.custom_actions if t is not None]
    assert got == expected
    for _action, menu, layer_type, all_layers in plugin.iface.custom_actions:
        if layer_type is not None:
            assert menu == "SatClassify" and all_layers is True
            assert layer_type in (QgsMapLayerType.RasterLayer, QgsMapLayerType.VectorLayer)


def test_dependency_menu_action_installs_into_profile_folder(plugin, tmp_path, monkeypatch):
    """The plugin menu action's worker installs into <profile>/python/satclassify_deps via pip (faked)."""
    from satclassify_plugin.install import deps

    calls = []

    class Done:
        returncode = 0
        stdout = stderr = ""

    def fake_runner(cmd, **kw):
        calls.append(cmd)
        target = cmd[cmd.index("--target") + 1]
        os.makedirs(os.path.join(target, "onnxruntime"), exist_ok=True)
        return Done()

    monkeypatch.setattr(plugin, "deps_folder", lambda: str(tmp_path / deps.DEPS_DIR_NAME))
    monkeypatch.setattr(sys, "path", list(sys.path))
    menu = [a for (a, m, t, _) in plugin.iface.custom_actions if t is None]
    assert [a.text() for a in menu] == [
        "Install Python dependencies...",
        "Manage models...",
        "Set up training environment...",
        "Diagnostics...",
    ]
    reqs = plugin.install_dependencies(python=sys.executable, gpu=False, runner=fake_runner)
    assert calls and calls[0][1:4] == ["-m", "pip", "install"]
    assert os.path.isdir(tmp_path / deps.DEPS_DIR_NAME / "onnxruntime")
    assert sys.path[-1] == str(tmp_path / deps.DEPS_DIR_NAME)
    assert reqs[0].startswith("onnxruntime")


def _open_dialogs(alg_id):
    from qgis.PyQt.QtWidgets import QApplication

    return [
        w
        for w in QApplication.topLevelWidgets()
        if w.isVisible() and hasattr(w, "algorithm") and w.algorithm() is not None and w.algorithm().id() == alg_id
    ]


def test_right_click_actions_open_the_tool_prefilled_end_to_end(plugin, tmp_path):
    """Trigger the QAction registered for each layer type (what the Layers panel menu does) with a layer
    of that type active: the tool's dialog opens, showing that layer in its INPUT."""
    from osgeo import ogr
    from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer

    from tests.rasters import make_polygons, make_raster

    raster = QgsRasterLayer(
        make_raster(tmp_path / "s2.tif", np.ones((4, 8, 8), np.uint16), band_names=["B02", "B03", "B04", "B08"]),
        "s2 stack",
    )
    vector = QgsVectorLayer(
        make_polygons(
            tmp_path / "clc.gpkg",
            [("POLYGON((4000000 3000000,4001000 3000000,4001000 3001000,4000000 3000000))", {"code_18": "211"})],
            fields={"code_18": ogr.OFTString},
        ),
        "clc",
        "ogr",
    )
    assert raster.isValid() and vector.isValid()
    QgsProject.instance().addMapLayers([raster, vector])
    registered = {id(a): t for (a, _menu, t, _all) in plugin.iface.custom_actions}
    actions = {alg: a for (a, alg, _param) in plugin.layer_actions}  # a layer type may have several actions
    try:
        for layer, layer_type, alg_id in (
            (raster, QgsMapLayerType.RasterLayer, "satclassify:classify"),
            (raster, QgsMapLayerType.RasterLayer, "satclassify:classifypatches"),
            (vector, QgsMapLayerType.VectorLayer, "satclassify:rasterizeclc"),
            (vector, QgsMapLayerType.VectorLayer, "satclassify:rasterizelabels"),
        ):
            plugin.iface.setActiveLayer(layer)
            assert registered[id(actions[alg_id])] == layer_type, alg_id
            actions[alg_id].trigger()
            dialogs = _open_dialogs(alg_id)
            assert len(dialogs) == 1, alg_id
            value = dialogs[0].mainWidget().wrappers["INPUT"].parameterValue()
            assert value in (layer, layer.id(), layer.source()) or getattr(value, "id", lambda: None)() == layer.id()
            dialogs[0].close()
            dialogs[0].deleteLater()
    finally:
        plugin.iface.setActiveLayer(None)
        QgsProject.instance().removeMapLayers([raster.id(), vector.id()])


def test_raster_layer_path_is_the_file_or_a_clear_refusal(tmp_path):
    """algorithms/layers.py: the one "raster layer -> file path" of the tools (classify, classifypatches,
    buildpatches, the class raster inputs): a GDAL layer gives its file, another provider names the fix."""
    from qgis.core import QgsRasterLayer

    from satclassify_plugin.algorithms.layers import raster_layer_path
    from satclassify_plugin.core.contract.errors import SatClassifyError
    from tests.rasters import make_raster

    path = make_raster(tmp_path / "r.tif", np.ones((1, 4, 4), np.uint8))
    assert raster_layer_path(QgsRasterLayer(str(path), "r")) == str(path)
    assert raster_layer_path(None) is None
    tiles = QgsRasterLayer("type=xyz&url=http://127.0.0.1:9/%7Bz%7D/%7Bx%7D/%7By%7D.png", "tiles", "wms")
    with pytest.raises(SatClassifyError) as e:
        raster_layer_path(tiles, "image")
    assert str(e.value) == (
        "image layer 'tiles' is a wms layer; SatClassify reads files GDAL can open: save the layer as a GeoTIFF first"
    )
