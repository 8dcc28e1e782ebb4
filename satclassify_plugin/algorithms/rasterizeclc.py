"""satclassify:rasterizeclc - CORINE Land Cover polygons (or raster) -> class raster on a chosen grid."""
import os

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingOutputNumber,
    QgsProcessingParameterCrs,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingUtils,
    QgsProviderRegistry,
    QgsVectorFileWriter,
)

from .. import compat
from ..core.contract.errors import SatClassifyError
from .base import SatClassifyAlgorithm, refuse_degree_pixels, target_crs
from .styles import style_output_on_load


class RasterizeClcAlgorithm(SatClassifyAlgorithm):
    ALGORITHM_ID = "rasterizeclc"
    DISPLAY_NAME = "Rasterize CORINE Land Cover"
    GROUP = "Training data"
    GROUP_ID = "trainingdata"
    TAGS = "clc,corine,land cover,rasterize,labels,reference,majority,mixed pixels,training"
    LEVEL_OPTIONS = ["CLC level 1 (5 classes)", "CLC level 2 (15 classes)", "CLC level 3 (44 classes)",
                     "Mapping table (MAPPING)"]
    RULE_OPTIONS = ["Pixel centre (GDAL default)", "All touched", "Majority coverage"]
    RULES = ["centre", "all_touched", "majority"]
    HELP = (
        "Burns CORINE Land Cover polygons (GeoPackage, shapefile, the EEA file geodatabase...) or a CLC raster "
        "onto a grid as a uint8 class raster (0 = no label) with the CLC colours and class names.<br>"
        "<b>Code field</b>: found automatically (code_18, Code_12, CODE_06, code_00...; any case); set FIELD to "
        "override. Codes may be text or numbers. Features whose code is not a CLC level-3 code are left as "
        "no label and counted in the log.<br>"
        "<b>Grid</b>: REFERENCE copies a raster's CRS, extent and pixel size exactly (e.g. the Sentinel-2 "
        "stack); otherwise give EXTENT, TARGET_CRS and PIXEL_SIZE. Polygons are reprojected on the fly "
        "(CLC comes in EPSG:3035).<br>"
        "<b>Classes</b>: CLC level 1, 2 or 3, or a mapping table CSV with lines <i>code,value,name[,colour]</i> "
        "where code has 1 to 3 digits (\"2\" = all agricultural classes; the most specific code wins).<br>"
        "<b>Rule</b>: pixel centre (identical to gdal_rasterize), all touched, or majority coverage (the class "
        "covering the largest exact area of the pixel; ties go to the lower class value). With majority, MIXED "
        "marks "
        "(value 1) pixels whose dominant class covers less than THRESHOLD of the pixel or where overlapping "
        "polygons of different classes meet.<br>"
        "Self-intersecting polygons are rasterized as drawn (even-odd fill: both lobes of a bow-tie are "
        "filled); where polygons overlap, the later one wins. A CLC raster (grid codes 1..44 or codes "
        "111..523) is resampled (nearest, or mode for majority) and remapped.")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterMapLayer(
            "INPUT", "CORINE Land Cover polygons or raster",
            types=[compat.SOURCE_VECTOR_POLYGON, compat.SOURCE_RASTER]))
        self.addParameter(QgsProcessingParameterString(
            "FIELD", "Code field (empty = detect code_18 / code_12 / ...)", optional=True))
        self.addParameter(QgsProcessingParameterEnum("LEVEL", "Classes", options=self.LEVEL_OPTIONS,
                                                     defaultValue=2))
        self.addParameter(QgsProcessingParameterFile(
            "MAPPING", "Mapping table (CSV: code,value,name[,colour])", extension="csv", optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "REFERENCE", "Reference raster (grid to copy)", optional=True))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Extent (without a reference raster)",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterCrs("TARGET_CRS", "Output CRS (without a reference raster)",
                                                    optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "PIXEL_SIZE", "Pixel size (without a reference raster)", compat.NUMBER_DOUBLE,
            10.0, True, 0.0))
        self.addParameter(QgsProcessingParameterEnum("RULE", "Pixel rule", options=self.RULE_OPTIONS,
                                                     defaultValue=0))
        adv = [QgsProcessingParameterNumber("THRESHOLD", "Mixed: dominant class fraction below which a pixel "
                                            "is mixed", compat.NUMBER_DOUBLE, 0.75, False, 0.01, 1.0)]
        self.add_advanced(*adv)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "CLC classes"))
        self.addParameter(QgsProcessingParameterRasterDestination(
            "MIXED", "Mixed pixels (majority rule)", optional=True, createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber("UNKNOWN_FEATURES", "Features with unknown codes"))

    def _source(self, layer, context, feedback):
        """(path, layer name) GDAL/OGR can open for the INPUT layer."""
        if layer.type() == compat.LAYER_RASTER:
            if layer.providerType() != "gdal":
                raise SatClassifyError(f"layer '{layer.name()}' is a {layer.providerType()} raster: save it as a "
                                       "GeoTIFF first")
            return layer.source(), None
        if layer.type() != compat.LAYER_VECTOR:
            raise SatClassifyError(f"layer '{layer.name()}' is neither polygons nor a raster")
        parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
        if layer.providerType() == "ogr" and not layer.subsetString() and parts.get("path"):
            return parts["path"], parts.get("layerName") or None
        # memory layers, filtered layers, databases: hand OGR a GeoPackage copy
        path = QgsProcessingUtils.generateTempFilename("clc_input.gpkg")
        opts = QgsVectorFileWriter.SaveVectorOptions()
        opts.driverName = "GPKG"
        opts.layerName = "clc"
        res = QgsVectorFileWriter.writeAsVectorFormatV3(layer, path, context.transformContext(), opts)
        if res[0] != compat.WRITER_NO_ERROR:
            raise SatClassifyError(f"cannot copy layer '{layer.name()}' for rasterizing: {res[1]}")
        feedback.pushInfo(f"layer '{layer.name()}' copied to {path} (filtered or non-file layer)")
        return path, "clc"

    @staticmethod
    def _lon_lat(point, crs, context):
        from qgis.core import QgsCoordinateTransform

        wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
        p = QgsCoordinateTransform(crs, wgs84, context.transformContext()).transform(point)
        return p.x(), p.y()

    def run_tool(self, parameters, context, feedback):
        from ..core.labels.rasterize import Grid, rasterize_clc

        layer = self.parameterAsLayer(parameters, "INPUT", context)
        if layer is None:
            raise SatClassifyError("no CLC input layer given (INPUT)")
        source, layer_name = self._source(layer, context, feedback)
        level_idx = self.parameterAsEnum(parameters, "LEVEL", context)
        mapping = self.parameterAsFile(parameters, "MAPPING", context) or None
        if level_idx == 3 and not mapping:
            raise SatClassifyError("Classes is 'Mapping table' but no mapping table (MAPPING) was given")
        if mapping and level_idx != 3:
            feedback.pushInfo("a mapping table is given: it replaces the CLC level")
        level = min(level_idx, 2) + 1
        ref = self.parameterAsRasterLayer(parameters, "REFERENCE", context)
        if ref is not None:
            if ref.providerType() != "gdal":
                raise SatClassifyError(f"reference layer '{ref.name()}' is not a file GDAL can open: save it first")
            grid = Grid.from_raster(ref.source())
        else:
            if parameters.get("EXTENT") in (None, ""):
                raise SatClassifyError("give a reference raster (REFERENCE), or an extent (EXTENT) with a CRS "
                                       "and a pixel size")
            pixel = self.parameterAsDouble(parameters, "PIXEL_SIZE", context)
            crs = target_crs(self, parameters, "TARGET_CRS", context)
            explicit = crs is not None
            if crs is None:
                crs = self.parameterAsExtentCrs(parameters, "EXTENT", context)
            if not crs.isValid():
                raise SatClassifyError("no output CRS: set TARGET_CRS")
            rect = self.parameterAsExtent(parameters, "EXTENT", context, crs)
            if rect.isNull() or rect.isEmpty():
                raise SatClassifyError("the extent (EXTENT) is empty")
            if crs.isGeographic() and pixel >= 0.5:
                lon_lat = self._lon_lat(rect.center(), crs, context)
                if explicit:
                    refuse_degree_pixels(crs, pixel, "TARGET_CRS", lon_lat)
                # an extent in degrees with a pixel size in metres: the UTM zone of its centre, said in the log
                from ..core.s2.stack import utm_epsg

                utm = QgsCoordinateReferenceSystem(f"EPSG:{utm_epsg(*lon_lat)}")
                feedback.pushInfo(f"the extent is in {crs.authid()} (degrees) and PIXEL_SIZE is {pixel:g}: the grid "
                                  f"uses {utm.authid()} ({utm.description()}, the UTM zone of the extent's centre) "
                                  f"with {pixel:g} m pixels; set TARGET_CRS to choose another CRS")
                crs = utm
                rect = self.parameterAsExtent(parameters, "EXTENT", context, crs)
            grid = Grid.from_extent((rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()),
                                    crs.toWkt(), pixel)
        rule = self.RULES[self.parameterAsEnum(parameters, "RULE", context)]
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        mixed = None
        if parameters.get("MIXED") not in (None, ""):
            mixed = self.parameterAsOutputLayer(parameters, "MIXED", context) or None
        feedback.pushInfo(f"grid: {grid.width} x {grid.height} pixels, rule {rule}")
        result = rasterize_clc(
            source, output, grid, level=level, mapping_csv=mapping,
            field_name=self.parameterAsString(parameters, "FIELD", context).strip() or None,
            layer_name=layer_name, rule=rule,
            mixed_output=mixed, threshold=self.parameterAsDouble(parameters, "THRESHOLD", context),
            **self.monitor(feedback).callbacks())
        feedback.pushInfo(f"written {os.path.basename(output)} in {result.seconds:.1f} s")
        style_output_on_load(context, output, result.classes)
        return {"OUTPUT": output, "MIXED": mixed, "UNKNOWN_FEATURES": sum(result.unknown.values())}
