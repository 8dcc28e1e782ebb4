"""Shared plumbing of the SatClassify algorithms.

A tool subclasses :class:`SatClassifyAlgorithm`, sets ``ALGORITHM_ID``, ``DISPLAY_NAME``, ``GROUP``,
``HELP`` (and ``REQUIRES`` for lazily imported packages), implements ``initAlgorithm`` and
``run_tool`` (not ``run``: that name is the C++ ``QgsProcessingAlgorithm.run`` that Processing
itself calls). ``run_tool`` may raise :class:`~satclassify_plugin.core.contract.errors.SatClassifyError`;
it becomes a ``QgsProcessingException`` with the same message (no traceback for the user).

The plumbing beside it: ``algorithms/styles.py`` (layer post-processors: class, polygon and stack styles on
load) and ``algorithms/layers.py`` (parameter values -> the files behind them, raster layer -> file path,
GeoPackage outputs). The guard against outputs that destroy data is ``core/contract/paths.py``.
"""

import importlib.util
import os

from qgis.core import QgsProcessingAlgorithm, QgsProcessingException
from qgis.PyQt.QtGui import QIcon

from .. import compat
from ..core.contract.errors import SatClassifyError, io_error_message, is_gdal_error
from ..core.contract.feedback import Monitor
from ..core.contract.paths import check_outputs, check_style_sidecar, style_sidecar
from .layers import input_paths, remote_inputs

ICON = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "icons", "satclassify.svg")

#: raster outputs are GeoTIFF (core.raster.create_geotiff); the provider offers these extensions only
RASTER_EXTENSIONS = ("tif", "tiff")

#: pip package to install for each lazily imported module.
PIP_NAMES = {
    "onnxruntime": "onnxruntime (or onnxruntime-gpu with an NVIDIA GPU)",
    "pystac_client": "pystac-client",
    "sentinelsat": "sentinelsat",
    "ukis_csmask": "ukis-csmask",
}


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
            return False, (
                f"{self.displayName()} needs the Python package(s) {names}, which QGIS's Python "
                "cannot import. Install them with Plugins > SatClassify > Install Python dependencies, "
                "or 'python3 -m pip install --user "
                + " ".join(PIP_NAMES.get(m, m).split(" ")[0] for m in missing)
                + "'."
            )
        return True, ""

    def processAlgorithm(self, parameters, context, feedback):
        ok, message = self.canExecute()
        if not ok:
            raise QgsProcessingException(message)
        message = None
        try:
            self.check_output_paths(parameters, context)
            remote = remote_inputs(self, parameters)
            if not remote:
                return self.run_tool(parameters, context, feedback)
            with remote_read_config(list(remote.values())):
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

    def checkParameterValues(self, parameters, context):
        """A raster given as a remote file (``/vsicurl/...``, ``/vsis3/...``, an http(s) URL: QGIS cannot load
        those as layers in qgis_process) is checked by opening it with GDAL, through QGIS's proxy; the other
        parameters as Processing checks them."""
        remote = remote_inputs(self, parameters)
        if remote:
            from qgis.core import QgsProperty

            with remote_read_config(list(remote.values())):
                for name, path in remote.items():
                    problem = remote_raster_problem(path)
                    if problem:
                        return False, f"{name}: {problem}"
            # Processing accepts a property without loading it as a layer; the tool reads the path with GDAL
            parameters = {**parameters, **{n: QgsProperty.fromValue(parameters[n]) for n in remote}}
        return super().checkParameterValues(parameters, context)

    def add_advanced(self, *params) -> None:
        """Add parameters shown under the dialog's "Advanced parameters"."""
        for p in params:
            self.addParameter(advanced(p))

    @staticmethod
    def monitor(feedback, start: float = 0.0, end: float = 1.0, info=None) -> Monitor:
        """The one adapter from ``QgsProcessingFeedback`` (percent) to the core's feedback contract: progress as
        a fraction 0-1 of the core call (mapped onto [start, end] of the tool's bar), messages, cancel."""
        return Monitor(
            progress=lambda f: feedback.setProgress(100.0 * (start + (end - start) * f)),
            info=info or feedback.pushInfo,
            is_canceled=feedback.isCanceled,
        )

    #: the folder destination is emptied first when this boolean parameter is true (buildpatches' OVERWRITE)
    REPLACES_FOLDER_PARAM = None
    #: outputs that get a QGIS style sidecar <name>.qml (core.contract.paths.style_sidecar): the guard treats it
    #: as part of the output (never an input, never a style the user wrote)
    STYLED_OUTPUTS = ()

    def check_output_paths(self, parameters, context, extra=None):
        """Refuse, before anything is written, an output on an input, two outputs on one file, or an output
        that is a folder (core.contract.paths.check_outputs). Runs for every tool, from every entry point; a tool that
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
                    # a vector output keeps its '|layername=': two layers of one GeoPackage are two outputs
                    outputs[name] = path if kind == "vectorDestination" else path.split("|")[0]
                    if kind == "rasterDestination":
                        rasters.append(name)
            elif kind == "folderDestination":
                folders[name] = self.parameterAsFileOutput(parameters, name, context)
            elif kind == "file":
                inputs[name] = [self.parameterAsFile(parameters, name, context)]
            elif kind in ("raster", "vector", "source", "layer", "multilayer"):
                inputs[name] = input_paths(value, context)
        replaces = bool(
            self.REPLACES_FOLDER_PARAM and self.parameterAsBool(parameters, self.REPLACES_FOLDER_PARAM, context)
        )
        for name in self.STYLED_OUTPUTS:  # the .qml written beside the output is part of it
            if name in outputs:
                check_style_sidecar(name, outputs[name])
                outputs[f"{name} (its style {os.path.basename(style_sidecar(outputs[name]))})"] = style_sidecar(
                    outputs[name]
                )
        outputs.update(extra or {})
        check_outputs(inputs, outputs, folders, replaces_folder=replaces)
        for name in rasters:
            ext = os.path.splitext(outputs[name])[1].lower().lstrip(".")
            if ext not in RASTER_EXTENSIONS:
                raise SatClassifyError(
                    f"{name} '{outputs[name]}': the tool writes GeoTIFF, not .{ext or '(no extension)'}: name the "
                    "file .tif (convert it afterwards with Raster > Conversion > Translate if needed)"
                )


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
        raise SatClassifyError(
            f"{name} '{value}' is not a coordinate reference system QGIS knows: check the code "
            "(e.g. EPSG:32632 for UTM zone 32N, EPSG:3035 for Europe) or leave it empty"
        )
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
        f"or give the pixel size in degrees (about {pixel_size / 111320.0:.6f} for {pixel_size:g} m)"
    )


def _drop_frames(exc: BaseException) -> None:
    """Release the local variables of every frame in ``exc``'s traceback now (GDAL objects among them)."""
    import traceback

    tb = exc.__traceback__
    if tb is not None:
        traceback.clear_frames(tb)
    exc.__traceback__ = None


def remote_read_config(urls):
    """GDAL's settings for reading remote inputs (``/vsicurl/`` ...) for the duration of a tool: the network
    deadlines, and QGIS's proxy (Settings > Network; without one the standard HTTPS_PROXY / NO_PROXY variables
    apply), restored afterwards."""
    from ..core.net import ProxyConfig
    from ..core.s2.stack import gdal_remote_config
    from ._network import qgis_proxy

    proxy = qgis_proxy() or ProxyConfig.from_env()
    http = [u[len("/vsicurl/") :] for u in urls if u.startswith("/vsicurl/")]
    # a user's file may be any raster GDAL reads (or a signed URL without an extension): no extension filter
    return gdal_remote_config(CPL_VSIL_CURL_ALLOWED_EXTENSIONS=None, **proxy.gdal_options(http))


def remote_raster_problem(path):
    """None when GDAL opens the remote raster ``path``; else what is wrong, with the fix."""
    from osgeo import gdal

    try:
        ds = gdal.OpenEx(path, gdal.OF_RASTER | gdal.OF_READONLY)
    except RuntimeError as e:
        ds, why = None, str(e).strip()
    else:
        why = gdal.GetLastErrorMsg().strip()
    if ds is None:
        return (
            f"GDAL cannot open the remote raster '{path}'" + (f" ({why})" if why else "") + ": check the "
            "address (a GeoTIFF / COG URL, given as https://... or /vsicurl/https://...), the access rights, "
            "and the network (proxy: QGIS Settings > Options > Network)"
        )
    ds = None
    return None
