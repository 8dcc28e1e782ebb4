"""satclassify:rasterizelabels - your own labels (any polygon or point layer with a class field) -> class raster.

The sibling of rasterizeclc: the same core (core/labels/rasterize.py) and rules, with the class table given by the
user (a CSV file or a table layer: code, value, name, colour) or derived from the field's codes (core/labels/
classtable.py). rasterizeclc stays the CLC preset (level detection, CLC raster input, CLC mapping prefixes)."""

import os

from qgis.core import (
    QgsProcessingFeatureSourceDefinition,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterMapLayer,
    QgsProcessingUtils,
)

from .. import compat
from ..core.contract.errors import SatClassifyError
from . import _labels
from .base import SatClassifyAlgorithm
from .styles import style_output_on_load


def _plain(v):
    """A table layer's attribute as a Python value (QGIS's NULL and other Qt values -> None)."""
    return v if isinstance(v, (int, float, str)) and not isinstance(v, bool) else None


class RasterizeLabelsAlgorithm(SatClassifyAlgorithm):
    ALGORITHM_ID = "rasterizelabels"
    DISPLAY_NAME = "Rasterize labels (own classes)"
    GROUP = "Training data"
    GROUP_ID = "trainingdata"
    TAGS = (
        "labels,rasterize,classes,crop types,lpis,parcels,field survey,points,class table,legend,majority,"
        "mixed pixels,training"
    )
    HELP = (
        "Burns your own labels - crop-type parcels (LPIS), field-survey polygons or points, any layer with a class "
        "field of text or numbers - onto a grid as a uint8 class raster (0 = no label) with its legend (colour "
        "table and category names; the codes are kept in the raster's metadata for buildpatches and the model "
        "card).<br>"
        "<b>Class table</b> (CLASS_TABLE, optional): a CSV file or a table layer with the columns <i>code</i> "
        "(the field's values), and optionally <i>value</i> (1..255; several codes may share one: a mapping), "
        "<i>name</i> and <i>colour</i> (#rrggbb). Without it the classes are the field's distinct codes, sorted, "
        "numbered 1, 2, ... with fixed colours. Codes missing from the table and NULL / empty codes are left as "
        "no label and reported with their feature counts (UNKNOWN_FEATURES, NULL_FEATURES).<br>"
        "<b>Grid</b>: REFERENCE copies a raster's grid exactly (the Sentinel-2 stack); otherwise EXTENT, "
        "TARGET_CRS and PIXEL_SIZE. The layer is reprojected on the fly.<br>"
        "<b>Rule</b> (polygons): pixel centre (identical to gdal_rasterize), all touched, or majority coverage "
        "(the class covering the largest exact area of the pixel). " + _labels.MIXED_HELP + "<br>"
        "<b>Points</b>: each point labels the pixel holding it (points of different classes in one pixel leave "
        "it unlabelled, reported). buildpatches then cuts one patch centred on each labelled pixel and writes a "
        "patch-label dataset (task singlelabel) for a patch classifier (cnn_class).<br>"
        "CORINE Land Cover: use <i>Rasterize CORINE Land Cover</i> (levels, CLC rasters); both share one engine."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                "INPUT", "Label polygons or points", types=[compat.SOURCE_VECTOR_POLYGON, compat.SOURCE_VECTOR_POINT]
            )
        )
        self.addParameter(
            QgsProcessingParameterField("FIELD", "Class field (text or numbers)", parentLayerParameterName="INPUT")
        )
        self.addParameter(
            QgsProcessingParameterMapLayer(
                "CLASS_TABLE",
                "Class table (CSV or table layer: code[,value,name,colour]; empty = the field's codes)",
                optional=True,
            )
        )
        _labels.add_grid_parameters(self)
        _labels.add_rule_parameters(self)
        _labels.add_outputs(self, "Label classes")
        self.addOutput(QgsProcessingOutputNumber("NULL_FEATURES", "Features without a code (NULL / empty)"))
        self.addOutput(QgsProcessingOutputNumber("CLASS_COUNT", "Classes in the class table"))
        self.addOutput(QgsProcessingOutputNumber("LABELLED_POINTS", "Pixels labelled by points"))

    def _class_table(self, parameters, context):
        """(CSV path, rows, name) of CLASS_TABLE: a CSV file is read by the core, another table layer row by row."""
        if parameters.get("CLASS_TABLE") in (None, ""):
            return None, None, ""
        layer = self.parameterAsLayer(parameters, "CLASS_TABLE", context)
        if layer is None:
            path = self.parameterAsString(parameters, "CLASS_TABLE", context)
            if path.lower().endswith((".csv", ".txt")):
                return path, None, ""
            raise SatClassifyError(f"the class table '{path}' cannot be opened: give a CSV file or a table layer")
        if layer.type() != compat.LAYER_VECTOR:
            raise SatClassifyError(
                f"the class table '{layer.name()}' is not a table: give a CSV file or a table "
                "layer with the columns code[,value,name,colour]"
            )
        path = layer.source().split("|")[0]
        if layer.providerType() == "ogr" and path.lower().endswith(".csv") and os.path.isfile(path):
            return path, None, ""
        names = [f.name() for f in layer.fields()]
        rows = tuple({n: _plain(f[n]) for n in names} for f in layer.getFeatures())
        return None, rows, f"class table layer '{layer.name()}'"

    def run_tool(self, parameters, context, feedback):
        from ..core.labels.rasterize import RasterizeOptions, rasterize_labels

        value = parameters.get("INPUT")
        selected = isinstance(value, QgsProcessingFeatureSourceDefinition) and value.selectedFeaturesOnly
        if isinstance(value, QgsProcessingFeatureSourceDefinition):  # a layer with options (selected features only)
            layer = QgsProcessingUtils.mapLayerFromString(value.source.staticValue(), context)
        else:
            layer = self.parameterAsVectorLayer(parameters, "INPUT", context)
        if layer is None:
            raise SatClassifyError("no label layer given (INPUT): give polygons or points with a class field")
        source, layer_name = _labels.vector_source(layer, context, feedback, "labels", only_selected=selected)
        field = self.parameterAsString(parameters, "FIELD", context).strip()
        if not field:
            raise SatClassifyError("no class field given (FIELD): choose the field that holds the class codes")
        csv_path, rows, rows_name = self._class_table(parameters, context)
        grid = _labels.output_grid(self, parameters, context, feedback)
        options = RasterizeOptions(
            field_name=field,
            layer_name=layer_name,
            rule=_labels.RULES[self.parameterAsEnum(parameters, "RULE", context)],
            mixed_output=_labels.mixed_output(self, parameters, context),
            threshold=self.parameterAsDouble(parameters, "THRESHOLD", context),
            class_table_csv=csv_path,
            class_rows=rows,
            class_rows_name=rows_name or "class table layer",
        )
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        feedback.pushInfo(f"grid: {grid.width} x {grid.height} pixels, rule {options.rule}")
        result = rasterize_labels(source, output, grid, options, monitor=self.monitor(feedback))
        feedback.pushInfo(f"written {os.path.basename(output)} in {result.seconds:.1f} s")
        style_output_on_load(context, output, result.classes)
        return {
            "OUTPUT": output,
            "MIXED": options.mixed_output,
            "UNKNOWN_FEATURES": sum(result.unknown.values()),
            "NULL_FEATURES": result.no_code,
            "CLASS_COUNT": len(result.classes),
            "LABELLED_POINTS": result.points.get("labelled_pixels", 0),
        }
