"""Runs inside the QGIS desktop (qgis --code, started by scripts/screenshots.sh): opens what a user opens and
saves each real window as a PNG in $SATCLASSIFY_SHOTS, then quits QGIS.

  qgis_stack_natural_colour.png  the sample stack as QGIS opens the file (its .qml: B04/B03/B02, 2-98 % stretch)
  qgis_classify_dialog.png       Processing > SatClassify > Classify raster with ONNX model, layer and model filled in
  qgis_prediction.png            the demo's prediction styled as the tools style it (classes present, area)
  qgis_generalized.png           satclassify:generalize run from Processing (MMU 5 ha): polygons over the stack

Windows are grabbed from the X server (QScreen.grabWindow), so the pictures are what the screen shows.
"""

import os
import traceback

from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtGui import QImage
from qgis.PyQt.QtWidgets import QApplication
from qgis.utils import iface

ROOT = os.environ.get("SATCLASSIFY_ROOT", os.getcwd())
OUT = os.environ.get("SATCLASSIFY_SHOTS", os.path.join(ROOT, "docs", "images"))
DEMO = os.path.join(ROOT, "output", "demo")
STACK = os.path.join(ROOT, "sample", "s2_sample.tif")
PRED = os.path.join(DEMO, "prediction_level2.tif")
MODEL = os.path.join(DEMO, "model_cnn_dual.onnx")
WORK = os.path.join(DEMO, "screenshots")
SIZE = (1200, 760)
state = {}


def log(msg):
    print(f"[screenshots] {msg}", flush=True)


def save(widget, name):
    """The window as the X server shows it, reduced to 256 colours (README-sized PNG)."""
    QApplication.processEvents()
    shot = QApplication.primaryScreen().grabWindow(int(widget.winId())).toImage()
    shot = shot.convertToFormat(QImage.Format.Format_Indexed8)
    path = os.path.join(OUT, name)
    shot.save(path, "PNG")
    log(f"{path} {shot.width()} x {shot.height()}, {os.path.getsize(path) // 1024} KB")


def settle(then, ms=1500):
    def go():
        canvas = iface.mapCanvas()
        canvas.refreshAllLayers()
        canvas.waitWhileRendering()
        QApplication.processEvents()
        QTimer.singleShot(ms, guarded(then))

    QTimer.singleShot(200, guarded(go))


def guarded(fn):
    def run():
        try:
            fn()
        except Exception:  # a failed step must still end QGIS
            log("failed:\n" + traceback.format_exc())
            finish()

    return run


def tree_node(layer):
    return QgsProject.instance().layerTreeRoot().findLayer(layer.id())


def expand(node, on):
    """Expand/collapse a layer in the Layers panel (the node and the view: the view keeps its own state)."""
    node.setExpanded(on)
    view = iface.layerTreeView()
    # QGIS >= 3.18 puts a proxy model between the view and the layer tree model: ask the view for its index
    index = view.node2index(node) if hasattr(view, "node2index") else view.layerTreeModel().node2index(node)
    view.setExpanded(index, on)


def step_stack():
    win = iface.mainWindow()
    win.setGeometry(0, 0, *SIZE)
    win.show()
    layer = QgsRasterLayer(STACK, "s2_sample (natural colour)")  # its default style: s2_sample.qml
    QgsProject.instance().addMapLayer(layer)
    state["stack"] = layer
    iface.mapCanvas().setExtent(layer.extent())
    r = layer.renderer()
    log(f"stack renderer {r.type()} bands {r.redBand()}/{r.greenBand()}/{r.blueBand()}")
    settle(lambda: (save(win, "qgis_stack_natural_colour.png"), step_dialog()))


def step_dialog():
    import processing

    dialog = processing.createAlgorithmDialog("satclassify:classify", {"INPUT": state["stack"], "MODEL": MODEL})
    dialog.setGeometry(60, 40, 980, 700)
    dialog.show()
    state["dialog"] = dialog

    def shoot():
        save(dialog, "qgis_classify_dialog.png")
        dialog.close()
        step_prediction()

    QTimer.singleShot(2000, guarded(shoot))


def step_prediction():
    from satclassify_plugin.algorithms.styles import ClassStylePostProcessor, present_classes_of
    from satclassify_plugin.core import raster

    ds = __import__("osgeo.gdal", fromlist=["gdal"]).Open(PRED)
    classes = raster.classes_from_raster(ds)
    ds = None
    layer = QgsRasterLayer(PRED, "prediction (CLC level 2)")
    QgsProject.instance().addMapLayer(layer)
    ClassStylePostProcessor(present_classes_of(PRED, classes)).postProcessLayer(layer, None, None)
    expand(tree_node(state["stack"]), False)
    expand(tree_node(layer), True)
    state["prediction"] = layer
    settle(lambda: (save(iface.mainWindow(), "qgis_prediction.png"), step_generalize()))


def step_generalize():
    import processing

    os.makedirs(WORK, exist_ok=True)
    res = processing.runAndLoadResults(
        "satclassify:generalize",
        {
            "INPUT": PRED,
            "MMU": 5.0,
            "CONNECTIVITY": 0,
            "OUTPUT": os.path.join(WORK, "map_mmu5ha.tif"),
            "POLYGONS": os.path.join(WORK, "map_mmu5ha.gpkg"),
        },
    )
    log(f"generalize: {res.get('POLYGON_COUNT')} polygons")

    def arrange():  # after the Layers panel has taken the new layers in (it expands them itself)
        root = QgsProject.instance().layerTreeRoot()
        for lyr in QgsProject.instance().mapLayers().values():
            node = root.findLayer(lyr.id())
            if os.path.samefile(lyr.source().split("|")[0], res["POLYGONS"]):
                lyr.setName("generalised polygons (MMU 5 ha)")
                lyr.setOpacity(0.8)
                iface.setActiveLayer(lyr)
                expand(node, True)
            else:
                expand(node, False)
                if lyr is not state["stack"]:
                    node.setItemVisibilityChecked(False)
        log(
            "layers arranged: "
            + ", ".join(
                f"{n.name()} {'+' if n.isExpanded() else '-'}"
                for n in QgsProject.instance().layerTreeRoot().findLayers()
            )
        )
        settle(lambda: (save(iface.mainWindow(), "qgis_generalized.png"), finish()), 2500)

    QTimer.singleShot(1500, guarded(arrange))


def finish():
    if state.get("finished"):
        return
    state["finished"] = True
    log("screenshots done")
    QgsProject.instance().setDirty(False)
    QTimer.singleShot(300, lambda: QgsApplication.exit(0))


os.makedirs(OUT, exist_ok=True)
QTimer.singleShot(3000, guarded(step_stack))
QTimer.singleShot(240000, finish)  # never hang
