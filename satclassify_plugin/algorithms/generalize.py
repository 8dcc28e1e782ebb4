"""satclassify:generalize - a class raster -> the same classes with no patch below a minimum mapping unit, and
optionally its polygons (GeoPackage: value, code, name, area_ha), styled with the class colours on load."""

import os

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
)

from .. import compat
from ..core.contract.errors import SatClassifyError
from .base import SatClassifyAlgorithm
from .layers import gdal_raster_source, gpkg_output
from .styles import style_output_on_load, style_polygons_on_load


class GeneralizeAlgorithm(SatClassifyAlgorithm):
    ALGORITHM_ID = "generalize"
    DISPLAY_NAME = "Generalize class raster (minimum mapping unit)"
    GROUP = "Classification"
    GROUP_ID = "classification"
    TAGS = (
        "generalize,generalise,sieve,minimum mapping unit,mmu,polygonize,vectorize,clc,corine,land cover,"
        "map,polygons,smooth,majority"
    )
    MEMORY_HINT = (
        "gdal.SieveFilter and gdal.Polygonize work on the whole band at once (a patch may span the raster), "
        "keeping a table per patch: generalise a smaller part of the raster (clip it first), or a "
        "raster with fewer patches (a larger MMU does not help: the input's patches count)"
    )
    CONNECTIVITY_OPTIONS = ["4 (patches join along pixel edges)", "8 (edges and corners)"]
    HELP = (
        "Turns a class raster (the prediction of <i>Classify</i>, or rasterized CLC) into a map generalised to a "
        "minimum mapping unit (MMU), as CORINE Land Cover is (25 ha): every patch of one class smaller than the "
        "MMU is merged into its largest neighbouring patch. Optionally also writes the patches as polygons.<br>"
        "<b>MMU</b>: in hectares; converted to pixels from the raster's pixel size (e.g. 25 ha = 2500 pixels of "
        "10 m). The raster must be in a projected CRS (metres, feet): in degrees pixel areas differ with the "
        "latitude, and the tool refuses with the fix (reproject with Raster > Projections > Warp, nearest "
        "neighbour).<br>"
        "<b>Connectivity</b>: 4 = pixels touching by an edge form a patch (GDAL's default, one polygon per patch); "
        "8 = also by a corner, so a diagonal line of pixels is one patch and survives a larger MMU. The polygons "
        "use the same rule.<br>"
        "<b>How</b>: GDAL's sieve filter, run with a growing threshold (2, 4, 8, ... pixels, then the MMU): GDAL "
        "merges a small patch only into a larger neighbour, so one pass at the MMU would leave speckle standing. "
        "A patch below the MMU with no labelled neighbour (an island in nodata, or cut by the raster edge) "
        "becomes nodata (the log says how many and their area). Nodata stays nodata; the colour table and class "
        "names are kept.<br>"
        "<b>Outputs</b>: OUTPUT, the generalised class raster (GeoTIFF); POLYGONS (optional, GeoPackage), one "
        "polygon per patch with the fields value, code (the CLC code where the names are CLC's), name, area_ha; "
        "no polygon is smaller than the MMU. Loaded by the tool, both are styled with the class colours, and their "
        "legends list only the classes present with their area in ha and %.<br>"
        "<b>Memory</b>: GDAL's sieve and polygonize work on the whole band (they cannot be tiled), keeping a table "
        "per patch: memory grows with the number of patches of the input. Clip a very large raster into parts "
        "first."
    )

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Class raster"))
        self.addParameter(
            QgsProcessingParameterNumber("MMU", "Minimum mapping unit (ha)", compat.NUMBER_DOUBLE, 25.0, False, 0.0)
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                "CONNECTIVITY", "Pixel connectivity", options=self.CONNECTIVITY_OPTIONS, defaultValue=0
            )
        )
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Generalised classes"))
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                "POLYGONS",
                "Generalised polygons (GeoPackage)",
                compat.SOURCE_VECTOR_POLYGON,
                optional=True,
                createByDefault=True,
            )
        )
        self.addOutput(QgsProcessingOutputNumber("MMU_PIXELS", "MMU in pixels"))
        self.addOutput(QgsProcessingOutputNumber("POLYGON_COUNT", "Number of polygons"))

    def run_tool(self, parameters, context, feedback):
        from ..core.maps.generalize import generalize

        source = gdal_raster_source(self, parameters, "INPUT", context, "class raster")
        if not source:
            raise SatClassifyError("no class raster given (INPUT)")
        mmu = self.parameterAsDouble(parameters, "MMU", context)  # <= 0 is refused by the core (mmu_pixels)
        connectivity = (4, 8)[self.parameterAsEnum(parameters, "CONNECTIVITY", context)]
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        polygons = gpkg_output(self, parameters, "POLYGONS", context)
        summary = generalize(source, output, mmu, connectivity, polygons=polygons, monitor=self.monitor(feedback))
        present = summary["classes"]
        feedback.pushInfo(
            f"written {os.path.basename(output)}: {len(present)} class(es) present"
            + (
                f"; {os.path.basename(polygons)}: {summary['polygons']} polygon(s), none below {mmu:g} ha"
                if polygons
                else ""
            )
        )
        style_output_on_load(context, output, present)
        if polygons:
            style_polygons_on_load(context, polygons, present)
        return {
            "OUTPUT": output,
            "POLYGONS": polygons,
            "MMU_PIXELS": summary["threshold"],
            "POLYGON_COUNT": summary["polygons"] or 0,
        }
