"""Layer parameters -> the files behind them, the one place the SatClassify tools turn layers into paths.

* :func:`raster_layer_path`: a raster layer -> the file GDAL reads (a layer of another provider refused with the
  fix); :func:`gdal_raster_source` for a raster parameter, :func:`input_and_extent` for the classify tools' INPUT
  and EXTENT.
* :func:`input_paths`: the files behind any layer-like value (what the output guard compares outputs with).
* :func:`gpkg_output`: the GeoPackage (and layer) a vector output writes.
"""

import os

from .. import compat
from ..core.contract.errors import SatClassifyError

#: GDAL's virtual file systems of remote files: a raster given as such a path (or an http(s) URL, read through
#: /vsicurl/) is read by GDAL itself, never loaded as a QGIS layer (QGIS 3.22's qgis_process cannot load one:
#: "Could not load source layer"; a QgsRasterLayer on /vsicurl/ in a headless Python even crashes)
REMOTE_PREFIXES = (
    "/vsicurl/",
    "/vsicurl?",
    "/vsis3/",
    "/vsigs/",
    "/vsiaz/",
    "/vsiadls/",
    "/vsioss/",
    "/vsiswift/",
    "/vsiwebhdfs/",
    "/vsihdfs/",
)


def remote_raster(value):
    """The GDAL path of a raster parameter value that names a remote file (``/vsicurl/https://...``,
    ``/vsis3/bucket/key.tif``, or a plain ``https://...`` URL -> ``/vsicurl/https://...``); None otherwise."""
    if not isinstance(value, str):
        return None
    v = value.strip()
    if v.lower().startswith(("http://", "https://")):
        return "/vsicurl/" + v
    return v if v.startswith(REMOTE_PREFIXES) else None


def remote_inputs(alg, parameters):
    """{parameter name: GDAL path} of the raster parameters given as remote files."""
    out = {}
    for d in alg.parameterDefinitions():
        if d.type() == "raster":
            path = remote_raster(parameters.get(d.name()))
            if path:
                out[d.name()] = path
    return out


def raster_layer_path(layer, what="raster"):
    """The file behind raster layer ``layer`` (None for None), as GDAL opens it. A layer of another provider
    (WMS, PostGIS raster, a virtual raster...) is refused: ``what`` names the layer's role in the message."""
    if layer is None:
        return None
    if layer.providerType() != "gdal":
        raise SatClassifyError(
            f"{what} layer '{layer.name()}' is a {layer.providerType()} layer; SatClassify reads "
            "files GDAL can open: save the layer as a GeoTIFF first"
        )
    return layer.source()


def gdal_raster_source(alg, parameters, key, context, what="raster"):
    """The file behind raster layer parameter ``key`` (None when it is empty); a layer of another provider
    (WMS, PostGIS raster...) is refused with the fix. A path QGIS cannot load is passed on, so the core names
    the problem (missing file, unreadable)."""
    if parameters.get(key) in (None, ""):
        return None
    remote = remote_raster(parameters.get(key))
    if remote:
        return remote
    layer = alg.parameterAsRasterLayer(parameters, key, context)
    if layer is None:
        return alg.parameterAsString(parameters, key, context) or None
    return raster_layer_path(layer, what)


def input_and_extent(alg, parameters, context):
    """The INPUT raster (the file GDAL reads: a layer's file, or a remote /vsicurl/, /vsis3/... path or URL) and
    EXTENT as (xmin, ymin, xmax, ymax) in the raster's CRS (None: the whole raster); shared by the classify
    tools."""
    remote = remote_raster(parameters.get("INPUT"))
    if remote:
        path, crs = remote, _gdal_crs(remote)
    else:
        layer = alg.parameterAsRasterLayer(parameters, "INPUT", context)
        if layer is None:
            raise SatClassifyError("no input raster layer given (INPUT)")
        path, crs = raster_layer_path(layer, "input"), layer.crs()
    extent = None
    if parameters.get("EXTENT") not in (None, ""):
        from ..core.classify.pipeline import check_extent_area

        rect = alg.parameterAsExtent(parameters, "EXTENT", context, crs)
        extent = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
        # an extent that was given but has no area is a mistake, never "the whole layer" (the command's check too)
        check_extent_area((0, 0, 0, 0) if rect.isNull() else extent, parameters.get("EXTENT"))
    return path, extent


def _gdal_crs(path):
    """The QGIS CRS of a raster GDAL reads (a remote input has no QGIS layer)."""
    from qgis.core import QgsCoordinateReferenceSystem

    from ..core.raster import open_raster

    ds = open_raster(path, "input raster")
    wkt = ds.GetProjection()
    ds = None
    return QgsCoordinateReferenceSystem.fromWkt(wkt) if wkt else QgsCoordinateReferenceSystem()


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
        if remote_raster(text):  # a remote file: no local file an output could overwrite, nothing to load
            return []
        plain = text.split("|")[0]
        if os.path.exists(plain):
            return [plain]
        layer = QgsProcessingUtils.mapLayerFromString(text, context)
    if layer is None:
        return []
    parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
    path = parts.get("path") or layer.source().split("|")[0]
    return [path] if path and os.path.exists(path) else []


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
        raise SatClassifyError(
            f"{key} '{out}': {what}: name the file .gpkg (or 'file.gpkg|layername=name' to add "
            "the layer to an existing GeoPackage)"
        )
    return out
