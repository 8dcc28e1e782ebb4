"""satclassify:assessaccuracy - class raster vs reference raster: confusion matrix, OA, kappa, per-class
precision/recall/F1/IoU, HTML report."""
from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from .. import compat
from ..core.contract.errors import SatClassifyError
from .base import SatClassifyAlgorithm


class AssessAccuracyAlgorithm(SatClassifyAlgorithm):
    ALGORITHM_ID = "assessaccuracy"
    MEMORY_HINT = "use a smaller SCALE, or compare a smaller area (crop both maps)"
    DISPLAY_NAME = "Assess classification accuracy"
    GROUP = "Classification"
    GROUP_ID = "classification"
    TAGS = ("accuracy,confusion matrix,kappa,overall accuracy,f1,iou,validation,reference,clc,corine,"
            "producer's accuracy,user's accuracy")
    HELP = (
        "Compares a class raster with a reference class raster (e.g. rasterized CORINE Land Cover) and writes a "
        "confusion matrix (CSV; rows = reference, columns = classified, with totals), the metrics (JSON: overall "
        "accuracy, Cohen's kappa, per-class precision = user's accuracy, recall = producer's accuracy, F1, IoU, "
        "support; macro F1 and mean IoU) and an HTML report with the legend, the tables and a heat map "
        "(its PNG is also written beside the report). OA, KAPPA, MIOU and MACRO_F1 are numeric outputs for "
        "models.<br>"
        "<b>Grids</b>: the reference (and the mask) are warped with nearest neighbour onto the classified "
        "raster's grid when they differ (CRS, resolution or extent); pixels outside the reference are left out.<br>"
        "<b>Mask</b>: optional raster; nonzero = compare, 0 or nodata = leave out.<br>"
        "<b>Ignore</b>: comma-separated class values left out in both maps (default 0); each raster's nodata "
        "value is always left out.<br>"
        "<b>Reclassify table</b>: optional CSV with the header <i>map,from,to</i>; map is classified, reference "
        "or both; it maps the classes of either map to a common nomenclature (values of a map without a row are "
        "left out and reported; to = 0 drops a class). <b>Names table</b>: optional CSV <i>value,name,color</i> "
        "for the compared classes; by default names and colours come from the classified raster's categories "
        "and colour table (CLC tables with LEVEL), else 'class N'.<br>"
        "<b>CLC level</b>: compare at level 1 or 2 maps holding level-3 CLC values, either grid codes 1..44 or "
        "codes 111..523 (detected from the values); applied to both maps or to one of them.<br>"
        "<b>Scale</b>: integer k > 1 compares the mode of each k x k block of each map (ignored pixels do not "
        "vote; ties go to the smaller class value), e.g. 3 compares 10 m maps at 30 m.<br>"
        "Rasters are read block by block, so memory stays flat on a full Sentinel-2 tile.")

    LEVEL_OPTIONS = ["none (as stored)", "CLC level 1", "CLC level 2"]
    LEVEL_VALUES = [None, 1, 2]
    LEVEL_MAPS = ["both", "reference", "classified"]

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("CLASSIFIED", "Classified raster"))
        self.addParameter(QgsProcessingParameterRasterLayer("REFERENCE", "Reference raster (e.g. rasterized CLC)"))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "MASK", "Mask raster (nonzero = compare)", optional=True))
        self.addParameter(QgsProcessingParameterString(
            "IGNORE", "Class values to leave out (comma-separated; nodata is always left out)", defaultValue="0",
            optional=True))
        self.addParameter(QgsProcessingParameterFile(
            "RECLASSIFY", "Reclassify table (CSV map,from,to)", extension="csv", optional=True))
        self.addParameter(QgsProcessingParameterFile(
            "NAMES", "Class names table (CSV value,name,color)", extension="csv", optional=True))
        self.addParameter(QgsProcessingParameterEnum(
            "LEVEL", "Compare at CLC level", options=self.LEVEL_OPTIONS, defaultValue=0))
        adv = [QgsProcessingParameterEnum("LEVEL_MAPS", "Apply the CLC level to", options=self.LEVEL_MAPS,
                                          defaultValue=0),
               QgsProcessingParameterNumber("SCALE", "Compare at k x coarser resolution (mode of k x k blocks)",
                                            compat.NUMBER_INTEGER, 1)]
        for p in adv:
            p.setFlags(p.flags() | compat.PARAM_FLAG_ADVANCED)
            self.addParameter(p)
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_MATRIX", "Confusion matrix", "CSV files (*.csv)"))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_METRICS", "Metrics", "JSON files (*.json)"))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_REPORT", "Accuracy report", "HTML files (*.html *.htm)"))
        self.addOutput(QgsProcessingOutputNumber("OA", "Overall accuracy (0-1)"))
        self.addOutput(QgsProcessingOutputNumber("KAPPA", "Cohen's kappa"))
        self.addOutput(QgsProcessingOutputNumber("MIOU", "Mean IoU"))
        self.addOutput(QgsProcessingOutputNumber("MACRO_F1", "Macro F1"))

    def _raster_path(self, parameters, key, context, what):
        if parameters.get(key) in (None, ""):
            return None
        layer = self.parameterAsRasterLayer(parameters, key, context)
        if layer is None:  # not loadable: let the core name the problem (missing file, unreadable...)
            return self.parameterAsString(parameters, key, context) or None
        if layer.providerType() != "gdal":
            raise SatClassifyError(
                f"layer '{layer.name()}' is a {layer.providerType()} layer; the accuracy tool reads files GDAL can "
                "open: save the layer as a GeoTIFF first")
        return layer.source()

    def run_tool(self, parameters, context, feedback):
        from ..core.accuracy.assess import assess, write_outputs

        classified = self._raster_path(parameters, "CLASSIFIED", context, "classified")
        reference = self._raster_path(parameters, "REFERENCE", context, "reference")
        if not classified:
            raise SatClassifyError("no classified raster given (CLASSIFIED)")
        if not reference:
            raise SatClassifyError("no reference raster given (REFERENCE)")
        mask = self._raster_path(parameters, "MASK", context, "mask")
        level = self.LEVEL_VALUES[self.parameterAsEnum(parameters, "LEVEL", context)]
        level_maps = self.LEVEL_MAPS[self.parameterAsEnum(parameters, "LEVEL_MAPS", context)]
        outs = {k: self.parameterAsFileOutput(parameters, k, context)
                for k in ("OUTPUT_MATRIX", "OUTPUT_METRICS", "OUTPUT_REPORT")}

        result = assess(
            classified, reference, mask=mask, ignore=self.parameterAsString(parameters, "IGNORE", context),
            reclassify=self.parameterAsFile(parameters, "RECLASSIFY", context) or None,
            names=self.parameterAsFile(parameters, "NAMES", context) or None, level=level, level_maps=level_maps,
            scale=self.parameterAsDouble(parameters, "SCALE", context),
            **self.monitor(feedback, end=0.95).callbacks())
        m = result.metrics
        write_outputs(result, outs["OUTPUT_MATRIX"] or None, outs["OUTPUT_METRICS"] or None,
                      outs["OUTPUT_REPORT"] or None)
        feedback.setProgress(100)
        feedback.pushInfo(
            f"{m['pixels']} {'blocks' if m['inputs']['scale'] > 1 else 'pixels'} compared over "
            f"{len(m['classes'])} classes: OA {m['overall_accuracy']:.4f}, kappa {m['kappa']:.4f}, "
            f"macro F1 {m['macro_f1']:.4f}, mIoU {m['miou']:.4f}")
        return {"OUTPUT_MATRIX": outs["OUTPUT_MATRIX"], "OUTPUT_METRICS": outs["OUTPUT_METRICS"],
                "OUTPUT_REPORT": outs["OUTPUT_REPORT"], "OA": m["overall_accuracy"], "KAPPA": m["kappa"],
                "MIOU": m["miou"], "MACRO_F1": m["macro_f1"]}
