"""A class raster written by the tools, styled by the layer post-processor, drawn in a real map canvas."""

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (
    QgsLayerTree,
    QgsLayerTreeModel,
    QgsPalettedRasterRenderer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
)
from qgis.PyQt.QtGui import QColor, QImage

from satclassify_plugin.algorithms.styles import ClassStylePostProcessor, style_output_on_load
from satclassify_plugin.core import raster
from satclassify_plugin.core.contract import clc
from tests.rasters import make_raster


def write_class_raster(path):
    a = np.zeros((60, 90), np.uint8)
    a[:, :30] = 1
    a[:, 30:60] = 3
    a[:, 60:] = 5
    a[:10, :10] = 0  # no label
    make_raster(path, a, nodata=0)
    ds = gdal.Open(str(path), gdal.GA_Update)
    raster.write_class_metadata(ds.GetRasterBand(1), clc.classes(1))
    ds = None
    return str(path)


def draw(app, canvas, layer, png):
    """Draw ``layer`` on a real map canvas (offscreen platform: a real widget, not on a screen), save it
    as ``png`` and return the image."""
    canvas.resize(450, 300)
    canvas.show()
    app.processEvents()
    canvas.setLayers([layer])
    canvas.setDestinationCrs(layer.crs())
    canvas.setExtent(layer.extent())
    canvas.refreshAllLayers()
    canvas.waitWhileRendering()
    canvas.saveAsImage(png)
    return QImage(png)


def test_class_raster_in_canvas_shows_legend_and_colours(qgis_app, tmp_path):
    from qgis.gui import QgsMapCanvas

    qgis_canvas = QgsMapCanvas()
    path = write_class_raster(tmp_path / "classes.tif")
    layer = QgsRasterLayer(path, "prediction")
    assert layer.isValid()
    ClassStylePostProcessor.create(clc.classes(1)).postProcessLayer(
        layer, QgsProcessingContext(), QgsProcessingFeedback()
    )
    renderer = layer.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    legend = {label: color.name() for label, color in renderer.legendSymbologyItems()}
    for c in clc.classes(1):
        assert legend[c.name] == c.color
    QgsProject.instance().addMapLayer(layer)
    try:
        # The legend as the Layers panel shows it: one node per class with its name.
        root = QgsLayerTree()
        root.addLayer(layer)
        model = QgsLayerTreeModel(root)
        nodes = model.layerLegendNodes(root.findLayer(layer.id()))
        labels = [n.data(0) for n in nodes]
        # QGIS 3.22 puts a "Band 1 (Palette)" title node first, then one node per class.
        assert labels[-5:] == [c.name for c in clc.classes(1)] and len(labels) <= 6

        img = draw(qgis_app, qgis_canvas, layer, str(tmp_path / "canvas.png"))
        assert not img.isNull() and img.width() > 100
        # centre of each vertical strip has its class colour
        w, h = img.width(), img.height()
        for frac, value in ((0.17, 1), (0.5, 3), (0.83, 5)):
            px = QColor(img.pixel(int(w * frac), int(h * 0.6)))
            want = QColor(clc.classes(1)[value - 1].color)
            assert (
                abs(px.red() - want.red()) <= 2
                and abs(px.green() - want.green()) <= 2
                and abs(px.blue() - want.blue()) <= 2
            ), (value, px.name(), want.name())
    finally:
        QgsProject.instance().removeMapLayer(layer.id())


def test_style_output_on_load_attaches_post_processor(tmp_path):
    from qgis.core import QgsProcessingContext

    path = write_class_raster(tmp_path / "c.tif")
    context = QgsProcessingContext()
    context.addLayerToLoadOnCompletion(path, QgsProcessingContext.LayerDetails("c", QgsProject.instance(), "OUTPUT"))
    style_output_on_load(context, path, clc.classes(1))
    pp = context.layerToLoadOnCompletionDetails(path).postProcessor()
    assert isinstance(pp, ClassStylePostProcessor)
    # only the classes present in the file (2 and 4 are not), with their area (10 m pixels) and share
    assert [(c["value"], c["name"], c["pixels"], c["area_ha"]) for c in pp.classes] == [
        (1, "Artificial surfaces", 1700, 17.0),
        (3, "Forest and semi natural areas", 1800, 18.0),
        (5, "Water bodies", 1800, 18.0),
    ]
    assert sum(c["percent"] for c in pp.classes) == pytest.approx(100.0)


def test_classify_output_loaded_styled_and_drawn(qgis_app, plugin, tmp_path):
    """The classify tool's real output, loaded the way the toolbox loads it (runAndLoadResults: the
    layer post-processor styles it), shows the model card's classes in the legend and on the canvas.
    The screenshot goes to $SATCLASSIFY_SCREENSHOTS when set (the README's pictures come from there)."""
    import os

    import processing
    from qgis.gui import QgsMapCanvas

    from tests import onnx_models as om

    # 4-band stack whose B08 rises left to right: a linear model maps it to 3 vertical zones
    h, w = 60, 90
    raw = np.zeros((4, h, w), np.uint16)
    raw[:3] = 500
    raw[3] = np.linspace(100, 5900, w, dtype=np.float64)[None, :].astype(np.uint16)
    src = make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4, nodata=0)
    weights = [[0, 0, 0, -10], [0, 0, 0, 0], [0, 0, 0, 10]]
    model = om.linear_model(tmp_path / "m.onnx", weights, bias=[3, 0, -3])
    out = str(tmp_path / "landcover.tif")
    res = processing.runAndLoadResults("satclassify:classify", {"INPUT": src, "MODEL": model, "OUTPUT": out})
    layers = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.source() == res["OUTPUT"]]
    assert len(layers) == 1
    layer = layers[0]
    try:
        renderer = layer.renderer()
        assert isinstance(renderer, QgsPalettedRasterRenderer)
        # the legend: only the classes the prediction holds, each with its area in ha and % (10 m pixels)
        pred = gdal.Open(out).ReadAsArray()
        present = [c for c in om.classes(3) if (pred == c["value"]).any()]
        assert len(present) >= 2
        assert [(c.value, c.label, c.color.name()) for c in renderer.classes()] == [
            (
                c["value"],
                f"{c['name']} \u2013 {(pred == c['value']).sum() / 100:.1f} ha "
                f"({100.0 * (pred == c['value']).sum() / (pred > 0).sum():.1f} %)",
                c["color"],
            )
            for c in present
        ]
        folder = os.environ.get("SATCLASSIFY_SCREENSHOTS") or str(tmp_path)
        os.makedirs(folder, exist_ok=True)
        img = draw(qgis_app, QgsMapCanvas(), layer, os.path.join(folder, "classify_canvas.png"))
        assert not img.isNull()
        got = QColor(img.pixel(int(img.width() * 0.1), img.height() // 2)).name()
        assert got == om.classes(3)[0]["color"]
        got = QColor(img.pixel(int(img.width() * 0.9), img.height() // 2)).name()
        assert got == om.classes(3)[2]["color"]
    finally:
        QgsProject.instance().removeMapLayer(layer.id())
