"""satclassify:fetchsentinel2 - the AOI window of a Sentinel-2 product -> harmonised uint16 stack + SCL mask."""
import os

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterCrs,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from .. import compat
from ..core.contract.errors import SatClassifyError
from ..core.contract.paths import style_sidecar
from ._sentinel2 import COMMON_HELP, Sentinel2Algorithm
from .base import advanced, refuse_degree_pixels, style_stack_on_load, target_crs
from .cloudmask import CLOUD_HELP, add_cloud_parameter, cloud_mode, note_multidate

STACK_HELP = (
    "<b>Bands</b>: ESA names, comma-separated (default B02,B03,B04,B08; also B01 B05 B06 B07 B8A B09 B11 B12, "
    "B10 in L1C, SCL in L2A). 10 m bands are copied pixel for pixel; 20 m and 60 m bands are resampled to "
    "the 10 m grid bilinearly (nodata excluded); SCL with nearest neighbour.<br>"
    "<b>Output</b>: one uint16 GeoTIFF (tiled, DEFLATE), band descriptions = band names, nodata 0, harmonised "
    "to the pre-04.00 scale: products with processing baseline >= 04.00 get their BOA_ADD_OFFSET (-1000) "
    "added, so reflectance = DN / 10000 for every product.<br>"
    "<b>Mask</b>: uint8, 1 = valid, 0 = invalid (SCL nodata, saturated/defective, cloud shadow, cloud medium "
    "and high probability, thin cirrus, snow/ice, or any requested band at nodata). L1C has no SCL: the cloud "
    "detector masks its clouds and cloud shadows (CLOUD_MASK).<br>"
    "<b>CRS</b>: TARGET_CRS, default the product's UTM zone; the output grid is 10 m, aligned to multiples "
    "of 10 m.<br>"
    "<b>Style</b>: the stack opens in natural colour (B04/B03/B02, each band stretched between the 2 % and 98 % "
    "points of its cumulative histogram, nodata left out): a QGIS style <i>&lt;name&gt;.qml</i> is written beside "
    "the .tif (QGIS loads it whenever the file is opened; an existing .qml that SatClassify did not write is never "
    "replaced: the tool refuses). Loaded by the tool, the layer also has the style <i>colour infrared</i> "
    "(B08/B04/B03): right-click the layer > Styles.<br>")


INTERVAL_KEYS = ["none", "monthly", "days"]
INTERVAL_OPTIONS = ["None (one date: the best of the period)", "Monthly (one date per calendar month)",
                    "Every INTERVAL_DAYS days"]
COMPOSITE_KEYS = ["best", "median"]
COMPOSITE_OPTIONS = ["Best acquisition (most valid pixels in the AOI by SCL)",
                     "Median of the valid observations"]
TIMESERIES_HELP = (
    "<b>Time series</b>: INTERVAL monthly or every INTERVAL_DAYS days writes one date per interval of START..END "
    "into one multi-date stack on one grid: band descriptions &lt;band&gt;@&lt;YYYY-MM-DD&gt;, all bands of a date "
    "then its validity band VALID@&lt;date&gt; (1 = valid), date after date. COMPOSITE best takes, per interval, "
    "the overpass with the most valid pixels in the AOI by SCL among the CANDIDATES best-ranked ones; median "
    "takes the per-pixel median of their valid observations (dated at the interval's middle day). Invalid pixels "
    "are 0; intervals without a product are left out. MASK is then 1 where at least one date is valid.<br>")

def output_paths(alg, parameters, context, mask=True):
    out = alg.parameterAsOutputLayer(parameters, "OUTPUT", context)
    if not out:
        raise SatClassifyError("no output file given (OUTPUT)")
    mask_path = None
    if mask and parameters.get("MASK") not in (None, ""):
        mask_path = alg.parameterAsOutputLayer(parameters, "MASK", context) or None
    for name, p in (("OUTPUT", out), ("MASK", mask_path)):
        if p and os.path.splitext(p)[1].lower() not in (".tif", ".tiff"):
            raise SatClassifyError(f"{name} must be a GeoTIFF (.tif), not '{os.path.basename(p)}'")
    if mask_path and os.path.abspath(mask_path) == os.path.abspath(out):
        raise SatClassifyError("MASK and OUTPUT are the same file: give the mask another name")
    return out, mask_path


def target_epsg(alg, parameters, context):
    """EPSG code of TARGET_CRS; None when empty (the product's UTM zone). Unknown codes and geographic CRSs
    (the stack's 10 m pixels would be 10 degrees wide) are refused with the fix."""
    crs = target_crs(alg, parameters, "TARGET_CRS", context)
    if crs is None:
        return None
    refuse_degree_pixels(crs, 10.0, "TARGET_CRS")
    auth = crs.authid()
    if not auth.upper().startswith("EPSG:") or not auth[5:].isdigit():
        raise SatClassifyError("TARGET_CRS must be an EPSG coordinate reference system, not "
                               f"{auth or crs.description()}")
    return int(auth[5:])


def add_stack_outputs(alg):
    alg.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Sentinel-2 stack"))
    alg.addParameter(QgsProcessingParameterRasterDestination("MASK", "Validity mask (SCL or cloud detector)",
                                                             optional=True, createByDefault=True))
    alg.addOutput(QgsProcessingOutputString("ITEMS", "Products read"))
    alg.addOutput(QgsProcessingOutputString("DATE", "Acquisition date"))
    alg.addOutput(QgsProcessingOutputNumber("VALID_FRACTION", "Fraction of valid pixels"))


def report(feedback, summary, bands, out, mask, context=None):
    offs = summary.get("offsets") or {}
    for s in summary["scenes"]:
        feedback.pushInfo(f"{s.id}: baseline {s.baseline or 'unknown'}, DN offset {offs.get(s.id, 0)}")
    feedback.pushInfo(f"written {os.path.basename(out)}: {summary['width']} x {summary['height']} pixels, "
                      f"{len(bands)} band(s) {','.join(bands)}, EPSG:{summary['epsg']}"
                      + (f"; mask {os.path.basename(mask)}: {100.0 * summary['valid_fraction']:.1f} % valid"
                         if mask else ""))
    styles = summary.get("styles") or {}
    if styles:
        feedback.pushInfo(f"style {os.path.basename(style_sidecar(out))} written beside the stack: opens in "
                          f"{' / '.join(styles)} (Layers panel: right-click > Styles)")
    elif "styles" in summary:
        feedback.pushInfo("no natural-colour style: the stack lacks one of B04, B03, B02")
    if context is not None:
        style_stack_on_load(context, out, styles)
    scenes = summary["scenes"]
    return {"OUTPUT": out, "MASK": mask, "ITEMS": ",".join(s.id for s in scenes),
            "DATE": scenes[0].date if scenes else "", "VALID_FRACTION": float(summary["valid_fraction"])}


class FetchSentinel2Algorithm(Sentinel2Algorithm):
    ALGORITHM_ID = "fetchsentinel2"
    DISPLAY_NAME = "Fetch Sentinel-2 stack"
    TAGS = ("sentinel-2,sentinel,s2,l2a,l1c,download,fetch,stac,cog,cdse,copernicus,dhus,scl,cloud mask,"
            "reflectance,mosaic")
    LIMIT_DEFAULT = 50
    STYLED_OUTPUTS = ("OUTPUT",)  # <name>.qml: natural colour (core.s2.style)
    HELP = (
        "Reads the area of interest of the best Sentinel-2 product (or of the products given in ITEM) into one "
        "analysis-ready 10 m stack plus a validity mask.<br>" + COMMON_HELP +
        "<b>Which product</b>: without ITEM, the search is ranked as in <i>Search Sentinel-2 products</i> "
        "and the best date is read; with MOSAIC the other tiles of that overpass are added where the AOI "
        "spans tiles (the best-covering tile first, first valid pixel wins). ITEM: product ids, "
        "comma-separated (e.g. the footprint layer's id or the search's BEST_ITEMS); they are mosaicked "
        "in the order given and the dates are ignored.<br>"
        "With STAC only the blocks of each cloud-optimised GeoTIFF that cover the AOI are transferred (HTTP "
        "range reads); CDSE and DHuS products are downloaded whole into DOWNLOAD_DIR (resumable; a finished, "
        "verified zip is reused) and read in place.<br>" + TIMESERIES_HELP + STACK_HELP + CLOUD_HELP)

    def initAlgorithm(self, config=None):
        self.add_aoi_parameters()
        self.addParameter(QgsProcessingParameterString(
            "ITEM", "Product id(s), comma-separated (empty = the best of the search)", optional=True))
        self.add_search_parameters(limit_advanced=True)
        self.addParameter(QgsProcessingParameterString("BANDS", "Bands", defaultValue="B02,B03,B04,B08"))
        self.addParameter(QgsProcessingParameterBoolean("MOSAIC", "Mosaic the tiles of the same overpass",
                                                        defaultValue=True))
        self.addParameter(QgsProcessingParameterCrs("TARGET_CRS", "Target CRS (empty = the product's UTM zone)",
                                                    optional=True))
        self.addParameter(QgsProcessingParameterEnum("INTERVAL", "Time series: one date per interval",
                                                     options=INTERVAL_OPTIONS, defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber("INTERVAL_DAYS", "Interval length in days (INTERVAL = days)",
                                                       compat.NUMBER_INTEGER, 30, False, 1, 366))
        self.addParameter(QgsProcessingParameterEnum("COMPOSITE", "Time series: date of an interval",
                                                     options=COMPOSITE_OPTIONS, defaultValue=0))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            "CANDIDATES", "Time series: overpasses compared (best) or combined (median) per interval",
            compat.NUMBER_INTEGER, 4, False, 1, 50)))
        self.add_service_parameters()
        self.addParameter(advanced(QgsProcessingParameterFile(
            "DOWNLOAD_DIR", "Download folder for CDSE/DHuS products (empty = ~/.satclassify/downloads)",
            behavior=compat.FILE_BEHAVIOR_FOLDER, optional=True)))
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
            note_multidate(self, parameters, context, feedback)
            from ..core.s2.timeseries import fetch_timeseries
            feedback.pushInfo(f"searching {q.product} from {q.start} to {q.end}, cloud cover <= {q.max_cloud:g} %, "
                              f"one date per {'month' if interval == 'monthly' else 'interval'}")
            summary = self.redacted(
                http, fetch_timeseries, src, q, bands, out, mask, interval=interval,
                days=self.parameterAsInt(parameters, "INTERVAL_DAYS", context),
                composite=COMPOSITE_KEYS[self.parameterAsEnum(parameters, "COMPOSITE", context)],
                target_epsg=epsg, mosaic=self.parameterAsBool(parameters, "MOSAIC", context), workdir=workdir,
                candidates=self.parameterAsInt(parameters, "CANDIDATES", context))
            res = report(feedback, summary, summary["descriptions"], out, mask, context)
            res.update({"DATE": summary["dates"][0], "DATES": ",".join(summary["dates"])})
            return res
        if ids:
            feedback.pushInfo(f"reading product(s) {', '.join(ids)}")
        else:
            feedback.pushInfo(f"searching {q.product} from {q.start} to {q.end}, cloud cover <= {q.max_cloud:g} %")
        summary = self.redacted(http, fetch, src, q, bands, out, mask, target_epsg=epsg,
                                mosaic=self.parameterAsBool(parameters, "MOSAIC", context), workdir=workdir,
                                clouds=cloud_mode(self, parameters, context))
        res = report(feedback, summary, bands, out, mask, context)
        res["DATES"] = res["DATE"]
        return res
