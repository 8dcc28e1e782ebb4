"""Layer post-processors of the SatClassify tools: how an output looks when QGIS loads it.

Algorithms never touch ``iface`` or load layers themselves: a tool attaches one of these to an output that
Processing will load (``style_output_on_load`` for class rasters, ``style_polygons_on_load`` for class polygons,
``style_stack_on_load`` for Sentinel-2 stacks); QGIS runs it on the main thread once the layer is loaded. The
plugin's layer-tree actions (``plugin.py``) and ``scripts/render_map.py`` use the same functions.
"""

from qgis.core import QgsPalettedRasterRenderer, QgsProcessingLayerPostProcessorInterface
from qgis.PyQt.QtGui import QColor

from .. import compat
from ..core.contract.classes import as_dict
from ..core.contract.errors import SatClassifyError


class KeptPostProcessor(QgsProcessingLayerPostProcessorInterface):
    """A layer post-processor made with :meth:`create`, which keeps it referenced: QGIS does not own it, and one
    collected before the layer loads crashes QGIS."""

    _kept = []

    @classmethod
    def create(cls, *args, **kwargs):
        pp = cls(*args, **kwargs)
        KeptPostProcessor._kept.append(pp)
        return pp


def class_dicts(classes) -> list:
    """Class entries (ClassRecord objects or dicts with value, name, color) as dicts."""
    return [as_dict(c) for c in classes]


class ClassStylePostProcessor(KeptPostProcessor):
    """Styles a class raster on load (main thread) with a paletted renderer from a class table.

    ``classes`` is a list of objects or dicts with value, name and color (#rrggbb); entries with ``area_ha`` /
    ``percent`` (``core.maps.legend.present_classes``) are labelled "name - area ha (percent %)". The legend shows
    the classes only, without the band title QGIS puts above them ("Band 1 (Palette)").
    """

    def __init__(self, classes, band=1):
        super().__init__()
        self.classes = class_dicts(classes)
        self.band = band

    def postProcessLayer(self, layer, context, feedback):
        if not layer or not layer.isValid() or layer.type() != compat.LAYER_RASTER:
            return
        from ..core.maps.legend import legend_label

        items = [
            QgsPalettedRasterRenderer.Class(int(c["value"]), QColor(c["color"]), legend_label(c)) for c in self.classes
        ]
        renderer = QgsPalettedRasterRenderer(layer.dataProvider(), self.band, items)
        layer.setRenderer(renderer)
        hide_band_title(layer, context)
        layer.triggerRepaint()


def hide_band_title(layer, context=None, tree_layer=None):
    """Keep only the class entries of a layer's legend (no "Band 1 (Palette)" title node): in the layer tree node
    ``tree_layer`` (default: the layer's node in the context's project, once it was added there)."""
    from qgis.core import QgsMapLayerLegendUtils, QgsProject, QgsSimpleLegendNode

    if tree_layer is None:
        project = (context.project() if context is not None else None) or QgsProject.instance()
        tree_layer = project.layerTreeRoot().findLayer(layer.id())
    if tree_layer is None or layer.legend() is None:
        return False
    nodes = layer.legend().createLayerTreeModelLegendNodes(tree_layer)
    order = [i for i, n in enumerate(nodes) if not isinstance(n, QgsSimpleLegendNode)]
    hidden = len(order) < len(nodes)
    if hidden:
        QgsMapLayerLegendUtils.setLegendNodeOrder(tree_layer, order)
        layer.legendChanged.emit()  # a live layer tree model rebuilds the legend only on this signal
    return hidden


def style_output_on_load(context, layer_id, classes, counts=None):
    """Attach a class style to an output that will be loaded into the project: only the classes present in the
    file, with their area (``counts``: pixels per class value as the core counted them while writing; else counted
    here, in the worker thread); the given table when the file cannot be read."""
    if context.willLoadLayerOnCompletion(layer_id):
        details = context.layerToLoadOnCompletionDetails(layer_id)
        details.setPostProcessor(ClassStylePostProcessor.create(present_classes_of(layer_id, classes, counts)))


def present_classes_of(path, classes, counts=None):
    """``core.maps.legend.class_areas`` of a class raster file (legend entries of the classes present, with
    their area; from ``counts``, pixels per class value, when given: then only the file's grid is read),
    ``classes`` as they are when that fails."""
    from ..core.maps.legend import class_areas

    entries = class_dicts(classes)
    if any("pixels" in c for c in entries):  # already counted (generalize)
        return entries
    try:
        return class_areas(path, entries, counts=counts)
    except (SatClassifyError, RuntimeError):
        return entries


class PolygonStylePostProcessor(KeptPostProcessor):
    """Styles the polygons of a class map on load: categorized on the field ``value``, the class colours, labels
    "name - area ha (percent %)" of the classes present."""

    def __init__(self, classes, field="value"):
        super().__init__()
        self.classes = class_dicts(classes)
        self.field = field

    def postProcessLayer(self, layer, context, feedback):
        if not layer or not layer.isValid() or layer.type() != compat.LAYER_VECTOR:
            return
        layer.setRenderer(class_polygon_renderer(self.classes, self.field, layer.geometryType()))
        layer.triggerRepaint()


def class_polygon_renderer(classes, field, geometry_type):
    """A categorized renderer on ``field`` with one category per class (fill = class colour, thin grey outline)."""
    from qgis.core import QgsCategorizedSymbolRenderer, QgsRendererCategory, QgsSymbol

    from ..core.maps.legend import legend_label

    cats = []
    for c in classes:
        sym = QgsSymbol.defaultSymbol(geometry_type)
        sym.setColor(QColor(c["color"]))
        if sym.symbolLayerCount() and hasattr(sym.symbolLayer(0), "setStrokeColor"):
            sym.symbolLayer(0).setStrokeColor(QColor("#505050"))
            sym.symbolLayer(0).setStrokeWidth(0.1)
        cats.append(QgsRendererCategory(int(c["value"]), sym, legend_label(c)))
    return QgsCategorizedSymbolRenderer(field, cats)


def style_polygons_on_load(context, layer_id, classes, field="value"):
    """Attach the class style (categorized on ``field``) to a polygon output that will be loaded into the project."""
    if context.willLoadLayerOnCompletion(layer_id):
        context.layerToLoadOnCompletionDetails(layer_id).setPostProcessor(
            PolygonStylePostProcessor.create(classes, field)
        )


class StackStylePostProcessor(KeptPostProcessor):
    """Styles a Sentinel-2 stack on load: the named styles of ``core.s2.style`` (QML texts), the first one
    current (natural colour, the same as the .qml sidecar), the others a click away in the Layers panel
    (right-click > Styles > colour infrared). Processing loads its results without their default style, hence
    this step."""

    def __init__(self, styles):
        super().__init__()
        self.styles = dict(styles)

    def postProcessLayer(self, layer, context, feedback):
        if layer and layer.isValid() and layer.type() == compat.LAYER_RASTER:
            add_named_styles(layer, self.styles)


def add_named_styles(layer, styles):
    """Give ``layer`` the named styles ``{name: qml text}``; the first becomes the current one. Returns the names
    the layer's style manager then lists."""
    from qgis.core import QgsMapLayerStyle
    from qgis.PyQt.QtXml import QDomDocument

    manager = layer.styleManager()
    for i, (name, qml) in enumerate(styles.items()):
        if i == 0:
            doc = QDomDocument()
            doc.setContent(qml)
            layer.importNamedStyle(doc)
            if manager.currentStyle() != name:
                manager.renameStyle(manager.currentStyle(), name)
        elif name not in manager.styles():
            manager.addStyle(name, QgsMapLayerStyle(qml))
    layer.triggerRepaint()
    return manager.styles()


def apply_stack_combination(layer, combination):
    """Make ``combination`` of ``core.s2.style.COMBINATIONS`` the current named style of a stack layer (added
    first, its stretch computed from the file, when the layer does not have it yet). False when the raster
    lacks one of its bands; a file GDAL cannot open raises SatClassifyError."""
    from qgis.core import QgsMapLayerStyle

    from ..core.s2.style import styles_of

    manager = layer.styleManager()
    if combination not in manager.styles():
        styles = styles_of(layer.source().split("|")[0])
        if combination not in styles:
            return False
        manager.addStyle(combination, QgsMapLayerStyle(styles[combination]))
    manager.setCurrentStyle(combination)
    layer.triggerRepaint()
    return True


def style_stack_on_load(context, layer_id, styles):
    """Attach the stack styles (natural colour first) to a stack output that will be loaded into the project."""
    if styles and context.willLoadLayerOnCompletion(layer_id):
        context.layerToLoadOnCompletionDetails(layer_id).setPostProcessor(StackStylePostProcessor.create(styles))
