"""satclassify:importsafe - a local Sentinel-2 SAFE product (folder or zip) -> harmonised stack + SCL mask."""

from qgis.core import (
    QgsProcessingOutputString,
    QgsProcessingParameterCrs,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterString,
)

from .. import compat
from ..core.contract.errors import SatClassifyError
from ._sentinel2 import (
    CLOUD_HELP,
    STACK_HELP,
    add_cloud_parameter,
    add_stack_outputs,
    aoi_wkt,
    cloud_mode,
    output_paths,
    report,
    target_epsg,
)
from .base import SatClassifyAlgorithm


class ImportSafeAlgorithm(SatClassifyAlgorithm):
    ALGORITHM_ID = "importsafe"
    DISPLAY_NAME = "Import Sentinel-2 SAFE product"
    GROUP = "Sentinel-2"
    GROUP_ID = "sentinel2"
    STYLED_OUTPUTS = ("OUTPUT",)  # <name>.qml: natural colour (core.s2.style)
    TAGS = "sentinel-2,sentinel,s2,safe,zip,l2a,l1c,import,jp2,scl,cloud mask,reflectance"
    HELP = (
        "Turns a Sentinel-2 L2A or L1C product in SAFE format into the same stack and mask as <i>Fetch "
        "Sentinel-2 stack</i>.<br>"
        "<b>Input</b>: the product's .zip, its .SAFE folder (type or paste the folder path) or the "
        "MTD_MSIL2A.xml / MTD_MSIL1C.xml inside it. A zip is read in place through GDAL's /vsizip/ (nothing is "
        "extracted); an archive with entries that would land outside the product folder (zip-slip: '..', "
        "absolute paths, links) is rejected. The processing baseline and BOA_ADD_OFFSET (RADIO_ADD_OFFSET for "
        "L1C) come from the product metadata.<br>"
        "<b>Extent</b>: optional crop (any CRS); default the whole tile.<br>"
        "<b>More products</b> (MORE_INPUTS): other products of the same day are mosaicked with INPUT (INPUT's "
        "pixels win); products of other days make a multi-date stack, one date per day on INPUT's grid: band "
        "descriptions &lt;band&gt;@&lt;YYYY-MM-DD&gt; then VALID@&lt;date&gt; (masked as CLOUD_MASK says, "
        "invalid pixels 0), "
        "date after date; MASK is then 1 where at least one date is valid.<br>" + STACK_HELP + CLOUD_HELP
    )

    def initAlgorithm(self, config=None):
        self.addParameter(
            QgsProcessingParameterFile(
                "INPUT",
                "SAFE product (.zip, .SAFE folder or its MTD_MSIL*.xml)",
                fileFilter="Sentinel-2 SAFE (*.zip *.ZIP *.xml);;All files (*)",
            )
        )
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                "MORE_INPUTS",
                "More SAFE products (same day: mosaic; other days: a multi-date stack)",
                compat.SOURCE_FILE,
                optional=True,
            )
        )
        self.addParameter(QgsProcessingParameterString("BANDS", "Bands", defaultValue="B02,B03,B04,B08"))
        self.addParameter(
            QgsProcessingParameterExtent("EXTENT", "Crop to extent (empty = whole product)", optional=True)
        )
        self.addParameter(
            QgsProcessingParameterCrs("TARGET_CRS", "Target CRS (empty = the product's UTM zone)", optional=True)
        )
        add_cloud_parameter(self)
        add_stack_outputs(self)
        self.addOutput(QgsProcessingOutputString("DATES", "Dates of the stack (comma-separated)"))

    def run_tool(self, parameters, context, feedback):
        from ..core.s2.products import parse_bands
        from ..core.s2.stack import import_safe

        path = self.parameterAsFile(parameters, "INPUT", context)
        if not path:
            raise SatClassifyError("no SAFE product given (INPUT)")
        bands = parse_bands(self.parameterAsString(parameters, "BANDS", context))
        out, mask = output_paths(self, parameters, context)
        aoi = aoi_wkt(self, parameters, context, feedback, required=False)
        mon = self.monitor(feedback)
        more = [p for p in (self.parameterAsFileList(parameters, "MORE_INPUTS", context) or []) if p]
        epsg = target_epsg(self, parameters, context)
        if more:
            from ..core.s2.stack import open_safe
            from ..core.s2.timeseries import import_series

            scenes = [open_safe(p) for p in [path] + more]
            if len({s.date for s in scenes}) > 1:
                summary = import_series(
                    scenes,
                    bands,
                    out,
                    mask,
                    aoi_wkt=aoi,
                    target_epsg=epsg,
                    monitor=mon,
                    clouds=cloud_mode(self, parameters, context),
                )
                res = report(feedback, summary, summary["descriptions"], out, mask, context)
                res.update({"DATE": summary["dates"][0], "DATES": ",".join(summary["dates"])})
                return res
        summary = import_safe(
            [path] + more,
            out,
            mask,
            bands,
            aoi_wkt=aoi,
            target_epsg=epsg,
            monitor=mon,
            clouds=cloud_mode(self, parameters, context),
        )
        res = report(feedback, summary, bands, out, mask, context)
        res["DATES"] = res["DATE"]
        return res
