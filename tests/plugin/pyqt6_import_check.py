"""Import the plugin against real PyQt6 with QGIS stubbed from tests/data/qgis4_api.json (run in its own process
by tests/plugin/test_qgis4_api.py: PyQt5, which the host QGIS loads, and PyQt6 cannot share one process).

``qgis.PyQt.<X>`` is PyQt6's module itself (what a Qt6 build of QGIS re-exports); ``qgis.core`` / ``gui`` /
``analysis`` hand out only the classes in the data file, each with only its listed members and enum members, so a
``from qgis.core import Name`` of a name QGIS 4 lacks fails here as it would in QGIS 4. Prints one JSON line:
{"imported": [...], "failed": {module: error}, "qt": "6.x", "pyqt": "6.x"}.
"""

import enum
import importlib
import json
import os
import pkgutil
import sys
import traceback
import types

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data", "qgis4_api.json")
QGIS_VERSION_INT = 40000


def _not_here(name):
    def call(*args, **kwargs):
        raise NotImplementedError(f"{name}: a stub of the QGIS 4 API (tests/data/qgis4_api.json)")

    return call


def _qt_class(name):
    import importlib

    for sub in ("QtCore", "QtGui", "QtWidgets"):
        cls = getattr(importlib.import_module(f"PyQt6.{sub}"), name, None)
        if isinstance(cls, type):
            return cls
    return None


def stub_class(name, entry, data, made):
    """A class with the members the data file lists for ``name``: enums as enum.Enum (with their listed members),
    nested classes as stub classes, everything else a callable that raises; QGIS bases (stubbed too) and the
    first Qt base (PyQt6's own class) are inherited, as in the real binding."""
    if name in made:
        return made[name]
    bases = []
    for b in entry.get("bases", []):
        if b == "Exception":  # %Exception: a Python exception class
            bases.append(Exception)
        elif b in data["classes"]:
            bases.append(stub_class(b, data["classes"][b], data, made))
        elif (
            b.startswith("Q")
            and not b.startswith("Qgs")
            and not any(isinstance(x, type) and x.__module__.startswith("PyQt6") for x in bases)
        ):
            qt = _qt_class(b)
            if qt is not None:
                bases.append(qt)
    attrs = {}
    for member in entry.get("members", []):
        nested = f"{name}.{member}"
        if member in entry.get("enums", {}):
            attrs[member] = enum.Enum(nested, {m: i for i, m in enumerate(entry["enums"][member])})
        elif nested in data["classes"]:
            attrs[member] = stub_class(nested, data["classes"][nested], data, made)
        elif member == "versionInt":
            attrs[member] = staticmethod(lambda: QGIS_VERSION_INT)
        else:
            attrs[member] = staticmethod(_not_here(nested))
    made[name] = type(name.split(".")[-1], tuple(dict.fromkeys(bases)) or (), attrs)
    return made[name]


def install_stubs(data):
    import PyQt6
    from PyQt6 import QtCore

    qgis = types.ModuleType("qgis")
    qgis.__path__ = []
    pyqt = types.ModuleType("qgis.PyQt")
    pyqt.__path__ = []
    sys.modules.update({"qgis": qgis, "qgis.PyQt": pyqt})
    for sub in ("QtCore", "QtGui", "QtWidgets", "QtXml", "QtNetwork", "QtSvg", "QtPrintSupport"):
        try:
            mod = importlib.import_module(f"PyQt6.{sub}")
        except ImportError:
            continue
        sys.modules[f"qgis.PyQt.{sub}"] = mod
        setattr(pyqt, sub, mod)
    made = {}
    for module in ("core", "gui", "analysis"):
        m = types.ModuleType(f"qgis.{module}")
        for cls, entry in data["classes"].items():
            if entry.get("module") == f"qgis.{module}" and "." not in cls:
                setattr(m, cls, stub_class(cls, entry, data, made))
        sys.modules[f"qgis.{module}"] = m
        setattr(qgis, module, m)
    utils = types.ModuleType("qgis.utils")
    utils.iface = None
    sys.modules["qgis.utils"] = utils
    return QtCore.QT_VERSION_STR, QtCore.PYQT_VERSION_STR, PyQt6.__file__


def main():
    with open(DATA, encoding="utf-8") as f:
        data = json.load(f)
    qt, pyqt, where = install_stubs(data)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])  # noqa: F841  (widgets need one)
    sys.path.insert(0, ROOT)
    import satclassify_plugin

    # a package's __main__ runs a command when imported (satclassify_plugin/headless: the `satclassify` command)
    names = ["satclassify_plugin"] + [
        m.name
        for m in pkgutil.walk_packages(satclassify_plugin.__path__, "satclassify_plugin.")
        if not m.name.endswith(".__main__")
    ]
    imported, failed = [], {}
    for name in names:
        try:
            importlib.import_module(name)
            imported.append(name)
        except Exception as e:  # noqa: BLE001  (report every module's failure)
            failed[name] = f"{type(e).__name__}: {e} | " + traceback.format_exc().strip().splitlines()[-3].strip()
    print(json.dumps({"imported": imported, "failed": failed, "qt": qt, "pyqt": pyqt, "pyqt6_at": where}))


if __name__ == "__main__":
    main()
