"""A class raster written by the tools, styled by the layer post-processor, drawn in a real map canvas."""
import numpy as np
from osgeo import gdal
from qgis.core import (QgsLayerTreeModel, QgsProcessingContext, QgsProcessingFeedback, QgsProject,
                       QgsRasterLayer, QgsLayerTree, QgsPalettedRasterRenderer)
from qgis.PyQt.QtGui import QColor, QImage

from satclassify_plugin.algorithms.base import ClassStylePostProcessor, style_output_on_load
from satclassify_plugin.core import clc, gdal_io
from tests.rasters import make_raster


def write_class_raster(path):
    a = np.zeros((60, 90), np.uint8)
    a[:, :30] = 1
    a[:, 30:60] = 3
    a[:, 60:] = 5
    a[:10, :10] = 0  # no label
    make_raster(path, a, nodata=0)
    ds = gdal.Open(str(path), gdal.GA_Update)
    gdal_io.write_class_metadata(ds.GetRasterBand(1), clc.classes(1))
    ds = None
    return str(path)


def test_class_raster_in_canvas_shows_legend_and_colours(qgis_app, tmp_path):
    from qgis.gui import QgsMapCanvas

    qgis_canvas = QgsMapCanvas()
    path = write_class_raster(tmp_path / "classes.tif")
    layer = QgsRasterLayer(path, "prediction")
    assert layer.isValid()
    ClassStylePostProcessor.create(clc.classes(1)).postProcessLayer(layer, QgsProcessingContext(),
                                                                    QgsProcessingFeedback())
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

        qgis_canvas.resize(450, 300)
        qgis_canvas.show()  # offscreen platform: a real widget, not on a screen
        qgis_app.processEvents()
        qgis_canvas.setLayers([layer])
        qgis_canvas.setDestinationCrs(layer.crs())
        qgis_canvas.setExtent(layer.extent())
        qgis_canvas.refreshAllLayers()
        qgis_canvas.waitWhileRendering()
        shot = str(tmp_path / "canvas.png")
        qgis_canvas.saveAsImage(shot)
        img = QImage(shot)
        assert not img.isNull() and img.width() > 100
        # centre of each vertical strip has its class colour
        w, h = img.width(), img.height()
        for frac, value in ((0.17, 1), (0.5, 3), (0.83, 5)):
            px = QColor(img.pixel(int(w * frac), int(h * 0.6)))
            want = QColor(clc.classes(1)[value - 1].color)
            assert (abs(px.red() - want.red()) <= 2 and abs(px.green() - want.green()) <= 2
                    and abs(px.blue() - want.blue()) <= 2), (value, px.name(), want.name())
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
    assert [c["value"] for c in pp.classes] == [1, 2, 3, 4, 5]
