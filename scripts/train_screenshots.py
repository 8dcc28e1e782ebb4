#!/usr/bin/env python3
"""Screenshots of docs/train-in-qgis.md: the Train model dialog (parameters, and its log after a real run) and the
training report, made from a real run on the embedded sample.

    .venv-qgis/bin/python scripts/train_screenshots.py [--out docs/images] [--epochs 8]

The training runs in SATCLASSIFY_TRAINING_PYTHON (default .venv-train/bin/python), as the tool runs it. The
widgets are grabbed offscreen (QT_QPA_PLATFORM=offscreen, set for you; with DISPLAY set under Xvfb they are drawn
the same way): the Processing dialog is QGIS's own AlgorithmDialog, the report is rendered by QtWebKit, the engine
QGIS 3.22's own HTML views use. About a minute on 2 CPU cores.
"""

import argparse
import importlib
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _wait(app, seconds):
    import time

    t0 = time.time()
    while time.time() - t0 < seconds:
        app.processEvents()
        time.sleep(0.02)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "images"))
    ap.add_argument("--epochs", type=int, default=8)
    args = ap.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault(
        "SATCLASSIFY_TRAINING_PYTHON",
        os.environ.get("SATCLASSIFY_TRAIN_PYTHON") or os.path.join(ROOT, ".venv-train", "bin", "python"),
    )
    sys.path[:0] = [ROOT, os.path.join(ROOT, "scripts"), "/usr/share/qgis/python/plugins"]
    from qgis.core import QgsApplication

    app = QgsApplication([], True)
    app.initQgis()
    from processing.core.Processing import Processing

    Processing.initialize()
    from satclassify_plugin.provider import SatClassifyProvider

    provider = SatClassifyProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    import processing
    from make_sample import make_sample
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from qgis.core import QgsProcessingContext

    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="satclassify-shots-")
    image, clc = make_sample(os.path.join(work, "sample"), size=256, seed=7)
    labels = os.path.join(work, "labels.tif")
    processing.run(
        "satclassify:rasterizeclc", {"INPUT": clc, "REFERENCE": image, "LEVEL": 1, "RULE": 2, "OUTPUT": labels}
    )
    dataset = os.path.join(os.path.expanduser("~"), "satclassify", "dataset")  # a path as a user has it
    res = processing.run(
        "satclassify:buildpatches",
        {
            "IMAGE": image,
            "LABELS": labels,
            "PATCH_SIZE": 32,
            "BLOCK_SIZE": 2,
            "VAL_FRACTION": 0.2,
            "TEST_FRACTION": 0.2,
            "SEED": 1,
            "OVERWRITE": True,
            "OUTPUT_FOLDER": dataset,
        },
    )
    print(f"dataset {dataset}: train {res['TRAIN_COUNT']}, val {res['VAL_COUNT']}")
    alg = QgsApplication.processingRegistry().createAlgorithmById("satclassify:trainmodel")
    dialog = AlgorithmDialog(alg, parent=None)
    out = os.path.join(os.path.expanduser("~"), "satclassify")
    params = {
        "INPUT": dataset,
        "ARCHITECTURE": 1,
        "EPOCHS": args.epochs,
        "DEVICE": 0,
        "OUTPUT": os.path.join(out, "model_cnn_dual.onnx"),
        "CHECKPOINTS": os.path.join(out, "run"),
        "REPORT": os.path.join(out, "training_report.html"),
    }
    dialog.setParameters(params)
    dialog.resize(1000, 760)
    dialog.show()
    _wait(app, 1)
    dialog.grab().save(os.path.join(args.out, "qgis_trainmodel_dialog.png"), "PNG")
    feedback = dialog.createFeedback()
    dialog.showLog()
    result = processing.run("satclassify:trainmodel", params, context=QgsProcessingContext(), feedback=feedback)
    _wait(app, 1)
    dialog.grab().save(os.path.join(args.out, "qgis_trainmodel_log.png"), "PNG")
    print(f"model {result['OUTPUT']} on {result['DEVICE_USED']}, val OA {result['VAL_OA']:.3f}")

    from qgis.PyQt.QtCore import QUrl

    try:  # QtWebKit: the HTML engine of QGIS 3.x builds (Qt5); a Qt6 build has none, the report shot is skipped
        webkit = importlib.import_module("qgis.PyQt.QtWebKitWidgets")
    except ImportError:
        print("no QtWebKit in this QGIS: training_report.png not made (open the report in a browser instead)")
        return 0
    view = webkit.QWebView()
    view.resize(1000, 1100)
    done = []
    view.loadFinished.connect(done.append)
    view.load(QUrl.fromLocalFile(result["REPORT"]))
    view.show()
    while not done:
        _wait(app, 0.1)
    _wait(app, 0.5)
    view.grab().save(os.path.join(args.out, "training_report.png"), "PNG")
    for name in ("qgis_trainmodel_dialog.png", "qgis_trainmodel_log.png", "training_report.png"):
        print(os.path.join(args.out, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
