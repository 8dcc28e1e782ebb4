"""Shared plumbing of the SatClassify algorithms.

A tool subclasses :class:`SatClassifyAlgorithm`, sets ``ALGORITHM_ID``, ``DISPLAY_NAME``, ``GROUP``,
``HELP`` (and ``REQUIRES`` for lazily imported packages), implements ``initAlgorithm`` and
``run_tool`` (not ``run``: that name is the C++ ``QgsProcessingAlgorithm.run`` that Processing
itself calls). ``run_tool`` may raise :class:`~satclassify_plugin.core.contract.errors.SatClassifyError`;
it becomes a ``QgsProcessingException`` with the same message (no traceback for the user).
"""
import importlib.util
import os

from qgis.core import (
    QgsPalettedRasterRenderer,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
)
from qgis.PyQt.QtGui import QColor, QIcon

from .. import compat
from ..core.contract.classes import as_dict
from ..core.contract.errors import SatClassifyError, io_error_message, is_gdal_error
from ..core.contract.feedback import Monitor
from ..core.contract.paths import check_outputs, check_style_sidecar, style_sidecar

ICON = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "icons", "satclassify.svg")

#: raster outputs are GeoTIFF (core.gdal_io.create_geotiff); the provider offers these extensions only
RASTER_EXTENSIONS = ("tif", "tiff")

#: pip package to install for each lazily imported module.
PIP_NAMES = {"onnxruntime": "onnxruntime (or onnxruntime-gpu with an NVIDIA GPU)",
             "pystac_client": "pystac-client", "sentinelsat": "sentinelsat", "ukis_csmask": "ukis-csmask"}


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
    #: what to change when the tool runs out of memory (each tool names its own parameters)
    MEMORY_HINT = "use a smaller extent, or close other programs"

    def name(self):
        return self.ALGORITHM_ID

    def displayName(self):
        return self.DISPLAY_NAME

    def group(self):
        return self.GROUP

    def groupId(self):
        return self.GROUP_ID

    def tags(self):
        return [t.strip() for t in self.TAGS.split(",") if t.strip()]

    def shortHelpString(self):
        return self.HELP

    def icon(self):
        return QIcon(ICON)

    def svgIconPath(self):
        return ICON

    def createInstance(self):
        return type(self)()

    def canExecute(self):
        missing = missing_modules(self.REQUIRES)
        if missing:
            names = ", ".join(PIP_NAMES.get(m, m) for m in missing)
            return False, (f"{self.displayName()} needs the Python package(s) {names}, which QGIS's Python "
                           "cannot import. Install them with Plugins > SatClassify > Install Python dependencies, "
                           "or 'python3 -m pip install --user " + " ".join(PIP_NAMES.get(m, m).split(" ")[0]
                                                                            for m in missing) + "'.")
        return True, ""

    def processAlgorithm(self, parameters, context, feedback):
        ok, message = self.canExecute()
        if not ok:
            raise QgsProcessingException(message)
        message = None
        try:
            self.check_output_paths(parameters, context)
            return self.run_tool(parameters, context, feedback)
        except SatClassifyError as e:
            message = str(e)
            _drop_frames(e)
        except MemoryError as e:
            message = f"{self.displayName()} ran out of memory: {self.MEMORY_HINT}"
            _drop_frames(e)
        except OSError as e:  # full disk, read-only or immutable folder, ...: nothing of the output is kept
            message = f"{self.displayName()}: " + io_error_message(e)
            _drop_frames(e)
        except RuntimeError as e:
            if not is_gdal_error(e):
                raise
            message = f"{self.displayName()}: " + io_error_message(e)
            _drop_frames(e)
        # raised outside the except blocks: the user's message carries no chained traceback whose frames would
        # keep the tool's GDAL datasets and bands alive until some later garbage collection (a band freed after
        # its dataset crashes GDAL < 3.8)
        raise QgsProcessingException(message)

    def run_tool(self, parameters, context, feedback):
        raise NotImplementedError

    def add_advanced(self, *params) -> None:
        """Add parameters shown under the dialog's "Advanced parameters"."""
        for p in params:
            self.addParameter(advanced(p))

    @staticmethod
    def monitor(feedback, start: float = 0.0, end: float = 1.0, info=None) -> Monitor:
        """The one adapter from ``QgsProcessingFeedback`` (percent) to the core's feedback contract: progress as
        a fraction 0-1 of the core call (mapped onto [start, end] of the tool's bar), messages, cancel."""
        return Monitor(progress=lambda f: feedback.setProgress(100.0 * (start + (end - start) * f)),
                       info=info or feedback.pushInfo, is_canceled=feedback.isCanceled)

    #: the folder destination is emptied first when this boolean parameter is true (buildpatches' OVERWRITE)
    REPLACES_FOLDER_PARAM = None
    #: outputs that get a QGIS style sidecar <name>.qml (core.contract.paths.style_sidecar): the guard treats it
    #: as part of the output (never an input, never a style the user wrote)
    STYLED_OUTPUTS = ()

    def check_output_paths(self, parameters, context, extra=None):
        """Refuse, before anything is written, an output on an input, two outputs on one file, or an output
        that is a folder (core.paths.check_outputs). Runs for every tool, from every entry point; a tool that
        derives more output files from its parameters (classify: a head's raster next to OUTPUT) checks them
        again with ``extra`` = {label: path} before it writes."""
        inputs, outputs, folders, rasters = {}, {}, {}, []
        for d in self.parameterDefinitions():
            name = d.name()
            value = parameters.get(name)
            if value is None or value == "":
                continue
            kind = d.type()
            if kind in ("rasterDestination", "fileDestination", "vectorDestination"):
                path = self.parameterAsFileOutput(parameters, name, context)
                if path and not path.startswith(("memory:", "postgres:", "ogr:")):
                    outputs[name] = path.split("|")[0]
                    if kind == "rasterDestination":
                        rasters.append(name)
            elif kind == "folderDestination":
                folders[name] = self.parameterAsFileOutput(parameters, name, context)
            elif kind == "file":
                inputs[name] = [self.parameterAsFile(parameters, name, context)]
            elif kind in ("raster", "vector", "source", "layer", "multilayer"):
                inputs[name] = input_paths(value, context)
        replaces = bool(self.REPLACES_FOLDER_PARAM and self.parameterAsBool(
            parameters, self.REPLACES_FOLDER_PARAM, context))
        for name in self.STYLED_OUTPUTS:  # the .qml written beside the output is part of it
            if name in outputs:
                check_style_sidecar(name, outputs[name])
                outputs[f"{name} (its style {os.path.basename(style_sidecar(outputs[name]))})"] = style_sidecar(
                    outputs[name])
        outputs.update(extra or {})
        check_outputs(inputs, outputs, folders, replaces_folder=replaces)
        for name in rasters:
            ext = os.path.splitext(outputs[name])[1].lower().lstrip(".")
            if ext not in RASTER_EXTENSIONS:
                raise SatClassifyError(
                    f"{name} '{outputs[name]}': the tool writes GeoTIFF, not .{ext or '(no extension)'}: name the "
                    "file .tif (convert it afterwards with Raster > Conversion > Translate if needed)")


def advanced(param):
    """``param`` flagged advanced (the dialog's "Advanced parameters" group); returns it."""
    param.setFlags(param.flags() | compat.PARAM_FLAG_ADVANCED)
    return param


def target_crs(alg, parameters, name, context):
    """The CRS parameter ``name`` as a QgsCoordinateReferenceSystem, None when left empty. A code QGIS does not
    know (e.g. EPSG:999999) is refused instead of silently falling back to a default CRS."""
    value = parameters.get(name)
    if value in (None, ""):
        return None
    crs = alg.parameterAsCrs(parameters, name, context)
    if not crs.isValid():
        raise SatClassifyError(f"{name} '{value}' is not a coordinate reference system QGIS knows: check the code "
                               "(e.g. EPSG:32632 for UTM zone 32N, EPSG:3035 for Europe) or leave it empty")
    return crs


def refuse_degree_pixels(crs, pixel_size, name, lon_lat=None):
    """A pixel size in metres on a geographic CRS would give pixels that many degrees wide: refuse with the fix
    (a projected CRS; the UTM zone of ``lon_lat`` when known; or the size in degrees)."""
    if crs is None or not crs.isGeographic() or pixel_size < 0.5:
        return
    zone = ""
    if lon_lat is not None:
        from ..core.s2.stack import utm_epsg

        zone = f"the UTM zone here is EPSG:{utm_epsg(*lon_lat)}, "
    raise SatClassifyError(
        f"{name} {crs.authid() or crs.description()} is geographic (degrees): a pixel size of {pixel_size:g} would "
        f"make pixels {pixel_size:g} degrees wide. Choose a projected CRS in metres ({zone}EPSG:3035 for Europe), "
        f"or give the pixel size in degrees (about {pixel_size / 111320.0:.6f} for {pixel_size:g} m)")


def input_paths(value, context):
    """The files behind a layer-like parameter value (a path, a layer id or object, a feature source
    definition, a list of them); nothing for layers that are not files (memory, databases, services)."""
    from qgis.core import QgsMapLayer, QgsProcessingFeatureSourceDefinition, QgsProcessingUtils, QgsProviderRegistry

    if isinstance(value, (list, tuple)):
        return [p for v in value for p in input_paths(v, context)]
    if isinstance(value, QgsProcessingFeatureSourceDefinition):
        value = value.source.staticValue()
    layer = value if isinstance(value, QgsMapLayer) else None
    if layer is None:
        text = str(value)
        plain = text.split("|")[0]
        if os.path.exists(plain):
            return [plain]
        layer = QgsProcessingUtils.mapLayerFromString(text, context)
    if layer is None:
        return []
    parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
    path = parts.get("path") or layer.source().split("|")[0]
    return [path] if path and os.path.exists(path) else []


def _drop_frames(exc: BaseException) -> None:
    """Release the local variables of every frame in ``exc``'s traceback now (GDAL objects among them)."""
    import traceback

    tb = exc.__traceback__
    if tb is not None:
        traceback.clear_frames(tb)
    exc.__traceback__ = None


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

        items = [QgsPalettedRasterRenderer.Class(int(c["value"]), QColor(c["color"]), legend_label(c))
                 for c in self.classes]
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


def style_output_on_load(context, layer_id, classes):
    """Attach a class style to an output that will be loaded into the project: only the classes present in the
    file, with their area (counted here, in the worker thread); the given table when the file cannot be read."""
    if context.willLoadLayerOnCompletion(layer_id):
        details = context.layerToLoadOnCompletionDetails(layer_id)
        details.setPostProcessor(ClassStylePostProcessor.create(present_classes_of(layer_id, classes)))


def present_classes_of(path, classes):
    """``core.maps.legend.class_areas`` of a class raster file (legend entries of the classes present, with
    their area), ``classes`` as they are when that fails."""
    from ..core.maps.legend import class_areas

    entries = class_dicts(classes)
    if any("pixels" in c for c in entries):  # already counted (generalize)
        return entries
    try:
        return class_areas(path, entries)
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
            PolygonStylePostProcessor.create(classes, field))


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


def gpkg_output(alg, parameters, key, context, what="the tool writes a GeoPackage"):
    """The GeoPackage a vector output ``key`` writes, as the core's writers take it (``core.raster.AtomicOutput``):
    ``file.gpkg`` (the file is written whole, replacing an earlier one) or ``file.gpkg|layername=name`` (only that
    layer is added to the file or replaced in it; its other layers stay). None when an optional output is left
    empty. Anything else (another format, a database, a memory layer, other ``|`` options) is refused with the fix.
    The value is also what the tool returns, so QGIS loads that very layer."""
    from ..core.contract.paths import split_layer

    if parameters.get(key) in (None, ""):
        d = alg.parameterDefinition(key)
        if d is not None and d.flags() & compat.PARAM_FLAG_OPTIONAL:
            return None
    out = alg.parameterAsOutputLayer(parameters, key, context)
    if not out:
        return None
    path, _layer = split_layer(out)
    if out.startswith(("memory:", "ogr:", "postgres:")) or os.path.splitext(path)[1].lower() != ".gpkg":
        raise SatClassifyError(f"{key} '{out}': {what}: name the file .gpkg (or 'file.gpkg|layername=name' to add "
                               "the layer to an existing GeoPackage)")
    return out


def gdal_raster_source(alg, parameters, key, context, what="raster"):
    """The file behind raster layer parameter ``key`` (None when it is empty); a layer of another provider
    (WMS, PostGIS raster...) is refused with the fix. A path QGIS cannot load is passed on, so the core names
    the problem (missing file, unreadable)."""
    if parameters.get(key) in (None, ""):
        return None
    layer = alg.parameterAsRasterLayer(parameters, key, context)
    if layer is None:
        return alg.parameterAsString(parameters, key, context) or None
    if layer.providerType() != "gdal":
        raise SatClassifyError(f"layer '{layer.name()}' is a {layer.providerType()} layer; the {what} is read from "
                               "a file GDAL can open: save the layer as a GeoTIFF first")
    return layer.source()
