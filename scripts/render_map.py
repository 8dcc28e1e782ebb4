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
    """(value, name, colour) of every named class in a raster's colour table + category names."""
    from osgeo import gdal

    from satclassify_plugin.core.raster import category_names
    ds = gdal.Open(path)
    names = category_names(ds)
    ct = ds.GetRasterBand(1).GetColorTable()
    out = []
    for value, name in enumerate(names):
        if value == 0 or not name or ct is None or value >= ct.GetCount():
            continue
        r, g, b = ct.GetColorEntry(value)[:3]
        out.append({"value": value, "name": name, "color": f"#{r:02x}{g:02x}{b:02x}"})
    return out


def render(path, png, title=None, map_mm=160, dpi=110):
    from qgis.core import (
        QgsLayoutExporter,
        QgsLayoutItemLabel,
        QgsLayoutItemLegend,
        QgsLayoutItemMap,
        QgsLayoutPoint,
        QgsLayoutSize,
        QgsLegendRenderer,
        QgsPrintLayout,
        QgsProject,
        QgsRasterLayer,
    )
    from qgis.PyQt.QtGui import QFont

    from satclassify_plugin import compat
    from satclassify_plugin.algorithms.base import ClassStylePostProcessor

    project = QgsProject.instance()
    layer = QgsRasterLayer(path, title or os.path.splitext(os.path.basename(path))[0])
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
    legend = QgsLayoutItemLegend(layout)
    legend.setLinkedMap(m)
    legend.setTitle("Classes")
    legend.attemptMove(QgsLayoutPoint(map_w + 12, 16))
    layout.addLayoutItem(legend)
    legend.setAutoUpdateModel(False)
    node = legend.model().rootGroup().findLayer(layer)
    if node is not None:  # no layer title above the classes
        QgsLegendRenderer.setNodeLegendStyle(node, compat.LEGEND_HIDDEN)
    legend.adjustBoxSize()
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
    a = ap.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.insert(0, ROOT)
    from qgis.core import QgsApplication
    app = QgsApplication([], False)
    app.initQgis()
    render(a.raster, a.png, a.title)
    print(a.png)
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
