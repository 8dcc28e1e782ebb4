"""What the two label tools (rasterizeclc, rasterizelabels) share: the input layer as a file OGR opens, the output
grid (a reference raster, or an extent + CRS + pixel size) and their common parameters. Not a tool (leading _)."""

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingOutputNumber,
    QgsProcessingParameterCrs,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingUtils,
    QgsProviderRegistry,
    QgsVectorFileWriter,
)

from .. import compat
from ..core.contract.errors import SatClassifyError
from .base import refuse_degree_pixels, target_crs
from .layers import gdal_raster_source

RULE_OPTIONS = ["Pixel centre (GDAL default)", "All touched", "Majority coverage"]
RULES = ["centre", "all_touched", "majority"]
MIXED_HELP = (
    "With majority, MIXED marks pixels whose dominant class covers less than THRESHOLD of the pixel "
    "(value 1, <i>partly covered</i>: split between classes or partly outside every polygon) and pixels "
    "where overlapping polygons of different classes share area (value 2, <i>claimed twice</i>); 0 = pure. "
    "Give MIXED to buildpatches as MASK with MASK_IS_NOISE to train on pure pixels only."
)


def add_grid_parameters(alg):
    alg.addParameter(QgsProcessingParameterRasterLayer("REFERENCE", "Reference raster (grid to copy)", optional=True))
    alg.addParameter(QgsProcessingParameterExtent("EXTENT", "Extent (without a reference raster)", optional=True))
    alg.addParameter(QgsProcessingParameterCrs("TARGET_CRS", "Output CRS (without a reference raster)", optional=True))
    alg.addParameter(
        QgsProcessingParameterNumber(
            "PIXEL_SIZE", "Pixel size (without a reference raster)", compat.NUMBER_DOUBLE, 10.0, True, 0.0
        )
    )


def add_rule_parameters(alg):
    alg.addParameter(QgsProcessingParameterEnum("RULE", "Pixel rule", options=RULE_OPTIONS, defaultValue=0))
    alg.add_advanced(
        QgsProcessingParameterNumber(
            "THRESHOLD",
            "Mixed: dominant class fraction below which a pixel is mixed",
            compat.NUMBER_DOUBLE,
            0.75,
            False,
            0.01,
            1.0,
        )
    )


def add_outputs(alg, output_name):
    alg.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", output_name))
    alg.addParameter(
        QgsProcessingParameterRasterDestination(
            "MIXED",
            "Mixed pixels (majority rule; 1 = partly covered, 2 = claimed twice)",
            optional=True,
            createByDefault=False,
        )
    )
    alg.addOutput(QgsProcessingOutputNumber("UNKNOWN_FEATURES", "Features with unknown codes"))


def mixed_output(alg, parameters, context):
    if parameters.get("MIXED") in (None, ""):
        return None
    return alg.parameterAsOutputLayer(parameters, "MIXED", context) or None


def vector_source(layer, context, feedback, copy_name="clc", only_selected=False):
    """(path, layer name) GDAL/OGR can open for a vector layer: its file, or a GeoPackage copy of a memory, filtered
    or database layer (or of its selected features only)."""
    parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
    if layer.providerType() == "ogr" and not layer.subsetString() and parts.get("path") and not only_selected:
        return parts["path"], parts.get("layerName") or None
    if only_selected and not layer.selectedFeatureCount():
        raise SatClassifyError(
            f"'selected features only' is set but no feature of layer '{layer.name()}' is "
            "selected: select the features, or clear the option"
        )
    path = QgsProcessingUtils.generateTempFilename(f"{copy_name}_input.gpkg")
    opts = QgsVectorFileWriter.SaveVectorOptions()
    opts.driverName = "GPKG"
    opts.layerName = copy_name
    opts.onlySelectedFeatures = bool(only_selected)
    res = QgsVectorFileWriter.writeAsVectorFormatV3(layer, path, context.transformContext(), opts)
    if res[0] != compat.WRITER_NO_ERROR:
        raise SatClassifyError(f"cannot copy layer '{layer.name()}' for rasterizing: {res[1]}")
    feedback.pushInfo(
        f"layer '{layer.name()}' copied to {path} ("
        + (f"its {layer.selectedFeatureCount()} selected features" if only_selected else "filtered or non-file layer")
        + ")"
    )
    return path, copy_name


def _lon_lat(point, crs, context):
    from qgis.core import QgsCoordinateTransform

    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    p = QgsCoordinateTransform(crs, wgs84, context.transformContext()).transform(point)
    return p.x(), p.y()


def output_grid(alg, parameters, context, feedback):
    """The output grid: REFERENCE's exactly, or EXTENT + TARGET_CRS + PIXEL_SIZE (an extent in degrees with a pixel
    size in metres: the UTM zone of its centre)."""
    from ..core.labels.rasterize import Grid

    ref = gdal_raster_source(alg, parameters, "REFERENCE", context, "reference")
    if ref is not None:
        return Grid.from_raster(ref)
    if parameters.get("EXTENT") in (None, ""):
        raise SatClassifyError("give a reference raster (REFERENCE), or an extent (EXTENT) with a CRS and a pixel size")
    pixel = alg.parameterAsDouble(parameters, "PIXEL_SIZE", context)
    crs = target_crs(alg, parameters, "TARGET_CRS", context)
    explicit = crs is not None
    if crs is None:
        crs = alg.parameterAsExtentCrs(parameters, "EXTENT", context)
    if not crs.isValid():
        raise SatClassifyError("no output CRS: set TARGET_CRS")
    rect = alg.parameterAsExtent(parameters, "EXTENT", context, crs)
    if rect.isNull() or rect.isEmpty():
        raise SatClassifyError("the extent (EXTENT) is empty")
    if crs.isGeographic() and pixel >= 0.5:
        lon_lat = _lon_lat(rect.center(), crs, context)
        if explicit:
            refuse_degree_pixels(crs, pixel, "TARGET_CRS", lon_lat)
        # an extent in degrees with a pixel size in metres: the UTM zone of its centre, said in the log
        from ..core.s2.stack import utm_epsg

        utm = QgsCoordinateReferenceSystem(f"EPSG:{utm_epsg(*lon_lat)}")
        feedback.pushInfo(
            f"the extent is in {crs.authid()} (degrees) and PIXEL_SIZE is {pixel:g}: the grid "
            f"uses {utm.authid()} ({utm.description()}, the UTM zone of the extent's centre) "
            f"with {pixel:g} m pixels; set TARGET_CRS to choose another CRS"
        )
        crs = utm
        rect = alg.parameterAsExtent(parameters, "EXTENT", context, crs)
    return Grid.from_extent((rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()), crs.toWkt(), pixel)
