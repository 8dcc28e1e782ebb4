"""satclassify:classify - run an ONNX land-cover model on a raster layer (tiled, blended, streamed)."""

import os

from qgis.core import (
    QgsProcessingOutputMultipleLayers,
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
from ..core.classify.options import DEVICES, MAX_BATCH_SIZE, MAX_TILE_SIZE, ClassifyOptions
from .base import SatClassifyAlgorithm
from .layers import input_and_extent
from .styles import style_output_on_load

#: the defaults of the tool's parameters are those of the core's options
DEFAULTS = ClassifyOptions()


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
        "classes) writes its second head to OUTPUT_2 when given, else, with <i>Write every head next to "
        "OUTPUT</i> (WRITE_ALL_HEADS, on by default), next to OUTPUT as <i>&lt;OUTPUT name&gt;_&lt;head "
        "name&gt;.tif</i> (e.g. classes_clc_level1.tif; loaded and styled like OUTPUT). Untick it to write the "
        "first head only; the log then names each head left out. HEAD_OUTPUTS lists the class rasters written. "
        "CONFIDENCE is the highest class probability in percent (0-100, nodata 255); PROBABILITIES has one "
        "band per class of the first head (percent). Pixels where any input band is nodata (DN 0 in a "
        "Sentinel-2 stack) are 0 in the class rasters.<br>"
        "<b>Advanced</b>: TILE_SIZE and BATCH_SIZE (0 = model defaults); RESAMPLE runs the model at its "
        "training resolution (the input is warped through a VRT). The image is processed in tiles with a halo "
        "of context, so the result equals a whole-image run, and streamed to disk, so any raster size fits in "
        "memory. Outputs appear only when complete: a cancelled run leaves no file."
    )

    DEVICE_OPTIONS = list(DEVICES)

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Input raster (e.g. Sentinel-2 stack)"))
        self.addParameter(QgsProcessingParameterFile("MODEL", "ONNX model", extension="onnx"))
        self.addParameter(
            QgsProcessingParameterString(
                "BANDS", "Raster bands in the model's order (numbers or names; empty = match band names)", optional=True
            )
        )
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Extent (default: the whole layer)", optional=True))
        self.addParameter(
            QgsProcessingParameterEnum(
                "DEVICE", "Device", options=self.DEVICE_OPTIONS, defaultValue=self.DEVICE_OPTIONS.index(DEFAULTS.device)
            )
        )
        adv = []
        adv.append(
            QgsProcessingParameterNumber(
                "TILE_SIZE",
                "Tile size in pixels (0 = model default)",
                compat.NUMBER_INTEGER,
                DEFAULTS.tile_size,
                False,
                0,
                MAX_TILE_SIZE,
            )
        )
        adv.append(
            QgsProcessingParameterNumber(
                "BATCH_SIZE",
                "Batch size in tiles (0 = default)",
                compat.NUMBER_INTEGER,
                DEFAULTS.batch_size,
                False,
                0,
                MAX_BATCH_SIZE,
            )
        )
        adv.append(
            QgsProcessingParameterBoolean(
                "RESAMPLE", "Resample the input to the model's resolution", defaultValue=DEFAULTS.resample
            )
        )
        self.add_advanced(*adv)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Classes (first head)"))
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                "OUTPUT_2", "Classes (second head, two-head models)", optional=True, createByDefault=False
            )
        )
        self.addParameter(
            QgsProcessingParameterBoolean(
                "WRITE_ALL_HEADS", "Write every head next to OUTPUT (as <OUTPUT name>_<head>.tif)", defaultValue=True
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                "CONFIDENCE", "Confidence (max probability, %)", optional=True, createByDefault=False
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                "PROBABILITIES", "Class probabilities (%, first head)", optional=True, createByDefault=False
            )
        )
        self.addOutput(QgsProcessingOutputString("PROVIDER", "onnxruntime execution provider used"))
        self.addOutput(QgsProcessingOutputNumber("MPIX_PER_S", "Throughput (megapixels per second)"))
        self.addOutput(QgsProcessingOutputMultipleLayers("HEAD_OUTPUTS", "Class rasters written (one per head)"))

    def run_tool(self, parameters, context, feedback):
        from ..core.classify.pipeline import classify, open_model

        source, extent = input_and_extent(self, parameters, context)
        options = ClassifyOptions(
            bands=self.parameterAsString(parameters, "BANDS", context) or "",
            extent=extent,
            device=self.DEVICE_OPTIONS[self.parameterAsEnum(parameters, "DEVICE", context)],
            tile_size=self.parameterAsInt(parameters, "TILE_SIZE", context),
            batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
            resample=self.parameterAsBool(parameters, "RESAMPLE", context),
        )
        outs = {}
        for key in ("OUTPUT", "OUTPUT_2", "CONFIDENCE", "PROBABILITIES"):
            value = parameters.get(key)
            outs[key] = self.parameterAsOutputLayer(parameters, key, context) if value not in (None, "") else None
            if outs[key] == "":
                outs[key] = None
        monitor = self.monitor(feedback)
        # loaded once, here: its heads decide which files are written (and checked) before the run
        model = open_model(self.parameterAsFile(parameters, "MODEL", context), options, monitor)
        heads = self.head_outputs(parameters, context, feedback, outs, model.card.heads)
        result = classify(
            source,
            model,
            heads,
            confidence=outs["CONFIDENCE"],
            probabilities=outs["PROBABILITIES"],
            options=options,
            monitor=monitor,
        )
        from ..core.trainrun.diagnostics import inference_line

        feedback.pushInfo(inference_line(result.provider))
        for k, path in enumerate(heads[: len(result.heads)]):
            if not path:
                continue
            if path not in (outs["OUTPUT"], outs["OUTPUT_2"]):  # next to OUTPUT (WRITE_ALL_HEADS)
                feedback.pushInfo(f"head '{result.heads[k].name}' written to {path}")
                load_beside(context, outs["OUTPUT"], path, result.heads[k].name)
            style_output_on_load(context, path, result.heads[k].classes, result.class_counts[k])
        return result.tool_results(outs, heads)

    def head_outputs(self, parameters, context, feedback, outs, heads):
        """The class raster of each head: OUTPUT, OUTPUT_2, then (WRITE_ALL_HEADS) ``<OUTPUT base>_<head>.tif``
        for every head without one, checked by the output guard like the declared outputs. A head left out is
        named in the log with the way to get it."""
        from ..core.classify.pipeline import head_output_path

        paths = [outs["OUTPUT"], outs["OUTPUT_2"]] + [None] * max(0, len(heads) - 2)
        write_all = self.parameterAsBool(parameters, "WRITE_ALL_HEADS", context)
        derived = {}
        for k in range(1, len(heads)):
            if paths[k]:
                continue
            if write_all:
                paths[k] = head_output_path(outs["OUTPUT"], heads[k].name, k)
                derived[f"head {k + 1} '{heads[k].name}' ({os.path.basename(paths[k])})"] = paths[k]
            else:
                how = "give OUTPUT_2, or tick" if k == 1 else "tick"
                feedback.pushWarning(
                    f"the model has {len(heads)} heads: head '{heads[k].name}' ({heads[k].num_classes} classes) was "
                    f"not written: {how} 'Write every head next to OUTPUT' (WRITE_ALL_HEADS)"
                )
        if derived:
            self.check_output_paths(parameters, context, extra=derived)
        return paths


def load_beside(context, output, path, head_name):
    """Load ``path`` into the project with OUTPUT when OUTPUT is loaded (dialog runs): named after OUTPUT's layer."""
    from qgis.core import QgsProcessingContext

    if context.willLoadLayerOnCompletion(output):
        d = context.layerToLoadOnCompletionDetails(output)
        context.addLayerToLoadOnCompletion(
            path, QgsProcessingContext.LayerDetails(f"{d.name} ({head_name})", d.project, "OUTPUT")
        )
