"""satclassify:classifypatches - a patch classifier (ONNX) over a raster's patch grid -> labelled polygons."""
from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
)

from .. import compat
from ..core.classify.inference import DEVICES
from ..core.contract.errors import SatClassifyError
from .base import SatClassifyAlgorithm, style_polygons_on_load
from .classify import input_and_extent


class ClassifyPatchesAlgorithm(SatClassifyAlgorithm):
    ALGORITHM_ID = "classifypatches"
    MEMORY_HINT = "use a smaller EXTENT or BATCH_SIZE"
    DISPLAY_NAME = "Classify raster patches with ONNX model"
    GROUP = "Classification"
    GROUP_ID = "classification"
    TAGS = "onnx,patch,scene,multi-label,multilabel,bigearthnet,eurosat,cnn,classification,labels,deep learning"
    REQUIRES = ("onnxruntime",)
    DEVICE_OPTIONS = list(DEVICES)
    HELP = (
        "Runs a patch classifier (a SatClassify CNN-class ONNX model, e.g. trained on BigEarthNet or EuroSAT "
        "with <i>python -m training import</i>) over the raster's patch grid and writes one polygon per patch to "
        "a GeoPackage.<br>"
        "<b>Grid</b>: patches of the model's input size (its card's tile_size, e.g. 120 pixels for BigEarthNet) "
        "from the top-left corner of the raster or of EXTENT; a partial row or column at the edge is left out; "
        "patches that are all nodata are left out.<br>"
        "<b>Fields</b>: <i>labels</i> (class names joined by \"; \"), <i>top_value</i> / <i>top_label</i> / "
        "<i>top_p</i> (the most probable class), <i>valid</i> (fraction of valid pixels), <i>row</i>, <i>col</i>, "
        "and one <i>p_&lt;value&gt;</i> probability (0-1) per class.<br>"
        "<b>Multi-label models</b> (sigmoid outputs) label a patch with every class whose probability reaches its "
        "threshold: the per-class thresholds of the model card (tuned on validation), or THRESHOLD for all classes "
        "when given. <b>Single-label models</b> (softmax) give their top class (THRESHOLD is ignored).<br>"
        "<b>Bands</b>: matched by name as in the Classify tool, or listed in BANDS. The layer is styled by its top "
        "label with the class colours.")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Input raster (e.g. Sentinel-2 stack)"))
        self.addParameter(QgsProcessingParameterFile("MODEL", "ONNX patch classifier", extension="onnx"))
        self.addParameter(QgsProcessingParameterNumber(
            "THRESHOLD", "Probability threshold for every class (multi-label; empty = the model's per-class "
            "thresholds)", compat.NUMBER_DOUBLE, None, True, 0.0, 1.0))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Extent (default: the whole layer)", optional=True))
        self.addParameter(QgsProcessingParameterEnum("DEVICE", "Device", options=self.DEVICE_OPTIONS, defaultValue=0))
        adv = [QgsProcessingParameterString(
                   "BANDS", "Raster bands in the model's order (numbers or names; empty = match band names)",
                   optional=True),
               QgsProcessingParameterNumber("BATCH_SIZE", "Batch size in patches (0 = default)",
                                            compat.NUMBER_INTEGER, 0, False, 0, 4096)]
        self.add_advanced(*adv)
        self.addParameter(QgsProcessingParameterVectorDestination(
            "OUTPUT", "Patches (GeoPackage)", compat.SOURCE_VECTOR_POLYGON))
        self.addOutput(QgsProcessingOutputNumber("COUNT", "Patches written"))
        self.addOutput(QgsProcessingOutputString("PROVIDER", "onnxruntime execution provider used"))

    def run_tool(self, parameters, context, feedback):
        import os

        from ..core.classify.patches import classify_patches

        layer, extent = input_and_extent(self, parameters, context)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        if output.startswith(("memory:", "ogr:", "postgres:")) or os.path.splitext(output)[1].lower() != ".gpkg":
            raise SatClassifyError(f"OUTPUT '{output}': the tool writes a GeoPackage: name the file .gpkg")
        threshold = None
        if parameters.get("THRESHOLD") not in (None, ""):
            threshold = self.parameterAsDouble(parameters, "THRESHOLD", context)
        result = classify_patches(
            layer.source(), self.parameterAsFile(parameters, "MODEL", context), output, threshold=threshold,
            extent=extent, device=self.DEVICE_OPTIONS[self.parameterAsEnum(parameters, "DEVICE", context)],
            bands=self.parameterAsString(parameters, "BANDS", context) or "",
            batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
            **self.monitor(feedback).callbacks())
        style_polygons_on_load(context, output, result.classes, field="top_value")
        return {"OUTPUT": output, "COUNT": result.cells, "PROVIDER": result.provider}
