"""satclassify:classify - run an ONNX land-cover model on a raster layer (tiled, blended, streamed)."""
from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from .. import compat
from ..core.classify.inference import DEVICES
from ..core.contract.errors import SatClassifyError
from .base import SatClassifyAlgorithm, style_output_on_load


def input_and_extent(alg, parameters, context):
    """The INPUT raster layer (a file GDAL reads) and EXTENT as (xmin, ymin, xmax, ymax) in the layer's CRS (None:
    the whole layer); shared by the classify tools."""
    layer = alg.parameterAsRasterLayer(parameters, "INPUT", context)
    if layer is None:
        raise SatClassifyError("no input raster layer given (INPUT)")
    if layer.providerType() != "gdal":
        raise SatClassifyError(
            f"layer '{layer.name()}' is a {layer.providerType()} layer; SatClassify reads files GDAL can open: "
            "save the layer as a GeoTIFF first")
    extent = None
    if parameters.get("EXTENT") not in (None, ""):
        rect = alg.parameterAsExtent(parameters, "EXTENT", context, layer.crs())
        if not rect.isNull() and not rect.isEmpty():
            extent = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
    return layer, extent


class ClassifyAlgorithm(SatClassifyAlgorithm):
    ALGORITHM_ID = "classify"
    MEMORY_HINT = "use a smaller EXTENT, TILE_SIZE or BATCH_SIZE"
    DISPLAY_NAME = "Classify raster with ONNX model"
    GROUP = "Classification"
    GROUP_ID = "classification"
    TAGS = "onnx,classify,land cover,segmentation,inference,unet,cnn,sentinel-2,clc,deep learning"
    REQUIRES = ("onnxruntime",)
    HELP = (
        "Runs a SatClassify ONNX model (or a Deepness segmentation model) on a raster layer and writes one "
        "uint8 class raster per model head, with the model's colour table and class names.<br>"
        "<b>Model</b>: an .onnx file with the SatClassify model card (bands, scale, tile size, halo, classes).<br>"
        "<b>Bands</b>: by default the model's bands (e.g. B02 B03 B04 B08) are found by the raster's band "
        "names; otherwise list raster band numbers or names in the model's order, e.g. <i>2,3,4,8</i>.<br>"
        "<b>Extent</b>: optional; default is the whole layer (reprojected to the layer's CRS).<br>"
        "<b>Device</b>: Auto uses CUDA when onnxruntime-gpu offers it, else the CPU. The log names the provider "
        "that actually ran and the throughput in megapixels per second.<br>"
        "<b>Outputs</b>: OUTPUT is the first head's class raster; a two-head model (CNN-dual: fine and coarse "
        "classes) writes its second head to OUTPUT_2 when given (there is no output folder: name each raster). "
        "CONFIDENCE is the highest class probability in percent (0-100, nodata 255); PROBABILITIES has one "
        "band per class of the first head (percent). Pixels where any input band is nodata (DN 0 in a "
        "Sentinel-2 stack) are 0 in the class rasters.<br>"
        "<b>Advanced</b>: TILE_SIZE and BATCH_SIZE (0 = model defaults); RESAMPLE runs the model at its "
        "training resolution (the input is warped through a VRT). The image is processed in tiles with a halo "
        "of context, so the result equals a whole-image run, and streamed to disk, so any raster size fits in "
        "memory. Outputs appear only when complete: a cancelled run leaves no file.")

    DEVICE_OPTIONS = list(DEVICES)

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Input raster (e.g. Sentinel-2 stack)"))
        self.addParameter(QgsProcessingParameterFile("MODEL", "ONNX model", extension="onnx"))
        self.addParameter(QgsProcessingParameterString(
            "BANDS", "Raster bands in the model's order (numbers or names; empty = match band names)",
            optional=True))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Extent (default: the whole layer)", optional=True))
        self.addParameter(QgsProcessingParameterEnum("DEVICE", "Device", options=self.DEVICE_OPTIONS, defaultValue=0))
        adv = []
        adv.append(QgsProcessingParameterNumber("TILE_SIZE", "Tile size in pixels (0 = model default)",
                                                compat.NUMBER_INTEGER, 0, False, 0, 16384))
        adv.append(QgsProcessingParameterNumber("BATCH_SIZE", "Batch size in tiles (0 = default)",
                                                compat.NUMBER_INTEGER, 0, False, 0, 4096))
        adv.append(QgsProcessingParameterBoolean(
            "RESAMPLE", "Resample the input to the model's resolution", defaultValue=False))
        for p in adv:
            p.setFlags(p.flags() | compat.PARAM_FLAG_ADVANCED)
            self.addParameter(p)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Classes (first head)"))
        self.addParameter(QgsProcessingParameterRasterDestination(
            "OUTPUT_2", "Classes (second head, two-head models)", optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterRasterDestination(
            "CONFIDENCE", "Confidence (max probability, %)", optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterRasterDestination(
            "PROBABILITIES", "Class probabilities (%, first head)", optional=True, createByDefault=False))
        self.addOutput(QgsProcessingOutputString("PROVIDER", "onnxruntime execution provider used"))
        self.addOutput(QgsProcessingOutputNumber("MPIX_PER_S", "Throughput (megapixels per second)"))

    def run_tool(self, parameters, context, feedback):
        from ..core.classify.pipeline import classify

        layer, extent = input_and_extent(self, parameters, context)
        model = self.parameterAsFile(parameters, "MODEL", context)
        device = self.DEVICE_OPTIONS[self.parameterAsEnum(parameters, "DEVICE", context)]
        outs = {}
        for key in ("OUTPUT", "OUTPUT_2", "CONFIDENCE", "PROBABILITIES"):
            value = parameters.get(key)
            outs[key] = self.parameterAsOutputLayer(parameters, key, context) if value not in (None, "") else None
            if outs[key] == "":
                outs[key] = None

        result = classify(
            layer.source(), model, [outs["OUTPUT"], outs["OUTPUT_2"]], confidence=outs["CONFIDENCE"],
            probabilities=outs["PROBABILITIES"], bands=self.parameterAsString(parameters, "BANDS", context) or "",
            extent=extent, device=device, tile_size=self.parameterAsInt(parameters, "TILE_SIZE", context),
            batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
            resample=self.parameterAsBool(parameters, "RESAMPLE", context),
            **self.monitor(feedback).callbacks())
        for key, head in (("OUTPUT", 0), ("OUTPUT_2", 1)):
            if outs[key] and head < len(result.heads):
                style_output_on_load(context, outs[key], result.heads[head].classes)
        return {"OUTPUT": outs["OUTPUT"], "OUTPUT_2": outs["OUTPUT_2"], "CONFIDENCE": outs["CONFIDENCE"],
                "PROBABILITIES": outs["PROBABILITIES"], "PROVIDER": result.provider,
                "MPIX_PER_S": result.mpix_per_s}
