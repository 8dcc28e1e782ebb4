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
from ..core.classify.options import DEVICES, MAX_BATCH_SIZE, ClassifyOptions
from ..core.contract.errors import SatClassifyError
from .base import SatClassifyAlgorithm
from .layers import gpkg_output, input_and_extent
from .styles import style_polygons_on_load

#: the defaults of the tool's parameters are those of the core's options
DEFAULTS = ClassifyOptions()


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
        '<b>Fields</b>: <i>labels</i> (class names joined by "; "), <i>top_value</i> / <i>top_label</i> / '
        "<i>top_p</i> (the most probable class), <i>valid</i> (fraction of valid pixels), <i>row</i>, <i>col</i>, "
        "and one <i>p_&lt;value&gt;</i> probability (0-1) per class.<br>"
        "<b>Multi-label models</b> (sigmoid outputs) label a patch with every class whose probability reaches its "
        "threshold: the per-class thresholds of the model card (tuned on validation), or THRESHOLD for all classes "
        "when given. <b>Single-label models</b> (softmax) give their top class (THRESHOLD is ignored).<br>"
        "<b>Bands</b>: matched by name as in the Classify tool, or listed in BANDS. The layer is styled by its top "
        "label with the class colours.<br>"
        "<b>Model</b>: pick one in the list (the models shipped with the plugin, and those added with Plugins > "
        "SatClassify > Manage models..., which shows each model's classes, bands, figures and licence), or give an "
        ".onnx file as MODEL: a file given is used instead of the list. In qgis_process and saved models MODEL_ID is "
        "the model's id (its file name without .onnx, e.g. eurosat_rgb_satimnet)."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Input raster (e.g. Sentinel-2 stack)"))
        cat = model_catalogue()
        try:
            ids, default = cat.ids(), cat.default_id()
        except SatClassifyError:  # a broken user index must not remove the tool: the run says what is wrong
            ids, default = [e.id for e in cat.shipped()], cat.default_id()
        choice = QgsProcessingParameterEnum(
            "MODEL_ID",
            "Model (shipped with the plugin, or added with Plugins > SatClassify > Manage models...)",
            options=ids,
            defaultValue=default,
            optional=True,
            usesStaticStrings=True,
        )
        choice.setMetadata({"satclassify": {"model_catalogue": True}})  # options depend on the installation
        self.addParameter(choice)
        self.addParameter(
            QgsProcessingParameterFile(
                "MODEL",
                "ONNX patch classifier file (given: used instead of the model list)",
                extension="onnx",
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "THRESHOLD",
                "Probability threshold for every class (multi-label; empty = the model's per-class thresholds)",
                compat.NUMBER_DOUBLE,
                None,
                True,
                0.0,
                1.0,
            )
        )
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Extent (default: the whole layer)", optional=True))
        self.addParameter(
            QgsProcessingParameterEnum(
                "DEVICE", "Device", options=self.DEVICE_OPTIONS, defaultValue=self.DEVICE_OPTIONS.index(DEFAULTS.device)
            )
        )
        adv = [
            QgsProcessingParameterString(
                "BANDS", "Raster bands in the model's order (numbers or names; empty = match band names)", optional=True
            ),
            QgsProcessingParameterNumber(
                "BATCH_SIZE",
                "Batch size in patches (0 = default)",
                compat.NUMBER_INTEGER,
                DEFAULTS.batch_size,
                False,
                0,
                MAX_BATCH_SIZE,
            ),
        ]
        self.add_advanced(*adv)
        self.addParameter(
            QgsProcessingParameterVectorDestination("OUTPUT", "Patches (GeoPackage)", compat.SOURCE_VECTOR_POLYGON)
        )
        self.addOutput(QgsProcessingOutputNumber("COUNT", "Patches written"))
        self.addOutput(QgsProcessingOutputString("PROVIDER", "onnxruntime execution provider used"))

    def run_tool(self, parameters, context, feedback):
        from ..core.classify.patches import classify_patches

        source, extent = input_and_extent(self, parameters, context)
        output = gpkg_output(self, parameters, "OUTPUT", context)
        threshold = None
        if parameters.get("THRESHOLD") not in (None, ""):
            threshold = self.parameterAsDouble(parameters, "THRESHOLD", context)
        model = self.model_path(parameters, context, feedback)
        options = ClassifyOptions(
            bands=self.parameterAsString(parameters, "BANDS", context) or "",
            extent=extent,
            device=self.DEVICE_OPTIONS[self.parameterAsEnum(parameters, "DEVICE", context)],
            batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
        )
        result = classify_patches(
            source, model, output, threshold=threshold, options=options, monitor=self.monitor(feedback)
        )
        style_polygons_on_load(context, output, result.classes, field="top_value")
        from ..core.trainrun.diagnostics import inference_line

        feedback.pushInfo(inference_line(result.provider))
        return {"OUTPUT": output, "COUNT": result.cells, "PROVIDER": result.provider}

    def checkParameterValues(self, parameters, context):
        """MODEL_ID must name a model of the list (a clear message instead of Processing's "incorrect value");
        with a MODEL file given, MODEL_ID is not used, so a stale id (a saved model run elsewhere) is no error."""
        value = parameters.get("MODEL_ID")
        options = self.parameterDefinition("MODEL_ID").options()
        if value not in (None, "") and not (isinstance(value, str) and value in options):
            if parameters.get("MODEL") not in (None, ""):
                parameters = {k: v for k, v in parameters.items() if k != "MODEL_ID"}
            else:
                hint = " (the model's id, not a number)" if not isinstance(value, str) else ""
                return False, (
                    f"MODEL_ID '{value}'{hint}: no such model in the model list (models: "
                    f"{', '.join(options) or 'none'}). Add it with Plugins > SatClassify > Manage "
                    "models..., or give its .onnx file as MODEL"
                )
        return super().checkParameterValues(parameters, context)

    def model_path(self, parameters, context, feedback):
        """The .onnx to run: the MODEL file when given, else the MODEL_ID entry of the model list."""
        path = self.parameterAsFile(parameters, "MODEL", context)
        if path:
            return path
        model_id = self.parameterAsEnumString(parameters, "MODEL_ID", context)
        if not model_id:
            raise SatClassifyError("no model: choose one in the model list (MODEL_ID) or give an .onnx file (MODEL)")
        entry = model_catalogue().get(model_id)
        feedback.pushInfo(f"model '{entry.id}' ({'shipped' if entry.shipped else 'added'}): {entry.path}")
        return entry.path


def model_catalogue():
    """The model list of this QGIS profile (the user models folder: install.model_catalogue.user_dir)."""
    from qgis.core import QgsApplication

    from ..install.model_catalogue import Catalogue, user_dir

    return Catalogue(user_dir(QgsApplication.qgisSettingsDirPath()))
