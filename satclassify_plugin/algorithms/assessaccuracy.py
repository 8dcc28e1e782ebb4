"""satclassify:assessaccuracy - class raster vs reference raster (confusion matrix, OA, kappa, per-class
precision/recall/F1/IoU, HTML report), or vs a stratified reference sample of points (the good-practice estimator
of Olofsson et al. 2014: accuracies and error-adjusted areas with 95 % confidence intervals)."""

from qgis.core import (
    QgsCoordinateTransform,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from .. import compat
from ..core.contract.errors import SatClassifyError
from .base import SatClassifyAlgorithm
from .layers import gdal_raster_source


class AssessAccuracyAlgorithm(SatClassifyAlgorithm):
    ALGORITHM_ID = "assessaccuracy"
    MEMORY_HINT = "use a smaller SCALE, or compare a smaller area (crop both maps)"
    DISPLAY_NAME = "Assess classification accuracy"
    GROUP = "Classification"
    GROUP_ID = "classification"
    TAGS = (
        "accuracy,confusion matrix,kappa,overall accuracy,f1,iou,validation,reference,clc,corine,"
        "producer's accuracy,user's accuracy"
    )
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
        "Rasters are read block by block, so memory stays flat on a full Sentinel-2 tile.<br>"
        "<b>Reference sample</b> (instead of a reference raster): REFERENCE_POINTS, a point layer from a "
        "stratified random sample of the classified map (satclassify:samplingdesign), and REFERENCE_FIELD, its "
        "reference class field. The strata are the map classes at the points, their areas the mapped pixel counts; "
        "the tool then reports the stratified estimator of Olofsson et al. (2014, Remote Sensing of Environment "
        "148, 42-57): the error matrix in estimated area proportions, overall / user's / producer's accuracy with "
        "95 % confidence intervals and, per class, the mapped and the error-adjusted area with its 95 % confidence "
        "interval in hectares (metrics JSON 'area_estimates', report). OA and the other numbers are then the "
        "sample estimates. Points outside the map, on nodata or masked out, and points with an empty, ignored or "
        "unknown reference class are left out, counted and listed in the log and the JSON ('sample'); a "
        "'stratum' attribute that disagrees with the map is reported. Give REFERENCE or REFERENCE_POINTS, not "
        "both; SCALE stays 1 with points."
    )

    LEVEL_OPTIONS = ["none (as stored)", "CLC level 1", "CLC level 2"]
    LEVEL_VALUES = [None, 1, 2]
    LEVEL_MAPS = ["both", "reference", "classified"]

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("CLASSIFIED", "Classified raster"))
        self.addParameter(
            QgsProcessingParameterRasterLayer(
                "REFERENCE",
                "Reference raster (e.g. rasterized CLC), or leave empty and give reference points",
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                "REFERENCE_POINTS",
                "Reference sample points (instead of a reference raster)",
                [compat.SOURCE_VECTOR_POINT],
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                "REFERENCE_FIELD",
                "Reference class field of the points",
                parentLayerParameterName="REFERENCE_POINTS",
                optional=True,
            )
        )
        self.addParameter(QgsProcessingParameterRasterLayer("MASK", "Mask raster (nonzero = compare)", optional=True))
        self.addParameter(
            QgsProcessingParameterString(
                "IGNORE",
                "Class values to leave out (comma-separated; nodata is always left out)",
                defaultValue="0",
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                "RECLASSIFY", "Reclassify table (CSV map,from,to)", extension="csv", optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                "NAMES", "Class names table (CSV value,name,color)", extension="csv", optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum("LEVEL", "Compare at CLC level", options=self.LEVEL_OPTIONS, defaultValue=0)
        )
        adv = [
            QgsProcessingParameterEnum("LEVEL_MAPS", "Apply the CLC level to", options=self.LEVEL_MAPS, defaultValue=0),
            QgsProcessingParameterNumber(
                "SCALE", "Compare at k x coarser resolution (mode of k x k blocks)", compat.NUMBER_INTEGER, 1
            ),
        ]
        self.add_advanced(*adv)
        self.addParameter(
            QgsProcessingParameterFileDestination("OUTPUT_MATRIX", "Confusion matrix", "CSV files (*.csv)")
        )
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_METRICS", "Metrics", "JSON files (*.json)"))
        self.addParameter(
            QgsProcessingParameterFileDestination("OUTPUT_REPORT", "Accuracy report", "HTML files (*.html *.htm)")
        )
        self.addOutput(QgsProcessingOutputNumber("OA", "Overall accuracy (0-1)"))
        self.addOutput(QgsProcessingOutputNumber("KAPPA", "Cohen's kappa"))
        self.addOutput(QgsProcessingOutputNumber("MIOU", "Mean IoU"))
        self.addOutput(QgsProcessingOutputNumber("MACRO_F1", "Macro F1"))

    def _raster_path(self, parameters, key, context, what):
        return gdal_raster_source(self, parameters, key, context, f"{what} raster")

    def run_tool(self, parameters, context, feedback):
        from ..core.accuracy.assess import assess, write_outputs

        classified = self._raster_path(parameters, "CLASSIFIED", context, "classified")
        reference = self._raster_path(parameters, "REFERENCE", context, "reference")
        if not classified:
            raise SatClassifyError("no classified raster given (CLASSIFIED)")
        has_points = parameters.get("REFERENCE_POINTS") not in (None, "")
        if reference and has_points:
            raise SatClassifyError(
                "both a reference raster (REFERENCE) and reference points (REFERENCE_POINTS) are "
                "given: choose one (points for a stratified sample, the raster for a "
                "pixel-by-pixel comparison) and leave the other empty"
            )
        if not reference and not has_points:
            raise SatClassifyError(
                "no reference given: set REFERENCE (a reference class raster) or REFERENCE_POINTS "
                "with REFERENCE_FIELD (a reference sample, e.g. from satclassify:samplingdesign)"
            )
        mask = self._raster_path(parameters, "MASK", context, "mask")
        # the choices both comparisons share (core.accuracy.plan.MapOptions)
        choices = dict(
            ignore=self.parameterAsString(parameters, "IGNORE", context),
            reclassify=self.parameterAsFile(parameters, "RECLASSIFY", context) or None,
            names=self.parameterAsFile(parameters, "NAMES", context) or None,
            level=self.LEVEL_VALUES[self.parameterAsEnum(parameters, "LEVEL", context)],
            level_maps=self.LEVEL_MAPS[self.parameterAsEnum(parameters, "LEVEL_MAPS", context)],
        )
        outs = {
            k: self.parameterAsFileOutput(parameters, k, context)
            for k in ("OUTPUT_MATRIX", "OUTPUT_METRICS", "OUTPUT_REPORT")
        }

        if has_points:
            return self._run_points(parameters, context, feedback, classified, mask, choices, outs)
        result = assess(
            classified,
            reference,
            mask=mask,
            **choices,
            scale=self.parameterAsDouble(parameters, "SCALE", context),
            monitor=self.monitor(feedback, end=0.95),
        )
        m = result.metrics
        write_outputs(
            result, outs["OUTPUT_MATRIX"] or None, outs["OUTPUT_METRICS"] or None, outs["OUTPUT_REPORT"] or None
        )
        feedback.setProgress(100)
        feedback.pushInfo(
            f"{m['pixels']} {'blocks' if m['inputs']['scale'] > 1 else 'pixels'} compared over "
            f"{len(m['classes'])} classes: OA {m['overall_accuracy']:.4f}, kappa {m['kappa']:.4f}, "
            f"macro F1 {m['macro_f1']:.4f}, mIoU {m['miou']:.4f}"
        )
        return {
            "OUTPUT_MATRIX": outs["OUTPUT_MATRIX"],
            "OUTPUT_METRICS": outs["OUTPUT_METRICS"],
            "OUTPUT_REPORT": outs["OUTPUT_REPORT"],
            "OA": m["overall_accuracy"],
            "KAPPA": m["kappa"],
            "MIOU": m["miou"],
            "MACRO_F1": m["macro_f1"],
        }

    def _reference_points(self, parameters, context, feedback, classified):
        """The points as dicts (x, y in the classified raster's CRS; reference and stratum attributes)."""
        from qgis.core import QgsRasterLayer

        from ..core.accuracy.points import reference_field

        source = self.parameterAsSource(parameters, "REFERENCE_POINTS", context)
        if source is None:
            raise SatClassifyError(f"cannot read the reference points '{parameters.get('REFERENCE_POINTS')}'")
        names = source.fields().names()
        field = reference_field(
            names, self.parameterAsString(parameters, "REFERENCE_FIELD", context), feedback.pushInfo
        )
        crs = QgsRasterLayer(classified, "classified", "gdal").crs()
        transform = None
        if source.sourceCrs().isValid() and crs.isValid() and source.sourceCrs() != crs:
            transform = QgsCoordinateTransform(source.sourceCrs(), crs, context.transformContext())
            feedback.pushInfo(
                f"reference points reprojected from {source.sourceCrs().authid()} to the classified "
                f"raster's CRS {crs.authid()}"
            )
        id_field = "point_id" if "point_id" in names else None
        has_stratum = "stratum" in names
        points = []
        for f in source.getFeatures():
            g = f.geometry()
            x = y = None
            if g is not None and not g.isNull() and not g.isEmpty():
                try:
                    if transform is not None:
                        g.transform(transform)
                    pt = g.vertexAt(0)
                    x, y = pt.x(), pt.y()
                except Exception:  # a point the transform cannot handle lies outside the map
                    x = y = None
            points.append(
                {
                    "x": x,
                    "y": y,
                    "reference": f[field],
                    "stratum": f["stratum"] if has_stratum else None,
                    "id": f[id_field] if id_field else f.id(),
                }
            )
        return points, field, str(parameters.get("REFERENCE_POINTS"))

    def _run_points(self, parameters, context, feedback, classified, mask, choices, outs):
        from ..core.accuracy.assess import write_outputs
        from ..core.accuracy.points import assess_points

        if self.parameterAsDouble(parameters, "SCALE", context) != 1:
            raise SatClassifyError(
                "SCALE compares maps block by block; with REFERENCE_POINTS each point is one "
                "sampling unit: leave SCALE at 1"
            )
        points, field, src = self._reference_points(parameters, context, feedback, classified)
        result = assess_points(
            classified,
            points,
            mask=mask,
            **choices,
            points_source=src,
            reference_field=field,
            monitor=self.monitor(feedback, end=0.95),
        )
        m = result.metrics
        write_outputs(
            result, outs["OUTPUT_MATRIX"] or None, outs["OUTPUT_METRICS"] or None, outs["OUTPUT_REPORT"] or None
        )
        feedback.setProgress(100)
        s = m["sample"]
        feedback.pushInfo(
            f"{s['used']} of {s['points']} reference points used over {len(m['classes'])} classes: OA "
            f"{m['overall_accuracy']:.4f} +- {m['overall_accuracy_ci95']:.4f} (95 % CI, stratified estimator)"
        )
        for a in m["area_estimates"]:
            feedback.pushInfo(
                f"  {a['value']} {a['name']}: mapped {a['mapped_area_ha']:.2f} ha, estimated "
                f"{a['estimated_area_ha']:.2f} +- {a['ci95_ha']:.2f} ha"
            )
        return {
            "OUTPUT_MATRIX": outs["OUTPUT_MATRIX"],
            "OUTPUT_METRICS": outs["OUTPUT_METRICS"],
            "OUTPUT_REPORT": outs["OUTPUT_REPORT"],
            "OA": m["overall_accuracy"],
            "KAPPA": m["kappa"],
            "MIOU": m["miou"],
            "MACRO_F1": m["macro_f1"],
        }
