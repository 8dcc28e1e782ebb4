"""satclassify:searchsentinel2 - Sentinel-2 products over an area of interest -> ranked footprint layer."""

import json

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterNumber,
)
from qgis.PyQt.QtCore import QDate

from .. import compat
from ..core.contract.errors import SatClassifyError
from ._sentinel2 import COMMON_HELP, WGS84, Sentinel2Algorithm
from .base import advanced


def footprint_geometry(footprint):
    """GeoJSON (EPSG:4326) -> QgsGeometry (empty when unknown)."""
    if not footprint:
        return QgsGeometry()
    try:
        from osgeo import ogr

        g = ogr.CreateGeometryFromJson(json.dumps(footprint))
        return QgsGeometry.fromWkt(g.ExportToWkt()) if g is not None else QgsGeometry()
    except Exception:
        return QgsGeometry()


FIELDS = [
    ("id", compat.FIELD_STRING),
    ("datetime", compat.FIELD_STRING),
    ("date", compat.FIELD_DATE),
    ("platform", compat.FIELD_STRING),
    ("tile_id", compat.FIELD_STRING),
    ("cloud", compat.FIELD_DOUBLE),
    ("baseline", compat.FIELD_STRING),
    ("aoi_cover", compat.FIELD_DOUBLE),
    ("nodata", compat.FIELD_DOUBLE),
    ("source", compat.FIELD_STRING),
    ("product", compat.FIELD_STRING),
    ("rank", compat.FIELD_INT),
]


class SearchSentinel2Algorithm(Sentinel2Algorithm):
    ALGORITHM_ID = "searchsentinel2"
    DISPLAY_NAME = "Search Sentinel-2 products"
    TAGS = "sentinel-2,sentinel,s2,l2a,l1c,search,stac,cdse,copernicus,dhus,footprints,cloud,catalogue"
    HELP = (
        "Searches Sentinel-2 L2A (or L1C) products over an area of interest and writes their footprints, "
        "ranked best first.<br>"
        + COMMON_HELP
        + "<b>Output</b>: one polygon (WGS 84) per product with id, datetime (UTC), date, platform, tile_id, "
        "cloud (%), baseline (processing baseline), aoi_cover (% of the AOI inside the footprint), nodata "
        "(% of nodata pixels, where the catalogue says it), source, product and rank.<br>"
        "<b>Rank</b> (1 = best): a score of low cloud cover (weight 0.5), large AOI overlap (0.3) and few "
        "nodata pixels (0.2). With DATES > 1 the first DATES picks are also spread over the period (each next "
        "pick adds half the time gap to the nearest pick already made, relative to the period).<br>"
        "BEST_ITEMS lists the best product and the other tiles of the same overpass (comma-separated): give "
        "it to <i>Fetch Sentinel-2 stack</i> as ITEM, e.g. in a model."
    )

    def initAlgorithm(self, config=None):
        self.add_aoi_parameters()
        self.add_search_parameters()
        self.addParameter(
            advanced(
                QgsProcessingParameterNumber(
                    "DATES",
                    "Dates wanted (rank spreads the first picks over the period)",
                    compat.NUMBER_INTEGER,
                    1,
                    False,
                    1,
                    100,
                )
            )
        )
        self.add_service_parameters()
        self.addParameter(
            QgsProcessingParameterFeatureSink("OUTPUT", "Sentinel-2 footprints", compat.SOURCE_VECTOR_POLYGON)
        )
        self.addOutput(QgsProcessingOutputNumber("COUNT", "Number of products found"))
        self.addOutput(QgsProcessingOutputString("BEST_ITEMS", "Best product and the other tiles of its overpass"))

    def run_tool(self, parameters, context, feedback):
        from ..core.s2.sources import choose_date, search

        q = self.query(parameters, context, feedback)
        src, http = self.source(parameters, context, feedback)
        feedback.pushInfo(f"searching {q.product} from {q.start} to {q.end}, cloud cover <= {q.max_cloud:g} %")
        scenes = self.redacted(http, search, src, q, n_dates=self.parameterAsInt(parameters, "DATES", context))
        fields = QgsFields()
        for name, kind in FIELDS:
            fields.append(QgsField(name, kind))
        sink, dest = self.parameterAsSink(
            parameters, "OUTPUT", context, fields, compat.WKB_MULTIPOLYGON, QgsCoordinateReferenceSystem(WGS84)
        )
        if sink is None:
            raise SatClassifyError("cannot create the output layer (OUTPUT)")
        for s in scenes:
            if feedback.isCanceled():
                break
            f = QgsFeature(fields)
            g = footprint_geometry(s.footprint)
            if not g.isEmpty():
                g.convertToMultiType()
                f.setGeometry(g)
            date = QDate.fromString(s.date, "yyyy-MM-dd")
            f.setAttributes(
                [
                    s.id,
                    s.datetime,
                    date if date.isValid() else None,
                    s.platform,
                    s.tile_id,
                    s.cloud,
                    s.baseline,
                    s.aoi_cover,
                    s.nodata,
                    s.source,
                    s.product_type,
                    s.rank,
                ]
            )
            sink.addFeature(f, compat.FAST_INSERT)
            feedback.pushInfo(
                f"{s.rank:3d}. {s.id}  {s.datetime}  cloud {_pct(s.cloud)}  AOI {_pct(s.aoi_cover)}  "
                f"nodata {_pct(s.nodata)}  baseline {s.baseline or '?'}"
            )
        best = choose_date(scenes, mosaic=True)
        feedback.pushInfo(f"{len(scenes)} product(s); best overpass: {', '.join(s.id for s in best)}")
        return {"OUTPUT": dest, "COUNT": len(scenes), "BEST_ITEMS": ",".join(s.id for s in best)}


def _pct(v):
    return "?" if v is None else f"{v:.1f} %"
