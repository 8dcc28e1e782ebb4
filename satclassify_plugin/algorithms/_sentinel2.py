"""Parameters and plumbing the Sentinel-2 tools share (area of interest, dates, source, credentials from a
QGIS authentication configuration, QGIS's proxy, feedback wiring): :class:`Sentinel2Algorithm` (not a tool itself:
the provider skips modules whose name starts with "_"), and for every Sentinel-2 tool (searches or not)
:func:`aoi_wkt`, the stack outputs (:func:`add_stack_outputs`, :func:`output_paths`, :func:`target_epsg`,
:func:`report`, :data:`STACK_HELP`).
"""

import datetime as _dt
import os

from qgis.core import (
    QgsApplication,
    QgsAuthMethodConfig,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterAuthConfig,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from .. import compat
from ..core.contract.errors import SatClassifyError
from ..core.contract.paths import style_sidecar
from ._network import qgis_proxy
from .base import SatClassifyAlgorithm, advanced, refuse_degree_pixels, target_crs
from .styles import style_stack_on_load

SOURCE_KEYS = ["STAC", "CDSE", "DHuS"]
SOURCE_OPTIONS = [
    "STAC API (Earth Search, no login)",
    "Copernicus Data Space Ecosystem (CDSE, login to download)",
    "DHuS mirror (sentinelsat, login)",
]
PRODUCT_KEYS = ["L2A", "L1C"]
PRODUCT_OPTIONS = ["L2A (surface reflectance)", "L1C (top of atmosphere)"]
WGS84 = "EPSG:4326"

COMMON_HELP = (
    "<b>Area of interest</b>: EXTENT (any CRS; it is reprojected to WGS 84) or a polygon layer AOI (its "
    "features, or the selected ones, are merged; AOI wins over EXTENT).<br>"
    "<b>Dates</b>: START and END as YYYY-MM-DD, both inclusive (UTC days). Empty END = today, empty START = "
    "30 days before END.<br>"
    "<b>Source</b>: STAC (default: the Earth Search catalogue, collection sentinel-2-c1-l2a, no login; "
    "bands are read as cloud-optimised GeoTIFFs, only the AOI window), CDSE (Copernicus Data Space "
    "Ecosystem OData catalogue; whole SAFE zips are downloaded, resumably, MD5-checked) or a DHuS mirror "
    "(through sentinelsat). Logins: searching CDSE needs none (its catalogue is public), downloading from "
    "CDSE needs AUTHCFG; a DHuS mirror needs AUTHCFG for both. AUTHCFG is a QGIS authentication "
    "configuration of type Basic (user name and password; the password is never logged or written). URL "
    "(advanced) replaces the service address: a mirror, a private STAC API or a test server.<br>"
    "<b>Timeouts</b>: by default every request must be answered completely within 120 s (tries and waits "
    "included), and a transfer (download, band read) fails when less than 1 kB/s arrives for 60 s; a slow "
    "or overloaded server then ends the run with a message naming it instead of a hang (Cancel works at "
    "any time). The environment variable SATCLASSIFY_HTTP_TIMEOUT (seconds; Settings > Options > System > "
    "Environment) changes both: the request limit, and half of it for transfers.<br>"
    "<b>Proxy</b>: QGIS's proxy (Settings > Options > Network) applies to every search, download and band "
    "read; with QGIS's proxy off, the variables HTTPS_PROXY / HTTP_PROXY / NO_PROXY do (if set).<br>"
)

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
    "(B08/B04/B03): right-click the layer > Styles.<br>"
)

_UNREAD = object()  # the proxy settings were not read yet (prepareAlgorithm reads them)


class Sentinel2Algorithm(SatClassifyAlgorithm):
    """Parameters and helpers shared by searchsentinel2 and fetchsentinel2 (no ALGORITHM_ID: not a tool)."""

    GROUP = "Sentinel-2"
    GROUP_ID = "sentinel2"
    MAX_CLOUD_DEFAULT = 30.0
    LIMIT_DEFAULT = 20

    def __init__(self):
        super().__init__()
        self._credentials = None
        self._auth_error = None
        self._proxy = _UNREAD

    # -- parameters ----------------------------------------------------------------------------------
    def add_aoi_parameters(self):
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Area of interest (extent)", optional=True))
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                "AOI",
                "Area of interest (polygon layer, replaces the extent)",
                [compat.SOURCE_VECTOR_POLYGON],
                optional=True,
            )
        )

    def add_search_parameters(self, limit_advanced=False):
        self.addParameter(
            QgsProcessingParameterString(
                "START", "Start date (YYYY-MM-DD; empty = 30 days before the end)", optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterString("END", "End date (YYYY-MM-DD, inclusive; empty = today)", optional=True)
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "MAX_CLOUD", "Maximum cloud cover (%)", compat.NUMBER_DOUBLE, self.MAX_CLOUD_DEFAULT, False, 0.0, 100.0
            )
        )
        self.addParameter(QgsProcessingParameterEnum("PRODUCT", "Product", options=PRODUCT_OPTIONS, defaultValue=0))
        self.addParameter(QgsProcessingParameterEnum("SOURCE", "Source", options=SOURCE_OPTIONS, defaultValue=0))
        self.addParameter(
            QgsProcessingParameterAuthConfig(
                "AUTHCFG", "Login (authentication configuration, Basic: CDSE downloads, DHuS)", optional=True
            )
        )
        limit = QgsProcessingParameterNumber(
            "LIMIT", "Maximum number of products", compat.NUMBER_INTEGER, self.LIMIT_DEFAULT, False, 1, 1000
        )
        self.addParameter(advanced(limit) if limit_advanced else limit)

    def add_service_parameters(self):
        for p in (
            QgsProcessingParameterString("URL", "Service URL (empty = the source's default)", optional=True),
            QgsProcessingParameterString(
                "COLLECTION",
                "STAC collection (empty = sentinel-2-c1-l2a for L2A, sentinel-2-l1c for L1C)",
                optional=True,
            ),
            QgsProcessingParameterNumber(
                "RETRIES", "Retries on connection errors, HTTP 429 and 5xx", compat.NUMBER_INTEGER, 3, False, 0, 10
            ),
        ):
            self.addParameter(advanced(p))

    # -- credentials (read in the main thread: the auth manager may ask for the master password) --------
    def prepareAlgorithm(self, parameters, context, feedback):
        self._credentials, self._auth_error, self._proxy = None, None, _UNREAD
        try:
            self._proxy = qgis_proxy()
        except QgsProcessingException as e:  # reported by run_tool
            self._auth_error = str(e)
        authcfg = self.parameterAsString(parameters, "AUTHCFG", context) if "AUTHCFG" in parameters else ""
        if authcfg:
            try:
                self._credentials = self.load_credentials(authcfg)
            except QgsProcessingException as e:  # reported by run_tool, where the message reaches the user intact
                self._auth_error = str(e)
        return True

    @staticmethod
    def load_credentials(authcfg):
        from ..core.s2.sources import Credentials

        am = QgsApplication.authManager()
        cfg = QgsAuthMethodConfig()
        ok = am.loadAuthenticationConfig(authcfg, cfg, True)
        if isinstance(ok, tuple):  # some PyQGIS builds return (ok, config)
            ok, cfg = ok[0], ok[1] if len(ok) > 1 else cfg
        if not ok or not cfg.isValid(True):
            raise QgsProcessingException(
                f"cannot load the authentication configuration '{authcfg}': check that it exists (Settings > "
                "Options > Authentication) and that the master password was entered"
            )
        if cfg.method() != "Basic":
            raise QgsProcessingException(
                f"the authentication configuration '{authcfg}' is of type {cfg.method()}: CDSE and DHuS need a "
                "Basic configuration (user name and password)"
            )
        user, password = cfg.config("username"), cfg.config("password")
        if not user or not password:
            raise QgsProcessingException(
                f"the authentication configuration '{authcfg}' has no user name or no password"
            )
        return Credentials(user, password)

    # -- inputs --------------------------------------------------------------------------------------
    def aoi_wkt(self, parameters, context, feedback, required=True):
        """The area of interest as WKT in EPSG:4326 (lon/lat), or None when none is given and not required."""
        return aoi_wkt(self, parameters, context, feedback, required)

    def dates(self, parameters, context):
        from ..core.s2.products import parse_datetime

        start = self.parameterAsString(parameters, "START", context).strip()
        end = self.parameterAsString(parameters, "END", context).strip()
        for name, v in (("START", start), ("END", end)):
            if v and parse_datetime(v) is None:
                raise SatClassifyError(f"{name} '{v}' is not a date: write it as YYYY-MM-DD (e.g. 2023-06-01)")
        if not end:
            end = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
        if not start:
            start = (parse_datetime(end) - _dt.timedelta(days=30)).strftime("%Y-%m-%d")
        return start, end

    def query(self, parameters, context, feedback, ids=(), aoi_required=True):
        from ..core.s2.sources import SearchQuery

        start, end = self.dates(parameters, context)
        product = PRODUCT_KEYS[self.parameterAsEnum(parameters, "PRODUCT", context)]
        return SearchQuery(
            aoi_wkt=self.aoi_wkt(parameters, context, feedback, aoi_required) or "",
            start=start,
            end=end,
            max_cloud=self.parameterAsDouble(parameters, "MAX_CLOUD", context),
            product=product,
            limit=self.parameterAsInt(parameters, "LIMIT", context),
            collection=self.parameterAsString(parameters, "COLLECTION", context).strip(),
            ids=list(ids),
        )

    def source(self, parameters, context, feedback):
        """(source, http client) with the feedback wired in; messages pass through the client's redaction."""
        from ..core.net import HttpClient
        from ..core.s2.sources import get_source

        key = SOURCE_KEYS[self.parameterAsEnum(parameters, "SOURCE", context)]
        creds = self._credentials
        if self._auth_error:
            raise SatClassifyError(self._auth_error)
        if "AUTHCFG" in parameters and self.parameterAsString(parameters, "AUTHCFG", context) and creds is None:
            # run without prepare (e.g. a direct processAlgorithm call)
            creds = self.load_credentials(self.parameterAsString(parameters, "AUTHCFG", context))
        holder = {}

        def info(message):
            http = holder.get("http")
            feedback.pushInfo(http.redact(message) if http is not None else message)

        monitor = self.monitor(feedback, info=info)
        proxy = qgis_proxy() if self._proxy is _UNREAD else self._proxy
        http = HttpClient(retries=self.parameterAsInt(parameters, "RETRIES", context), monitor=monitor, proxy=proxy)
        holder["http"] = http
        if http.proxy:
            feedback.pushInfo(f"network: through the proxy {http.proxy.describe()} ({http.proxy.origin})")
        if creds:
            http.add_secret(creds.password)
            if key == "STAC":
                feedback.pushInfo("the STAC source needs no login: AUTHCFG is not used")
                creds = None
        url = self.parameterAsString(parameters, "URL", context).strip()
        try:
            src = get_source(key, url, credentials=creds, http=http, monitor=monitor)
        except SatClassifyError as e:
            raise SatClassifyError(http.redact(str(e)))
        feedback.pushInfo(f"source: {src.name} at {src.url}")
        return src, http

    @staticmethod
    def redacted(http, fn, *args, **kw):
        """Run ``fn``; any error leaves with the client's secrets (password, token) masked."""
        from ..core.net import Canceled

        try:
            try:
                return fn(*args, **kw)
            finally:
                http.session.close()
        except Canceled as e:
            raise SatClassifyError(str(e))
        except SatClassifyError as e:
            raise SatClassifyError(http.redact(str(e)))
        except QgsProcessingException:
            raise
        except Exception as e:
            raise SatClassifyError(http.redact(f"unexpected error ({type(e).__name__}): {e}"))


def output_paths(alg, parameters, context, mask=True):
    """OUTPUT and MASK (None when not given). The base class checked both before the tool runs
    (``SatClassifyAlgorithm.check_output_paths``: GeoTIFF names, not one file, not an input, not the style)."""
    out = alg.parameterAsOutputLayer(parameters, "OUTPUT", context)
    if not out:
        raise SatClassifyError("no output file given (OUTPUT)")
    mask_path = None
    if mask and parameters.get("MASK") not in (None, ""):
        mask_path = alg.parameterAsOutputLayer(parameters, "MASK", context) or None
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
        raise SatClassifyError(
            f"TARGET_CRS must be an EPSG coordinate reference system, not {auth or crs.description()}"
        )
    return int(auth[5:])


def add_stack_outputs(alg):
    alg.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Sentinel-2 stack"))
    alg.addParameter(
        QgsProcessingParameterRasterDestination(
            "MASK", "Validity mask (SCL or cloud detector)", optional=True, createByDefault=True
        )
    )
    alg.addOutput(QgsProcessingOutputString("ITEMS", "Products read"))
    alg.addOutput(QgsProcessingOutputString("DATE", "Acquisition date"))
    alg.addOutput(QgsProcessingOutputNumber("VALID_FRACTION", "Fraction of valid pixels"))


def report(feedback, summary, bands, out, mask, context=None):
    offs = summary.get("offsets") or {}
    for s in summary["scenes"]:
        feedback.pushInfo(f"{s.id}: baseline {s.baseline or 'unknown'}, DN offset {offs.get(s.id, 0)}")
    feedback.pushInfo(
        f"written {os.path.basename(out)}: {summary['width']} x {summary['height']} pixels, "
        f"{len(bands)} band(s) {','.join(bands)}, EPSG:{summary['epsg']}"
        + (f"; mask {os.path.basename(mask)}: {100.0 * summary['valid_fraction']:.1f} % valid" if mask else "")
    )
    styles = summary.get("styles") or {}
    if styles:
        feedback.pushInfo(
            f"style {os.path.basename(style_sidecar(out))} written beside the stack: opens in "
            f"{' / '.join(styles)} (Layers panel: right-click > Styles)"
        )
    elif "styles" in summary:
        feedback.pushInfo("no natural-colour style: the stack lacks one of B04, B03, B02")
    if context is not None:
        style_stack_on_load(context, out, styles)
    scenes = summary["scenes"]
    return {
        "OUTPUT": out,
        "MASK": mask,
        "ITEMS": ",".join(s.id for s in scenes),
        "DATE": scenes[0].date if scenes else "",
        "VALID_FRACTION": float(summary["valid_fraction"]),
    }


def aoi_wkt(alg, parameters, context, feedback, required=True):
    """The area of interest as WKT in EPSG:4326 (lon/lat), or None when none is given and not required."""
    wgs84 = QgsCoordinateReferenceSystem(WGS84)
    geom = None
    if parameters.get("AOI") not in (None, ""):
        src = alg.parameterAsSource(parameters, "AOI", context)
        if src is None:
            raise SatClassifyError("the AOI layer cannot be read")
        ct = QgsCoordinateTransform(src.sourceCrs(), wgs84, context.transformContext())
        geoms = []
        for f in src.getFeatures():
            g = f.geometry()
            if g is None or g.isEmpty():
                continue
            g = QgsGeometry(g)
            if not g.isGeosValid():  # e.g. a self-intersecting ("bow-tie") polygon
                fixed = g.makeValid()
                if fixed.isEmpty() or fixed.area() <= 0:
                    raise SatClassifyError(
                        f"the AOI polygon of feature {f.id()} is invalid (self-intersecting) and has no area "
                        "once repaired: fix it (Processing > Fix geometries) or draw the area again"
                    )
                feedback.pushInfo(
                    f"the AOI polygon of feature {f.id()} was invalid (self-intersecting): repaired before use"
                )
                g = fixed
            if src.sourceCrs().isValid():
                g.transform(ct)
            geoms.append(g)
        if not geoms:
            raise SatClassifyError("the AOI layer has no polygon (or none selected)")
        geom = QgsGeometry.unaryUnion(geoms)
        if parameters.get("EXTENT") not in (None, ""):
            feedback.pushInfo("AOI layer given: EXTENT is ignored")
    elif parameters.get("EXTENT") not in (None, ""):
        crs = alg.parameterAsExtentCrs(parameters, "EXTENT", context)
        rect = alg.parameterAsExtent(parameters, "EXTENT", context)
        if rect.isNull() or rect.isEmpty():
            raise SatClassifyError("the extent (EXTENT) is empty")
        geom = QgsGeometry.fromRect(rect)
        if not crs.isValid():
            feedback.pushInfo("the extent has no CRS: taken as WGS 84 longitudes/latitudes (EPSG:4326)")
        elif crs != wgs84:
            geom = geom.densifyByCount(8)
            geom.transform(QgsCoordinateTransform(crs, wgs84, context.transformContext()))
    if geom is None or geom.isEmpty():
        if required:
            raise SatClassifyError("no area of interest: give EXTENT or a polygon layer (AOI)")
        return None
    return geom.asWkt(8)


# --- the CLOUD_MASK parameter of the stack tools (fetchsentinel2, importsafe); satclassify:cloudmask is the tool

CLOUD_MODE_OPTIONS = [
    "SCL where the product has it (L2A), the cloud detector otherwise (L1C)",
    "The cloud detector for every product (L2A: instead of SCL)",
    "SCL and the cloud detector (L2A: invalid by either)",
    "No detector (SCL for L2A, only nodata for L1C)",
]
CLOUD_HELP = (
    "<b>Cloud mask</b> (CLOUD_MASK): L2A products are masked by their SCL; L1C products have none, so the "
    "cloud and cloud-shadow detector ukis-csmask (DLR; needs B02 B03 B04 B08, uses B11 B12 when read; they are "
    "read for it even when not in BANDS) masks them: invalid = cloud or cloud shadow. Without the package an L1C "
    "mask covers nodata only and the log says what to install. The detector may also replace or complement SCL. "
    "A multi-date stack applies the same choice to each date's VALID band. See <i>Cloud and shadow mask</i> "
    "for its accuracy and limits.<br>"
)


def add_cloud_parameter(alg):
    """The CLOUD_MASK choice of the stack tools (fetchsentinel2, importsafe)."""
    alg.addParameter(QgsProcessingParameterEnum("CLOUD_MASK", "Cloud mask", options=CLOUD_MODE_OPTIONS, defaultValue=0))


def cloud_mode(alg, parameters, context):
    """The core's mode name (core.s2.clouds.MODES) of CLOUD_MASK; "auto" when the tool has no such parameter."""
    from ..core.s2.clouds import MODES

    if parameters.get("CLOUD_MASK") in (None, ""):
        return "auto"
    return MODES[alg.parameterAsEnum(parameters, "CLOUD_MASK", context)]
