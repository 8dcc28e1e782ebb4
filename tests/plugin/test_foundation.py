"""The plugin loads in real QGIS, registers its provider and layer actions, and unloads cleanly."""
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
    from satclassify_plugin.plugin import LAYER_ACTIONS

    registry = QgsApplication.processingRegistry()
    expected = [(label, t) for label, t, alg, _ in LAYER_ACTIONS if registry.algorithmById(alg)]
    got = [(a.text(), t) for (a, menu, t, all_layers) in plugin.iface.custom_actions if t is not None]
    assert got == expected
    for action, menu, layer_type, all_layers in plugin.iface.custom_actions:
        if layer_type is not None:
            assert menu == "SatClassify" and all_layers is True
            assert layer_type in (QgsMapLayerType.RasterLayer, QgsMapLayerType.VectorLayer)
