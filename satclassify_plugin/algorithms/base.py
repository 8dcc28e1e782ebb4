"""Shared plumbing of the SatClassify algorithms.

A tool subclasses :class:`SatClassifyAlgorithm`, sets ``ALGORITHM_ID``, ``DISPLAY_NAME``, ``GROUP``,
``HELP`` (and ``REQUIRES`` for lazily imported packages), implements ``initAlgorithm`` and
``run_tool`` (not ``run``: that name is the C++ ``QgsProcessingAlgorithm.run`` that Processing
itself calls). ``run_tool`` may raise :class:`~satclassify_plugin.core.errors.SatClassifyError`;
it becomes a ``QgsProcessingException`` with the same message (no traceback for the user).
"""
import importlib.util
import os

from qgis.core import (QgsPalettedRasterRenderer, QgsProcessingAlgorithm,
                       QgsProcessingException, QgsProcessingLayerPostProcessorInterface)
from qgis.PyQt.QtGui import QColor, QIcon

from ..core.errors import SatClassifyError

ICON = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "icons", "satclassify.svg")

#: pip package to install for each lazily imported module.
PIP_NAMES = {"onnxruntime": "onnxruntime (or onnxruntime-gpu with an NVIDIA GPU)",
             "pystac_client": "pystac-client", "sentinelsat": "sentinelsat"}


def missing_modules(modules):
    return [m for m in modules if importlib.util.find_spec(m) is None]


class SatClassifyAlgorithm(QgsProcessingAlgorithm):
    ALGORITHM_ID = None
    DISPLAY_NAME = None
    GROUP = "Tools"
    GROUP_ID = "tools"
    HELP = ""
    TAGS = ""
    REQUIRES = ()

    def name(self):
        return self.ALGORITHM_ID

    def displayName(self):  # noqa: N802
        return self.DISPLAY_NAME

    def group(self):
        return self.GROUP

    def groupId(self):  # noqa: N802
        return self.GROUP_ID

    def tags(self):
        return [t.strip() for t in self.TAGS.split(",") if t.strip()]

    def shortHelpString(self):  # noqa: N802
        return self.HELP

    def icon(self):
        return QIcon(ICON)

    def svgIconPath(self):  # noqa: N802
        return ICON

    def createInstance(self):  # noqa: N802
        return type(self)()

    def canExecute(self):  # noqa: N802
        missing = missing_modules(self.REQUIRES)
        if missing:
            names = ", ".join(PIP_NAMES.get(m, m) for m in missing)
            return False, (f"{self.displayName()} needs the Python package(s) {names}, which QGIS's Python "
                           "cannot import. Install them with Plugins > SatClassify > Install Python dependencies, "
                           "or 'python3 -m pip install --user " + " ".join(PIP_NAMES.get(m, m).split(" ")[0]
                                                                            for m in missing) + "'.")
        return True, ""

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        ok, message = self.canExecute()
        if not ok:
            raise QgsProcessingException(message)
        try:
            return self.run_tool(parameters, context, feedback)
        except SatClassifyError as e:
            raise QgsProcessingException(str(e))
        except MemoryError:
            raise QgsProcessingException(
                f"{self.displayName()} ran out of memory: use a smaller extent, tile size or batch size")

    def run_tool(self, parameters, context, feedback):
        raise NotImplementedError


class ClassStylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Styles a class raster on load (main thread) with a paletted renderer from a class table.

    ``classes`` is a list of objects or dicts with value, name and color (#rrggbb).
    Keep the instance referenced (see :func:`style_output_on_load`): QGIS does not own it.
    """

    _keep = []

    def __init__(self, classes, band=1):
        super().__init__()
        self.classes = [c if isinstance(c, dict) else c.to_dict() for c in classes]
        self.band = band

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        if not layer or not layer.isValid() or layer.type() != layer.RasterLayer:
            return
        items = [QgsPalettedRasterRenderer.Class(int(c["value"]), QColor(c["color"]), str(c["name"]))
                 for c in self.classes]
        renderer = QgsPalettedRasterRenderer(layer.dataProvider(), self.band, items)
        layer.setRenderer(renderer)
        layer.triggerRepaint()

    @classmethod
    def create(cls, classes, band=1):
        pp = cls(classes, band)
        cls._keep.append(pp)
        return pp


def style_output_on_load(context, layer_id, classes):
    """Attach a class style to an output that will be loaded into the project."""
    if context.willLoadLayerOnCompletion(layer_id):
        details = context.layerToLoadOnCompletionDetails(layer_id)
        details.setPostProcessor(ClassStylePostProcessor.create(classes))
