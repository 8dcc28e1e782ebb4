"""Fixtures for tests that run in real QGIS (pytest-qgis 2.1.0, headless)."""

import os

import pytest
from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import QMainWindow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def _collect_garbage_while_qgis_runs():
    """Collect each test's cyclic garbage (tracebacks holding GDAL datasets and bands, QGIS wrappers) right
    after the test, while QGIS is fully alive and in a known order, instead of at an arbitrary point later or
    at interpreter exit, where a GDAL band freed after its dataset, or a QGIS object after QgsApplication,
    crashes the process (the "segmentation fault at exit" on QGIS 3.40/3.44)."""
    yield
    import gc

    gc.collect()


class MessageBarStub:
    def __init__(self):
        self.messages = []  # (title, text, level)

    def pushMessage(self, title, text, level=0, duration=0):
        self.messages.append((title, text, level))


class IfaceStub:
    """The parts of QgisInterface the plugin uses; records layer actions like QGIS does."""

    def __init__(self):
        self._main = QMainWindow()
        self.custom_actions = []  # (action, menu, layer_type, all_layers)
        self.active_layer = None
        self.bar = MessageBarStub()

    def messageBar(self):
        return self.bar

    def mainWindow(self):
        return self._main

    def addCustomActionForLayerType(self, action, menu, layer_type, all_layers):
        self.custom_actions.append((action, menu, layer_type, all_layers))

    def removeCustomActionForLayerType(self, action):
        before = len(self.custom_actions)
        self.custom_actions = [a for a in self.custom_actions if a[0] is not action]
        return len(self.custom_actions) < before

    def activeLayer(self):
        return self.active_layer

    def setActiveLayer(self, layer):
        self.active_layer = layer
        return True

    def addPluginToMenu(self, menu, action):
        self.custom_actions.append((action, menu, None, None))

    def removePluginMenu(self, menu, action):
        self.removeCustomActionForLayerType(action)


@pytest.fixture(scope="session")
def plugin(qgis_app, qgis_processing):
    """The SatClassify plugin loaded through classFactory, provider registered, GUI initialised."""
    import qgis.utils

    import satclassify_plugin

    # pytest-qgis's iface lacks browserModel(), which Processing's parameter panels call.
    if qgis.utils.iface is not None and not hasattr(qgis.utils.iface, "browserModel"):
        from qgis.gui import QgsBrowserGuiModel

        browser_model = QgsBrowserGuiModel()
        qgis.utils.iface.browserModel = lambda: browser_model
    # ... and layerTreeView(), which Processing's result loading calls from QGIS 3.40 on.
    if qgis.utils.iface is not None and not hasattr(qgis.utils.iface, "layerTreeView"):
        from qgis.core import QgsLayerTreeModel, QgsProject
        from qgis.gui import QgsLayerTreeView

        tree_model = QgsLayerTreeModel(QgsProject.instance().layerTreeRoot())
        tree_view = QgsLayerTreeView()
        tree_view.setModel(tree_model)
        qgis.utils.iface.layerTreeView = lambda: tree_view
    iface = IfaceStub()
    p = satclassify_plugin.classFactory(iface)
    p.initGui()
    yield p
    p.unload()


@pytest.fixture
def provider(plugin):
    # looked up per test: test_foundation unloads and reloads the plugin, which replaces the provider object
    prov = QgsApplication.processingRegistry().providerById("satclassify")
    assert prov is not None
    return prov


@pytest.fixture
def run_alg(provider):
    """processing.run with a fresh context/feedback; returns the result dict."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    def _run(alg_id, params, feedback=None, context=None):
        context = context or QgsProcessingContext()
        return processing.run(alg_id, params, context=context, feedback=feedback or QgsProcessingFeedback())

    return _run
