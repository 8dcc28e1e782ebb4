"""satclassify:cloudmask - clouds and cloud shadows of a Sentinel-2 stack (bands named B02...) by ukis-csmask ->
validity MASK (1 = valid) and an optional cloud / shadow class raster. The CLOUD_MASK parameter that
fetchsentinel2 and importsafe share is in _sentinel2.py (:func:`add_cloud_parameter`, :func:`cloud_mode`)."""

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .. import compat
from ..core.contract.errors import SatClassifyError
from .base import SatClassifyAlgorithm, advanced
from .layers import gdal_raster_source
from .styles import style_output_on_load

LEVEL_KEYS = ["auto", "L1C", "L2A"]
LEVEL_OPTIONS = [
    "From the stack's metadata (products read)",
    "Level-1C (top of atmosphere)",
    "Level-2A (surface reflectance)",
]


class CloudMaskAlgorithm(SatClassifyAlgorithm):
    ALGORITHM_ID = "cloudmask"
    DISPLAY_NAME = "Cloud and shadow mask (Sentinel-2)"
    GROUP = "Sentinel-2"
    GROUP_ID = "sentinel2"
    REQUIRES = ("ukis_csmask",)
    TAGS = "sentinel-2,s2,cloud,cloud shadow,mask,l1c,l2a,ukis-csmask,validity"
    MEMORY_HINT = "crop the stack (Raster > Extraction > Clip) or close other programs"
    HELP = (
        "Detects clouds and cloud shadows in a single-date Sentinel-2 stack with ukis-csmask (DLR's convolutional "
        "network for Sentinel-2, shipped with its package; Apache 2.0) and writes a validity mask in the "
        "convention of the other tools.<br>"
        "<b>Input</b>: any stack whose bands are named in the GDAL band descriptions (B02, B03, B04, B08 at "
        "least; with B11 and B12 the 6-band model is used), values = reflectance x 10000 (Sentinel-2 DN, as "
        "fetchsentinel2 and importsafe write them; SCALE overrides). The bands are averaged to 30 m for the "
        "detector (the resolution it is made for) and its classes repeated onto the stack's grid.<br>"
        "<b>Level</b>: L1C (top of atmosphere) or L2A (surface reflectance): one model each; by default read from "
        "the stack's metadata.<br>"
        "<b>Mask</b>: uint8, 1 = valid, 0 = cloud, cloud shadow (BUFFER: grown by that many metres) or nodata: "
        "feed it to buildpatches or classify.<br>"
        "<b>Classes</b> (optional): uint8, 0 nodata, 1 clear, 2 cloud, 3 cloud shadow, with a legend.<br>"
        "Limits: bright sand, salt flats and snow can be taken for cloud, dark water and terrain shadow for cloud "
        "shadow; thin cirrus is partly missed (docs/sentinel2.md)."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Sentinel-2 stack (bands named B02, B03, ...)"))
        self.addParameter(QgsProcessingParameterEnum("LEVEL", "Product level", options=LEVEL_OPTIONS, defaultValue=0))
        self.addParameter(
            QgsProcessingParameterNumber(
                "BUFFER", "Buffer around clouds and shadows (m)", compat.NUMBER_DOUBLE, 0.0, False, 0.0, 1000.0
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterNumber(
                    "SCALE",
                    "Reflectance per stored value (0 = from the stack: SATCLASSIFY_SCALE, else 0.0001)",
                    compat.NUMBER_DOUBLE,
                    0.0,
                    False,
                    0.0,
                    1.0,
                )
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                "MASK", "Validity mask (1 = valid)", optional=True, createByDefault=True
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                "CLASSES", "Cloud / shadow classes", optional=True, createByDefault=False
            )
        )
        self.addOutput(QgsProcessingOutputNumber("VALID_FRACTION", "Fraction of valid pixels"))
        self.addOutput(QgsProcessingOutputNumber("CLOUD_FRACTION", "Fraction of cloud (pixels with data)"))
        self.addOutput(QgsProcessingOutputNumber("SHADOW_FRACTION", "Fraction of cloud shadow (pixels with data)"))
        self.addOutput(QgsProcessingOutputString("DETECTOR", "Detector model used"))

    def run_tool(self, parameters, context, feedback):
        from ..core.s2.clouds import CLASSES, cloudmask_file

        path = gdal_raster_source(self, parameters, "INPUT", context, "Sentinel-2 stack")
        if not path:
            raise SatClassifyError("no stack given (INPUT)")
        mask = self.parameterAsOutputLayer(parameters, "MASK", context) if parameters.get("MASK") else None
        classes = self.parameterAsOutputLayer(parameters, "CLASSES", context) if parameters.get("CLASSES") else None
        if not mask and not classes:
            raise SatClassifyError("no output: give MASK and/or CLASSES")
        summary = cloudmask_file(
            path,
            mask or None,
            classes or None,
            level=LEVEL_KEYS[self.parameterAsEnum(parameters, "LEVEL", context)],
            buffer_m=self.parameterAsDouble(parameters, "BUFFER", context),
            scale=self.parameterAsDouble(parameters, "SCALE", context) or None,
            monitor=self.monitor(feedback),
        )
        feedback.pushInfo(
            f"{summary['detector']}: {100 * summary['cloud_fraction']:.1f} % cloud, "
            f"{100 * summary['shadow_fraction']:.1f} % cloud shadow; mask {100 * summary['valid_fraction']:.1f} % "
            "valid" + (f" (buffer {summary['buffer_px']} px)" if summary["buffer_px"] else "")
        )
        if classes:
            style_output_on_load(context, classes, CLASSES)
        return {
            "MASK": mask,
            "CLASSES": classes,
            "VALID_FRACTION": summary["valid_fraction"],
            "CLOUD_FRACTION": summary["cloud_fraction"],
            "SHADOW_FRACTION": summary["shadow_fraction"],
            "DETECTOR": summary["detector"],
        }
