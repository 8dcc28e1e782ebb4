"""satclassify:landcoverchange - two class rasters -> from-to raster, change matrix (ha), change polygons with a
minimum mapping unit, and map update candidates where a confident model disagrees with the map."""

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
)

from .. import compat
from ..core.contract.errors import SatClassifyError
from .base import SatClassifyAlgorithm
from .layers import gdal_raster_source, gpkg_output
from .styles import style_output_on_load


class LandCoverChangeAlgorithm(SatClassifyAlgorithm):
    ALGORITHM_ID = "landcoverchange"
    DISPLAY_NAME = "Land-cover change (from-to)"
    GROUP = "Classification"
    GROUP_ID = "classification"
    MEMORY_HINT = "compare a smaller area (crop both maps)"
    TAGS = (
        "change,change detection,from-to,transition,map update,clc change,mmu,minimum mapping unit,two dates,confidence"
    )
    HELP = (
        "Compares two class rasters (two dates, or a map such as rasterized CLC and a model's prediction) pixel by "
        "pixel. The SECOND raster (and CONFIDENCE) are warped with nearest neighbour onto the FIRST raster's grid "
        "when the grids differ. A pixel is compared when it holds a class in both maps (not nodata, not IGNORE).<br>"
        "<b>From-to raster</b>: a compact category index 1..K over the (from, to) pairs that occur, with a legend "
        "'from -> to' and colours (changed pixels in the colour of the new class, unchanged pixels as their own "
        "category in a paler shade); 0 = not compared.<br>"
        "<b>Change matrix</b> in hectares (CSV: rows = first map, columns = second map, with totals; JSON with the "
        "pixel counts and the category table).<br>"
        "<b>Change polygons</b> (GeoPackage): patches smaller than the minimum mapping unit MMU (default 5 ha, as "
        "the CLC change layers) are merged into their largest neighbour (GDAL sieve, 4-connected), then every "
        "changed category is polygonized with from/to values and names and area_ha; each polygon is >= MMU.<br>"
        "<b>Map update candidates</b> (with CONFIDENCE, in percent 0-100 as satclassify:classify writes it; a "
        "float raster with values 0..1 is read as fractions): polygons where the second map (the model) disagrees "
        "with the first (the map) and the confidence is >= THRESHOLD, with the same MMU."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("FIRST", "First class raster (earlier date, or the map)"))
        self.addParameter(
            QgsProcessingParameterRasterLayer("SECOND", "Second class raster (later date, or the model's prediction)")
        )
        self.addParameter(
            QgsProcessingParameterString(
                "IGNORE",
                "Class values to leave out (comma-separated; nodata is always left out)",
                defaultValue="0",
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "MMU", "Minimum mapping unit of the polygons (ha)", compat.NUMBER_DOUBLE, 5.0, False, 0.0
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterLayer(
                "CONFIDENCE", "Confidence of the second raster (%, e.g. classify's CONFIDENCE)", optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "THRESHOLD",
                "Confidence threshold for update candidates (%)",
                compat.NUMBER_DOUBLE,
                80.0,
                False,
                0.0,
                100.0,
            )
        )
        names = QgsProcessingParameterFile(
            "NAMES", "Class names table (CSV value,name,color)", extension="csv", optional=True
        )
        self.add_advanced(names)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "From-to change raster"))
        self.addParameter(
            QgsProcessingParameterFileDestination("OUTPUT_MATRIX", "Change matrix (ha)", "CSV files (*.csv)")
        )
        self.addParameter(
            QgsProcessingParameterFileDestination("OUTPUT_JSON", "Change summary (JSON)", "JSON files (*.json)")
        )
        self.addParameter(
            QgsProcessingParameterVectorDestination("OUTPUT_POLYGONS", "Change polygons", compat.SOURCE_VECTOR_POLYGON)
        )
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                "OUTPUT_CANDIDATES",
                "Map update candidates",
                compat.SOURCE_VECTOR_POLYGON,
                optional=True,
                createByDefault=False,
            )
        )
        self.addOutput(QgsProcessingOutputNumber("CHANGED_HA", "Changed area (ha)"))
        self.addOutput(QgsProcessingOutputNumber("COMPARED_HA", "Compared area (ha)"))

    def run_tool(self, parameters, context, feedback):
        from ..core.accuracy.change import land_cover_change

        first = gdal_raster_source(self, parameters, "FIRST", context, "first class raster")
        second = gdal_raster_source(self, parameters, "SECOND", context, "second class raster")
        if not first or not second:
            raise SatClassifyError("give both class rasters (FIRST and SECOND)")
        confidence = gdal_raster_source(self, parameters, "CONFIDENCE", context, "confidence raster")
        outs = {k: self.parameterAsFileOutput(parameters, k, context) or None for k in ("OUTPUT_MATRIX", "OUTPUT_JSON")}
        value = parameters.get("OUTPUT")
        outs["OUTPUT"] = self.parameterAsOutputLayer(parameters, "OUTPUT", context) if value not in (None, "") else None
        for k in ("OUTPUT_POLYGONS", "OUTPUT_CANDIDATES"):
            outs[k] = (
                gpkg_output(self, parameters, k, context, "the polygons are written as a GeoPackage")
                if parameters.get(k) not in (None, "")
                else None
            )
        if outs["OUTPUT_CANDIDATES"] and not confidence:
            raise SatClassifyError(
                "OUTPUT_CANDIDATES (map update candidates) needs a CONFIDENCE raster: give the "
                "confidence of the second map (e.g. the CONFIDENCE output of satclassify:classify) "
                "or leave the candidates output empty"
            )
        summary = land_cover_change(
            first,
            second,
            out_raster=outs["OUTPUT"],
            out_matrix=outs["OUTPUT_MATRIX"],
            out_json=outs["OUTPUT_JSON"],
            out_polygons=outs["OUTPUT_POLYGONS"],
            mmu_ha=self.parameterAsDouble(parameters, "MMU", context),
            confidence=confidence,
            threshold=self.parameterAsDouble(parameters, "THRESHOLD", context),
            out_candidates=outs["OUTPUT_CANDIDATES"],
            ignore=self.parameterAsString(parameters, "IGNORE", context),
            names=self.parameterAsFile(parameters, "NAMES", context) or None,
            monitor=self.monitor(feedback),
        )
        if outs["OUTPUT"]:
            style_output_on_load(context, outs["OUTPUT"], summary["categories"])
        return {**outs, "CHANGED_HA": summary["changed_ha"], "COMPARED_HA": summary["compared_ha"]}
