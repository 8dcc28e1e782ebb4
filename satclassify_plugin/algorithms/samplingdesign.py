"""satclassify:samplingdesign - stratified random reference sample (strata = map classes) for good-practice
accuracy and area estimation (Olofsson et al. 2014)."""

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
)

from .. import compat
from ..core.accuracy.sampling import SamplingOptions
from ..core.contract.errors import SatClassifyError
from .base import SatClassifyAlgorithm
from .layers import gdal_raster_source, gpkg_output

#: the defaults of the tool's parameters are those of the core's options
DEFAULTS = SamplingOptions()


class SamplingDesignAlgorithm(SatClassifyAlgorithm):
    ALGORITHM_ID = "samplingdesign"
    DISPLAY_NAME = "Stratified sampling design (reference points)"
    GROUP = "Classification"
    GROUP_ID = "classification"
    MEMORY_HINT = "use fewer points, or sample a smaller area (crop the map)"
    TAGS = (
        "sampling,stratified,random,reference,accuracy,area estimation,olofsson,good practice,validation,points,"
        "sample size"
    )
    HELP = (
        "Draws a stratified random sample of points from a class raster for the reference labelling that "
        "satclassify:assessaccuracy (REFERENCE_POINTS) turns into accuracies and error-adjusted areas with 95 % "
        "confidence intervals (Olofsson et al. 2014, Remote Sensing of Environment 148, 42-57).<br>"
        "<b>Strata</b> = the map classes; nodata and the IGNORE values are no stratum.<br>"
        "<b>Sample size</b>: METHOD 0 computes the total from a target standard error of overall accuracy and the "
        "expected user's accuracy of each class (EXPECTED_UA, or a CSV <i>value,expected_ua</i>): "
        "n = (sum W<sub>i</sub> S<sub>i</sub> / S(O))<sup>2</sup>, "
        "S<sub>i</sub> = sqrt(U<sub>i</sub>(1-U<sub>i</sub>)) "
        "(eq. 13); METHOD 1 takes TOTAL points; both allocate proportionally to the mapped area with at least "
        "MIN_PER_CLASS points per class (the paper's recommendation), or equally. METHOD 2 reads the points per "
        "class from a CSV <i>value,count</i>. A class with fewer pixels than its points gets all its pixels.<br>"
        "<b>Output</b>: a GeoPackage of points at the pixel centres, in the raster's CRS, with <i>point_id</i>, "
        "<i>stratum</i> (class value), <i>stratum_name</i>, an empty integer <i>reference</i> field to fill in, "
        "<i>row</i> and <i>col</i>; the strata (pixels, hectares, weights, points) and the design are stored in the "
        "layer's metadata and in the JSON side file. The same SEED gives the same points. The raster is read block "
        "by block in two passes, so memory stays flat on a full Sentinel-2 tile."
    )

    METHODS = [
        "target standard error of overall accuracy",
        "total number of points",
        "points per class from a table (CSV value,count)",
    ]
    METHOD_KEYS = ["target_se", "total", "counts"]
    ALLOCATIONS = ["proportional to area, with a minimum per class", "equal per class"]
    ALLOCATION_KEYS = ["proportional", "equal"]

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Class raster (strata = its classes)"))
        self.addParameter(
            QgsProcessingParameterString(
                "IGNORE",
                "Class values that are no stratum (comma-separated; nodata is always left out)",
                defaultValue=DEFAULTS.ignore,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                "METHOD", "Sample size", options=self.METHODS, defaultValue=self.METHOD_KEYS.index(DEFAULTS.method)
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "TARGET_SE",
                "Target standard error of overall accuracy",
                compat.NUMBER_DOUBLE,
                DEFAULTS.target_se,
                False,
                0.0001,
                0.5,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "EXPECTED_UA",
                "Expected user's accuracy of each class (0-1)",
                compat.NUMBER_DOUBLE,
                DEFAULTS.expected_ua,
                False,
                0.01,
                0.99,
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                "EXPECTED_UA_TABLE",
                "Expected user's accuracy per class (CSV value,expected_ua)",
                extension="csv",
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "TOTAL", "Total number of points (sample size 'total')", compat.NUMBER_INTEGER, DEFAULTS.total, False, 1
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                "ALLOCATION",
                "Allocation to the classes",
                options=self.ALLOCATIONS,
                defaultValue=self.ALLOCATION_KEYS.index(DEFAULTS.rule),
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "MIN_PER_CLASS", "Minimum points per class", compat.NUMBER_INTEGER, DEFAULTS.minimum, False, 0
            )
        )
        self.addParameter(
            QgsProcessingParameterFile("COUNTS", "Points per class (CSV value,count)", extension="csv", optional=True)
        )
        self.addParameter(
            QgsProcessingParameterNumber("SEED", "Random seed", compat.NUMBER_INTEGER, DEFAULTS.seed, False, 0)
        )
        names = QgsProcessingParameterFile(
            "NAMES", "Class names table (CSV value,name,color)", extension="csv", optional=True
        )
        self.add_advanced(names)
        self.addParameter(
            QgsProcessingParameterVectorDestination("OUTPUT", "Sample points", compat.SOURCE_VECTOR_POINT)
        )
        self.addParameter(
            QgsProcessingParameterFileDestination("OUTPUT_STRATA", "Strata and design (JSON)", "JSON files (*.json)")
        )
        self.addOutput(QgsProcessingOutputNumber("POINTS", "Number of sample points"))

    def run_tool(self, parameters, context, feedback):
        from ..core.accuracy.sampling import sampling_design

        source = gdal_raster_source(self, parameters, "INPUT", context, "class raster")
        if not source:
            raise SatClassifyError("no class raster given (INPUT)")
        out = gpkg_output(self, parameters, "OUTPUT", context, "the sample points are written as a GeoPackage")
        strata = self.parameterAsFileOutput(parameters, "OUTPUT_STRATA", context)
        options = SamplingOptions(
            ignore=self.parameterAsString(parameters, "IGNORE", context),
            method=self.METHOD_KEYS[self.parameterAsEnum(parameters, "METHOD", context)],
            target_se=self.parameterAsDouble(parameters, "TARGET_SE", context),
            expected_ua=self.parameterAsDouble(parameters, "EXPECTED_UA", context),
            expected_ua_table=self.parameterAsFile(parameters, "EXPECTED_UA_TABLE", context) or None,
            total=self.parameterAsInt(parameters, "TOTAL", context),
            rule=self.ALLOCATION_KEYS[self.parameterAsEnum(parameters, "ALLOCATION", context)],
            minimum=self.parameterAsInt(parameters, "MIN_PER_CLASS", context),
            counts_table=self.parameterAsFile(parameters, "COUNTS", context) or None,
            seed=self.parameterAsInt(parameters, "SEED", context),
            names=self.parameterAsFile(parameters, "NAMES", context) or None,
        )
        meta = sampling_design(source, out, strata or None, options, monitor=self.monitor(feedback))
        return {"OUTPUT": out, "OUTPUT_STRATA": strata, "POINTS": meta["design"]["total_points"]}
