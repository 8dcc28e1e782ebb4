"""The SatClassify Processing provider (id "satclassify")."""

import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import algorithm_classes
from .algorithms.base import RASTER_EXTENSIONS

ICON = os.path.join(os.path.dirname(__file__), "resources", "icons", "satclassify.svg")


class SatClassifyProvider(QgsProcessingProvider):
    def id(self):
        return "satclassify"

    def name(self):
        return "SatClassify"

    def longName(self):
        return "SatClassify: Sentinel-2 + CORINE land-cover classification"

    def icon(self):
        return QIcon(ICON)

    def svgIconPath(self):
        return ICON

    def supportedOutputRasterLayerExtensions(self):
        """The tools write GeoTIFF only: the output dialogs offer .tif (another extension is refused)."""
        return list(RASTER_EXTENSIONS)

    def defaultRasterFileExtension(self):
        return RASTER_EXTENSIONS[0]

    def loadAlgorithms(self):
        for cls in algorithm_classes():
            self.addAlgorithm(cls())
