"""satclassify:generalize through processing.run, the styles it gets on load (only the classes present, with
their area; the band title hidden), its faults, and the print-layout legend of scripts/render_map.py."""

import os
import sys

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsLayerTreeModel,
    QgsPalettedRasterRenderer,
    QgsProcessingException,
    QgsProject,
    QgsVectorLayer,
)

from satclassify_plugin.core import raster
from satclassify_plugin.core.contract import clc
from tests.rasters import make_raster

ALG = "satclassify:generalize"


def class_raster(path, a, epsg=32632, pixel=10.0):
    make_raster(path, a, nodata=0, epsg=epsg, pixel=pixel, band_names=["clc_level1"])
    ds = gdal.Open(str(path), gdal.GA_Update)
    raster.write_class_metadata(ds.GetRasterBand(1), clc.classes(1))
    ds = None
    return str(path)


def scene():
    """60 x 80 px of 10 m: class 1 west, class 3 east, a 4x4 speck of class 5 (0.16 ha) in the west, a nodata
    strip in the north; classes 2 and 4 absent."""
    a = np.ones((60, 80), np.uint8)
    a[:, 40:] = 3
    a[30:34, 10:14] = 5
    a[:5, :] = 0
    return a


def labels(model, layer):
    return [n.data(0) for n in model.layerLegendNodes(QgsProject.instance().layerTreeRoot().findLayer(layer.id()))]


def test_generalize_polygons_no_smaller_than_the_mmu(run_alg, tmp_path):
    src = class_raster(tmp_path / "pred.tif", scene())
    res = run_alg(
        ALG,
        {
            "INPUT": src,
            "MMU": 0.25,
            "CONNECTIVITY": 0,
            "OUTPUT": str(tmp_path / "gen.tif"),
            "POLYGONS": str(tmp_path / "gen.gpkg"),
        },
    )
    assert res["MMU_PIXELS"] == 25 and res["POLYGON_COUNT"] == 2
    g = gdal.Open(res["OUTPUT"]).ReadAsArray()
    assert (g[30:34, 10:14] == 1).all() and (g[:5] == 0).all() and set(np.unique(g)) == {0, 1, 3}
    layer = QgsVectorLayer(res["POLYGONS"], "p", "ogr")
    assert layer.isValid() and layer.crs().authid() == "EPSG:32632"
    assert [f.name() for f in layer.fields()][1:] == ["value", "code", "name", "area_ha"]  # after the fid
    rows = sorted(
        (f["value"], f["code"], f["name"], round(f["area_ha"], 6), round(f.geometry().area() / 1e4, 6))
        for f in layer.getFeatures()
    )
    assert rows == [(1, "1", "Artificial surfaces", 22.0, 22.0), (3, "3", "Forest and semi natural areas", 22.0, 22.0)]
    assert min(r[3] for r in rows) >= 0.25


def test_generalize_loaded_styles_list_present_classes_with_area(plugin, tmp_path):
    import processing

    src = class_raster(tmp_path / "pred.tif", scene())
    # a live model, as the Layers panel's: it builds the legend when the layer arrives, before it is styled
    model = QgsLayerTreeModel(QgsProject.instance().layerTreeRoot())
    res = processing.runAndLoadResults(
        ALG, {"INPUT": src, "MMU": 0.1, "OUTPUT": str(tmp_path / "gen.tif"), "POLYGONS": str(tmp_path / "gen.gpkg")}
    )
    layers = {lyr.source().split("|")[0]: lyr for lyr in QgsProject.instance().mapLayers().values()}
    rl, vl = layers[res["OUTPUT"]], layers[res["POLYGONS"]]
    try:
        r = rl.renderer()
        assert isinstance(r, QgsPalettedRasterRenderer)
        want = [
            "Artificial surfaces \u2013 21.8 ha (49.6 %)",
            "Forest and semi natural areas \u2013 22.0 ha (50.0 %)",
            "Water bodies \u2013 0.16 ha (0.4 %)",
        ]  # the speck (0.16 ha) is above this MMU: kept
        assert [c.label for c in r.classes()] == want
        assert [c.color.name() for c in r.classes()] == [clc.classes(1)[v - 1].color for v in (1, 3, 5)]
        assert labels(model, rl) == want  # the Layers panel: no "Band 1 (Palette)" title, no absent class
        v = vl.renderer()
        assert isinstance(v, QgsCategorizedSymbolRenderer) and v.classAttribute() == "value"
        cats = [(c.value(), c.label(), c.symbol().color().name()) for c in v.categories()]
        assert cats == [(val, lab, clc.classes(1)[val - 1].color) for val, lab in zip((1, 3, 5), want)]
    finally:
        QgsProject.instance().removeMapLayer(rl.id())
        QgsProject.instance().removeMapLayer(vl.id())


def run_error(run_alg, params):
    with pytest.raises(QgsProcessingException) as e:
        run_alg(ALG, params)
    return str(e.value)


def test_generalize_faults(run_alg, tmp_path):
    src = class_raster(tmp_path / "pred.tif", scene())
    out = str(tmp_path / "gen.tif")
    msg = run_error(run_alg, {"INPUT": src, "MMU": 0, "OUTPUT": out})
    assert "MMU must be a positive area in hectares" in msg
    geo = class_raster(tmp_path / "geo.tif", scene(), epsg=4326, pixel=0.0001)
    msg = run_error(run_alg, {"INPUT": geo, "MMU": 1, "OUTPUT": out})
    assert "geographic CRS" in msg and "Raster > Projections > Warp" in msg
    msg = run_error(run_alg, {"INPUT": src, "MMU": 1, "OUTPUT": src})
    assert "is the input INPUT: writing it would destroy the input" in msg
    msg = run_error(run_alg, {"INPUT": src, "MMU": 1, "OUTPUT": out, "POLYGONS": src})
    assert "is the input INPUT" in msg
    msg = run_error(run_alg, {"INPUT": src, "MMU": 1, "OUTPUT": out, "POLYGONS": str(tmp_path / "p.shp")})
    assert "writes a GeoPackage: name the file .gpkg" in msg
    img = make_raster(tmp_path / "img.tif", np.random.default_rng(0).random((10, 10)).astype(np.float32))
    msg = run_error(run_alg, {"INPUT": img, "MMU": 1, "OUTPUT": out})
    assert "Float32, not a class raster" in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "geo.tif",
        "geo.tif.aux.xml",
        "img.tif",
        "pred.tif",
        "pred.tif.aux.xml",
    ]
    assert np.array_equal(gdal.Open(src).ReadAsArray(), scene())  # the input untouched


def test_print_layout_legend_lists_present_classes_under_the_scheme(qgis_app, tmp_path):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "scripts"))
    import render_map

    src = class_raster(tmp_path / "pred.tif", scene())
    layout, legend, layer = render_map.build_layout(src, "Prediction")
    try:
        assert legend.title() == "clc_level1"  # the band description: the class scheme
        assert render_map.legend_labels(legend, layer) == [
            "Artificial surfaces \u2013 21.8 ha (49.6 %)",
            "Forest and semi natural areas \u2013 22.0 ha (50.0 %)",
            "Water bodies \u2013 0.16 ha (0.4 %)",
        ]
    finally:
        QgsProject.instance().removeMapLayer(layer.id())
    png = str(tmp_path / "map.png")
    assert render_map.render(src, png, "Prediction", scheme="CLC level 1") == png and os.path.getsize(png) > 1000


def test_generalize_cancel_leaves_no_output(run_alg, tmp_path):
    from ..sentinel_helpers import LogFeedback

    src = class_raster(tmp_path / "pred.tif", np.random.default_rng(1).integers(1, 4, (300, 300)).astype(np.uint8))
    fb = LogFeedback()
    fb.progressChanged.connect(lambda p: fb.cancel() if p > 10 else None)  # inside GDAL's sieve
    with pytest.raises(QgsProcessingException, match="cancelled"):
        run_alg(
            ALG,
            {"INPUT": src, "MMU": 1, "OUTPUT": str(tmp_path / "gen.tif"), "POLYGONS": str(tmp_path / "gen.gpkg")},
            feedback=fb,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.tif", "pred.tif.aux.xml"]


def test_web_mercator_mmu_and_areas_are_ground_hectares(run_alg, tmp_path):
    """Issue 25 item 7: at 70 N an EPSG:3857 pixel of 10 x 10 map units covers 11.8 m^2: the MMU counts ground
    hectares (0.25 ha = 213 pixels, not 25) and area_ha is the ground area (8.5x smaller than the map units')."""
    import math

    from osgeo import ogr

    y = 6378137.0 * math.log(math.tan(math.pi / 4 + math.radians(70.0) / 2))
    a = scene()
    src = str(tmp_path / "merc.tif")
    make_raster(src, a, nodata=0, epsg=3857, origin=(1000000.0, y), band_names=["clc_level1"])
    ds = gdal.Open(src, gdal.GA_Update)
    raster.write_class_metadata(ds.GetRasterBand(1), clc.classes(1))
    ds = None
    gpkg = str(tmp_path / "gen.gpkg")
    run_alg(ALG, {"INPUT": src, "MMU": 0.25, "CONNECTIVITY": 0, "OUTPUT": str(tmp_path / "gen.tif"), "POLYGONS": gpkg})
    px_m2 = 100.0 * math.cos(math.radians(70.0)) ** 2
    vds = ogr.Open(gpkg)
    rows = [(f.GetField("value"), f.GetField("area_ha"), f.GetGeometryRef().GetArea()) for f in vds.GetLayer(0)]
    vds = None
    assert all(ha == pytest.approx(area / 100.0 * px_m2 / 1e4, rel=0.01) for _v, ha, area in rows)
    assert all(ha >= 0.25 for _v, ha, _a in rows)
    # the 4 x 4 speck (0.019 ha on the ground) is gone; the 55 x 40 px halves (2.6 ha) stay
    assert sorted(v for v, _ha, _a in rows) == [1, 3]
