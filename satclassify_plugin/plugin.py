"""Plugin entry: registers the Processing provider and the layer right-click actions."""
from qgis.core import QgsApplication, QgsMapLayerType
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .provider import ICON, SatClassifyProvider

#: (label, layer type, algorithm id, parameter that receives the clicked layer)
LAYER_ACTIONS = (
    ("Classify with SatClassify model...", QgsMapLayerType.RasterLayer, "satclassify:classify", "INPUT"),
    ("Rasterize CORINE Land Cover...", QgsMapLayerType.VectorLayer, "satclassify:rasterizeclc", "INPUT"),
)
MENU = "SatClassify"


class SatClassifyPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.layer_actions = []

    # Processing ---------------------------------------------------------------------------
    def initProcessing(self):  # noqa: N802
        if self.provider is None:
            self.provider = SatClassifyProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802
        self.initProcessing()
        registry = QgsApplication.processingRegistry()
        for label, layer_type, alg_id, param in LAYER_ACTIONS:
            if registry.algorithmById(alg_id) is None:
                continue
            action = QAction(QIcon(ICON), label, self.iface.mainWindow())
            action.triggered.connect(lambda _checked=False, a=alg_id, p=param: self.open_dialog_for_layer(a, p))
            self.iface.addCustomActionForLayerType(action, MENU, layer_type, True)
            self.layer_actions.append((action, alg_id, param))

    def unload(self):
        for action, _, _ in self.layer_actions:
            self.iface.removeCustomActionForLayerType(action)
        self.layer_actions = []
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    # Layer actions --------------------------------------------------------------------------
    def open_dialog_for_layer(self, alg_id, param, layer=None):
        """Open the tool's dialog with the clicked (current) layer filled in. Returns the dialog."""
        import processing

        layer = layer or self.iface.activeLayer()
        params = {param: layer} if layer is not None else {}
        dialog = processing.createAlgorithmDialog(alg_id, params)
        if dialog is not None:
            dialog.show()
        return dialog
