"""satclassify:fetchsentinel2 - the AOI window of a Sentinel-2 product -> harmonised uint16 stack + SCL mask."""

from qgis.core import (
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterCrs,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from .. import compat
from ._sentinel2 import (
    CLOUD_HELP,
    COMMON_HELP,
    STACK_HELP,
    Sentinel2Algorithm,
    add_cloud_parameter,
    add_stack_outputs,
    cloud_mode,
    output_paths,
    report,
    target_epsg,
)
from .base import advanced

INTERVAL_KEYS = ["none", "monthly", "days"]
INTERVAL_OPTIONS = [
    "None (one date: the best of the period)",
    "Monthly (one date per calendar month)",
    "Every INTERVAL_DAYS days",
]
COMPOSITE_KEYS = ["best", "median"]
COMPOSITE_OPTIONS = [
    "Best acquisition (most valid pixels in the AOI by SCL or the cloud detector)",
    "Median of the valid observations",
]
TIMESERIES_HELP = (
    "<b>Time series</b>: INTERVAL monthly or every INTERVAL_DAYS days writes one date per interval of START..END "
    "into one multi-date stack on one grid: band descriptions &lt;band&gt;@&lt;YYYY-MM-DD&gt;, all bands of a date "
    "then its validity band VALID@&lt;date&gt; (1 = valid), date after date. COMPOSITE best takes, per interval, "
    "the overpass with the most valid pixels in the AOI among the CANDIDATES best-ranked ones; median "
    "takes the per-pixel median of their valid observations (dated at the interval's middle day). Validity "
    "follows CLOUD_MASK for every observation (SCL, and/or the cloud detector: L1C is ranked and masked by the "
    "detector). Invalid pixels are 0; intervals without a product are left out. MASK is then 1 where at least "
    "one date is valid.<br>"
)


class FetchSentinel2Algorithm(Sentinel2Algorithm):
    ALGORITHM_ID = "fetchsentinel2"
    DISPLAY_NAME = "Fetch Sentinel-2 stack"
    TAGS = (
        "sentinel-2,sentinel,s2,l2a,l1c,download,fetch,stac,cog,cdse,copernicus,dhus,scl,cloud mask,reflectance,mosaic"
    )
    LIMIT_DEFAULT = 50
    STYLED_OUTPUTS = ("OUTPUT",)  # <name>.qml: natural colour (core.s2.style)
    HELP = (
        "Reads the area of interest of the best Sentinel-2 product (or of the products given in ITEM) into one "
        "analysis-ready 10 m stack plus a validity mask.<br>"
        + COMMON_HELP
        + "<b>Which product</b>: without ITEM, the search is ranked as in <i>Search Sentinel-2 products</i> "
        "and the best date is read; with MOSAIC the other tiles of that overpass are added where the AOI "
        "spans tiles (the best-covering tile first, first valid pixel wins). ITEM: product ids, "
        "comma-separated (e.g. the footprint layer's id or the search's BEST_ITEMS); they are mosaicked "
        "in the order given and the dates are ignored.<br>"
        "With STAC only the blocks of each cloud-optimised GeoTIFF that cover the AOI are transferred (HTTP "
        "range reads); CDSE and DHuS products are downloaded whole into DOWNLOAD_DIR (resumable; a finished, "
        "verified zip is reused) and read in place.<br>" + TIMESERIES_HELP + STACK_HELP + CLOUD_HELP
    )

    def initAlgorithm(self, config=None):
        self.add_aoi_parameters()
        self.addParameter(
            QgsProcessingParameterString(
                "ITEM", "Product id(s), comma-separated (empty = the best of the search)", optional=True
            )
        )
        self.add_search_parameters(limit_advanced=True)
        self.addParameter(QgsProcessingParameterString("BANDS", "Bands", defaultValue="B02,B03,B04,B08"))
        self.addParameter(
            QgsProcessingParameterBoolean("MOSAIC", "Mosaic the tiles of the same overpass", defaultValue=True)
        )
        self.addParameter(
            QgsProcessingParameterCrs("TARGET_CRS", "Target CRS (empty = the product's UTM zone)", optional=True)
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                "INTERVAL", "Time series: one date per interval", options=INTERVAL_OPTIONS, defaultValue=0
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "INTERVAL_DAYS", "Interval length in days (INTERVAL = days)", compat.NUMBER_INTEGER, 30, False, 1, 366
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                "COMPOSITE", "Time series: date of an interval", options=COMPOSITE_OPTIONS, defaultValue=0
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterNumber(
                    "CANDIDATES",
                    "Time series: overpasses compared (best) or combined (median) per interval",
                    compat.NUMBER_INTEGER,
                    4,
                    False,
                    1,
                    50,
                )
            )
        )
        self.add_service_parameters()
        self.addParameter(
            advanced(
                QgsProcessingParameterFile(
                    "DOWNLOAD_DIR",
                    "Download folder for CDSE/DHuS products (empty = ~/.satclassify/downloads)",
                    behavior=compat.FILE_BEHAVIOR_FOLDER,
                    optional=True,
                )
            )
        )
        add_cloud_parameter(self)
        add_stack_outputs(self)
        self.addOutput(QgsProcessingOutputString("DATES", "Dates of the stack (comma-separated)"))

    def run_tool(self, parameters, context, feedback):
        import re

        from ..core.s2.products import parse_bands
        from ..core.s2.sources import fetch

        bands = parse_bands(self.parameterAsString(parameters, "BANDS", context))
        ids = [i for i in re.split(r"[\s,;]+", self.parameterAsString(parameters, "ITEM", context)) if i]
        q = self.query(parameters, context, feedback, ids=ids)
        out, mask = output_paths(self, parameters, context)
        epsg = target_epsg(self, parameters, context)
        workdir = self.parameterAsFile(parameters, "DOWNLOAD_DIR", context) or ""
        src, http = self.source(parameters, context, feedback)
        interval = INTERVAL_KEYS[self.parameterAsEnum(parameters, "INTERVAL", context)]
        if interval != "none":
            from ..core.s2.timeseries import fetch_timeseries

            feedback.pushInfo(
                f"searching {q.product} from {q.start} to {q.end}, cloud cover <= {q.max_cloud:g} %, "
                f"one date per {'month' if interval == 'monthly' else 'interval'}"
            )
            summary = self.redacted(
                http,
                fetch_timeseries,
                src,
                q,
                bands,
                out,
                mask,
                interval=interval,
                days=self.parameterAsInt(parameters, "INTERVAL_DAYS", context),
                composite=COMPOSITE_KEYS[self.parameterAsEnum(parameters, "COMPOSITE", context)],
                target_epsg=epsg,
                mosaic=self.parameterAsBool(parameters, "MOSAIC", context),
                workdir=workdir,
                candidates=self.parameterAsInt(parameters, "CANDIDATES", context),
                clouds=cloud_mode(self, parameters, context),
            )
            res = report(feedback, summary, summary["descriptions"], out, mask, context)
            res.update({"DATE": summary["dates"][0], "DATES": ",".join(summary["dates"])})
            return res
        if ids:
            feedback.pushInfo(f"reading product(s) {', '.join(ids)}")
        else:
            feedback.pushInfo(f"searching {q.product} from {q.start} to {q.end}, cloud cover <= {q.max_cloud:g} %")
        summary = self.redacted(
            http,
            fetch,
            src,
            q,
            bands,
            out,
            mask,
            target_epsg=epsg,
            mosaic=self.parameterAsBool(parameters, "MOSAIC", context),
            workdir=workdir,
            clouds=cloud_mode(self, parameters, context),
        )
        res = report(feedback, summary, bands, out, mask, context)
        res["DATES"] = res["DATE"]
        return res
