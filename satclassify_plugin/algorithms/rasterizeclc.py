"""satclassify:rasterizeclc - CORINE Land Cover polygons (or raster) -> class raster on a chosen grid."""

import os

from qgis.core import (
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterString,
)

from .. import compat
from ..core.contract.errors import SatClassifyError
from . import _labels
from .base import SatClassifyAlgorithm
from .styles import style_output_on_load


class RasterizeClcAlgorithm(SatClassifyAlgorithm):
    ALGORITHM_ID = "rasterizeclc"
    DISPLAY_NAME = "Rasterize CORINE Land Cover"
    GROUP = "Training data"
    GROUP_ID = "trainingdata"
    TAGS = "clc,corine,land cover,rasterize,labels,reference,majority,mixed pixels,training"
    LEVEL_OPTIONS = [
        "CLC level 1 (5 classes)",
        "CLC level 2 (15 classes)",
        "CLC level 3 (44 classes)",
        "Mapping table (MAPPING)",
    ]
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
        'where code has 1 to 3 digits ("2" = all agricultural classes; the most specific code wins).<br>'
        "<b>Rule</b>: pixel centre (identical to gdal_rasterize), all touched, or majority coverage (the class "
        "covering the largest exact area of the pixel; ties go to the lower class value). "
        + _labels.MIXED_HELP
        + "<br>"
        "Your own classes (crop types, survey polygons or points, any class field): <i>Rasterize labels</i> "
        "(satclassify:rasterizelabels), the same rules.<br>"
        "Self-intersecting polygons are rasterized as drawn (even-odd fill: both lobes of a bow-tie are "
        "filled); where polygons overlap, the later one wins. A CLC raster (grid codes 1..44 or codes "
        "111..523) is resampled (nearest, or mode for majority) and remapped."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(
            QgsProcessingParameterMapLayer(
                "INPUT",
                "CORINE Land Cover polygons or raster",
                types=[compat.SOURCE_VECTOR_POLYGON, compat.SOURCE_RASTER],
            )
        )
        self.addParameter(
            QgsProcessingParameterString("FIELD", "Code field (empty = detect code_18 / code_12 / ...)", optional=True)
        )
        self.addParameter(QgsProcessingParameterEnum("LEVEL", "Classes", options=self.LEVEL_OPTIONS, defaultValue=2))
        self.addParameter(
            QgsProcessingParameterFile(
                "MAPPING", "Mapping table (CSV: code,value,name[,colour])", extension="csv", optional=True
            )
        )
        _labels.add_grid_parameters(self)
        _labels.add_rule_parameters(self)
        _labels.add_outputs(self, "CLC classes")

    def _source(self, layer, context, feedback):
        """(path, layer name) GDAL/OGR can open for the INPUT layer."""
        if layer.type() == compat.LAYER_RASTER:
            if layer.providerType() != "gdal":
                raise SatClassifyError(
                    f"layer '{layer.name()}' is a {layer.providerType()} raster: save it as a GeoTIFF first"
                )
            return layer.source(), None
        if layer.type() != compat.LAYER_VECTOR:
            raise SatClassifyError(f"layer '{layer.name()}' is neither polygons nor a raster")
        return _labels.vector_source(layer, context, feedback, "clc")

    def run_tool(self, parameters, context, feedback):
        from ..core.labels.rasterize import RasterizeOptions, rasterize_clc

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
        grid = _labels.output_grid(self, parameters, context, feedback)
        options = RasterizeOptions(
            level=min(level_idx, 2) + 1,
            mapping_csv=mapping,
            field_name=self.parameterAsString(parameters, "FIELD", context).strip() or None,
            layer_name=layer_name,
            rule=_labels.RULES[self.parameterAsEnum(parameters, "RULE", context)],
            mixed_output=_labels.mixed_output(self, parameters, context),
            threshold=self.parameterAsDouble(parameters, "THRESHOLD", context),
        )
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        feedback.pushInfo(f"grid: {grid.width} x {grid.height} pixels, rule {options.rule}")
        result = rasterize_clc(source, output, grid, options, monitor=self.monitor(feedback))
        feedback.pushInfo(f"written {os.path.basename(output)} in {result.seconds:.1f} s")
        style_output_on_load(context, output, result.classes)
        return {"OUTPUT": output, "MIXED": options.mixed_output, "UNKNOWN_FEATURES": sum(result.unknown.values())}
