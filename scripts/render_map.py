#!/usr/bin/env python3
"""Render a SatClassify class raster as a QGIS map with its legend (PNG), headless.

Uses the plugin's own class styling (the layer post-processor the toolbox uses) and a QGIS print
layout (map + legend + scale bar), so the picture is what a user sees in QGIS.

    .venv-qgis/bin/python scripts/render_map.py prediction.tif map.png [--title "..."]
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def classes_of(path):
    """Legend entries of the classes present in a class raster: value, name, colour, area (ha and %), counted
    blockwise by the plugin's core (core.maps.legend)."""
    from satclassify_plugin.core.maps.legend import class_areas

    return class_areas(path)


def make_legend(layout, map_item, layer, heading):
    """The layout legend of a class raster: the heading (the class scheme) as its title, then one entry per class
    present with its area; no layer name and no "Band 1 (Palette)" band title."""
    from qgis.core import QgsLayoutItemLegend, QgsLegendRenderer

    from satclassify_plugin import compat
    from satclassify_plugin.algorithms.styles import hide_band_title

    legend = QgsLayoutItemLegend(layout)
    legend.setLinkedMap(map_item)
    legend.setTitle(heading)
    layout.addLayoutItem(legend)
    legend.setAutoUpdateModel(False)
    node = legend.model().rootGroup().findLayer(layer)
    if node is not None:
        QgsLegendRenderer.setNodeLegendStyle(node, compat.LEGEND_HIDDEN)  # the heading says it
        hide_band_title(layer, tree_layer=node)
        legend.model().refreshLayerLegend(node)
    return legend


def legend_labels(legend, layer):
    """The entries a layout legend draws for ``layer`` (what a reader sees), in order."""
    node = legend.model().rootGroup().findLayer(layer)
    return [n.data(0) for n in legend.model().layerLegendNodes(node)] if node is not None else []


def build_layout(path, title=None, scheme=None, map_mm=160):
    """(layout, legend, layer): the print layout of a class raster (title, map, legend), the layer added to the
    project (remove it when done)."""
    from osgeo import gdal
    from qgis.core import (
        QgsLayoutItemLabel,
        QgsLayoutItemMap,
        QgsLayoutPoint,
        QgsLayoutSize,
        QgsPrintLayout,
        QgsProject,
        QgsRasterLayer,
    )
    from qgis.PyQt.QtGui import QFont

    from satclassify_plugin import compat
    from satclassify_plugin.algorithms.styles import ClassStylePostProcessor

    project = QgsProject.instance()
    layer = QgsRasterLayer(path, os.path.splitext(os.path.basename(path))[0])
    if not layer.isValid():
        raise SystemExit(f"cannot open {path}")
    ClassStylePostProcessor(classes_of(path)).postProcessLayer(layer, None, None)
    project.addMapLayer(layer)
    layout = QgsPrintLayout(project)
    layout.initializeDefaults()
    page = layout.pageCollection().page(0)
    ext = layer.extent()
    map_w = map_mm
    map_h = map_w * ext.height() / ext.width()
    width_mm = map_w + 135
    page.setPageSize(QgsLayoutSize(width_mm, map_h + 24, compat.LAYOUT_MILLIMETERS))
    label = QgsLayoutItemLabel(layout)
    label.setText(title or layer.name())
    label.setFont(QFont("Sans", 14))
    label.attemptMove(QgsLayoutPoint(6, 4))
    label.attemptResize(QgsLayoutSize(width_mm - 12, 10))
    layout.addLayoutItem(label)
    m = QgsLayoutItemMap(layout)
    m.attemptMove(QgsLayoutPoint(6, 16))
    m.attemptResize(QgsLayoutSize(map_w, map_h))
    m.setLayers([layer])
    m.setCrs(layer.crs())
    m.setExtent(ext)
    layout.addLayoutItem(m)
    if not scheme:
        ds = gdal.Open(path)
        scheme = ds.GetRasterBand(1).GetDescription() or layer.name()
        ds = None
    legend = make_legend(layout, m, layer, scheme)
    legend.attemptMove(QgsLayoutPoint(map_w + 12, 16))
    legend.adjustBoxSize()
    return layout, legend, layer


def render(path, png, title=None, map_mm=160, dpi=110, scheme=None):
    from qgis.core import QgsLayoutExporter, QgsProject

    from satclassify_plugin import compat

    layout, legend, layer = build_layout(path, title, scheme, map_mm)
    project = QgsProject.instance()
    exporter = QgsLayoutExporter(layout)
    settings = QgsLayoutExporter.ImageExportSettings()
    settings.dpi = dpi
    if exporter.exportToImage(png, settings) != compat.EXPORT_SUCCESS:
        raise SystemExit(f"could not write {png}")
    project.removeMapLayer(layer.id())
    return png


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("raster")
    ap.add_argument("png")
    ap.add_argument("--title")
    ap.add_argument("--scheme", help="legend heading (default: the raster's band description, e.g. the class scheme)")
    a = ap.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.insert(0, ROOT)
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    render(a.raster, a.png, a.title, scheme=a.scheme)
    print(a.png)
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
