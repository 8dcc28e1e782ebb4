"""The plugin's source is Qt6-safe by construction: no unscoped enum member, no Qt5-only construct.

Qt6 builds of QGIS (QGIS 4, and the Qt6 builds of 3.x) reject ``QgsProcessingParameterNumber.Integer``,
``Qt.AlignLeft``, ``QVariant.String`` field types, ``exec_()``, ``PyQt5`` imports and ``QAction`` from QtWidgets.
No QGIS 4 build runs here, so this test walks every module of the plugin (and the scripts that import it) and
resolves each ``Name.attr`` whose ``Name`` comes from ``qgis.*`` against the running QGIS: an attribute that is an
enum *member* reached from a class that is not that enum is an unscoped access. ``compat.py`` is where names
that differ between versions live; it is checked for scoping too, and alone may name ``QVariant``.
"""

import ast
import enum
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGIN = os.path.join(ROOT, "satclassify_plugin")
COMPAT = os.path.join(PLUGIN, "compat.py")

# Qt5-only spellings found by text (they cannot be resolved on a Qt5 build to tell them apart)
FORBIDDEN = [
    (re.compile(r"\bQVariant\b"), "QVariant (field types: compat.FIELD_*; QVariant.Type is gone in Qt6)"),
    (re.compile(r"\bQgsMapLayerType\b"), "QgsMapLayerType (compat.LAYER_RASTER / LAYER_VECTOR)"),
    (re.compile(r"^\s*(from|import)\s+PyQt5\b", re.M), "a PyQt5 import (use qgis.PyQt)"),
    (re.compile(r"\.exec_\("), "exec_() (PyQt6 has exec())"),
    (re.compile(r"\bQRegExp\b"), "QRegExp (QRegularExpression)"),
    (re.compile(r"\bQDesktopWidget\b"), "QDesktopWidget (QScreen)"),
    (re.compile(r"QtWidgets\s+import\s+[^\n]*\bQAction\b"), "QAction from QtWidgets (compat.QAction)"),
    (re.compile(r"\.\s*Flag[A-Z]\w*\b"), "an unscoped Flag* member (compat.PARAM_FLAG_* or Enum.Member)"),
    # enum members reached through an instance (layer.RasterLayer, d.Integer): the AST walk cannot resolve those
    (
        re.compile(
            r"\b(?!(?:compat|gdal|ogr|osr|np|numpy)\b)[a-z_]\w*\.(RasterLayer|VectorLayer|MeshLayer|Integer|Double|NoError|FastInsert|"
            r"TypeRaster|TypeVector\w*|Info|Success|Critical)\b"
        ),
        "an enum member reached through an instance (use compat)",
    ),
]


def sources():
    files = []
    for dirpath, dirnames, filenames in os.walk(PLUGIN):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        files += [os.path.join(dirpath, f) for f in filenames if f.endswith(".py")]
    for extra in ("scripts", "benchmarks"):
        folder = os.path.join(ROOT, extra)
        files += [os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".py")]
    return sorted(files)


def is_enum_type(obj):
    """A Python enum or a sip enum type (the metaclass is sip.enumtype in PyQt5; PyQt6 uses enum.Enum)."""
    meta = type(obj)
    return isinstance(obj, type) and (
        issubclass(meta, enum.EnumMeta) or (meta.__name__ == "enumtype" and meta.__module__.endswith("sip"))
    )


def is_enum_member(value):
    return not isinstance(value, type) and is_enum_type(type(value))


def qgis_imports(tree):
    """Names a module imports from qgis.* (at any depth in the file): local name -> (module, imported name).
    The one walker for the plugin's QGIS names (also used by tests/plugin/test_qgis4_api.py and
    scripts/qgis4_api.py)."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "qgis":
            for a in node.names:
                found[a.asname or a.name] = (node.module, a.name)
    return found


def attribute_chains(tree, local_names):
    """(line, local name, [attr, ...]) for every outermost ``Name.a.b`` whose Name is in ``local_names``."""
    inner = set()
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in inner:
            continue
        chain, cur = [node.attr], node.value
        while isinstance(cur, ast.Attribute):
            inner.add(id(cur))
            chain.insert(0, cur.attr)
            cur = cur.value
        if isinstance(cur, ast.Name) and cur.id in local_names:
            out.append((node.lineno, cur.id, chain))
    return out


def qgis_names(tree):
    """Names a module imports from qgis.* (at any depth in the file), name -> object in the running QGIS."""
    import importlib

    names = {}
    for local, (module, name) in qgis_imports(tree).items():
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        if hasattr(mod, name):
            names[local] = getattr(mod, name)
    return names


def unscoped_accesses(path):
    """(line, 'Name.attr') for every enum member reached through something that is not its enum."""
    with open(path, encoding="utf-8") as f:
        src = f.read()
    tree = ast.parse(src, path)
    names = qgis_names(tree)
    bad = []
    for lineno, local, chain in attribute_chains(tree, names):
        owner = names[local]
        for attr in chain:
            try:
                value = getattr(owner, attr)
            except AttributeError:
                break
            if is_enum_member(value) and not is_enum_type(owner):
                bad.append((lineno, f"{local}.{'.'.join(chain[: chain.index(attr) + 1])}"))
                break
            owner = value
    return sorted(set(bad))


def test_the_check_finds_unscoped_members_and_qt5_constructs(tmp_path):
    """The check itself catches what it is there for (and lets the scoped spellings pass)."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from qgis.core import Qgis, QgsProcessingParameterNumber, QgsWkbTypes\n"
        "from qgis.PyQt.QtCore import Qt\n"
        "a = QgsProcessingParameterNumber.Integer\n"
        "b = Qgis.Info\n"
        "c = Qt.AlignLeft\n"
        "d = QgsWkbTypes.MultiPolygon\n"
        "ok1 = Qgis.MessageLevel.Info\n"
        "ok2 = Qt.AlignmentFlag.AlignLeft\n"
        "ok3 = QgsWkbTypes.Type.MultiPolygon\n"
        "ok4 = Qgis.QGIS_VERSION_INT\n"
    )
    found = unscoped_accesses(str(bad))
    assert [name for _, name in found] == [
        "QgsProcessingParameterNumber.Integer",
        "Qgis.Info",
        "Qt.AlignLeft",
        "QgsWkbTypes.MultiPolygon",
    ]
    text = (
        "from qgis.PyQt.QtCore import QVariant\nfrom qgis.PyQt.QtWidgets import QAction\nd.exec_()\n"
        "p.setFlags(p.flags() | p.FlagAdvanced)\nok = layer.type() == layer.RasterLayer\nx = gdal.Info(ds)\n"
    )
    hits = [why for rx, why in FORBIDDEN if rx.search(text)]
    assert len(hits) == 5, hits


@pytest.mark.parametrize("path", sources(), ids=lambda p: os.path.relpath(p, ROOT))
def test_source_is_qt6_safe(path):
    problems = [
        f"line {ln}: {name} is an unscoped enum member: use compat or the Enum.Member form"
        for ln, name in unscoped_accesses(path)
    ]
    if path != COMPAT:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for rx, why in FORBIDDEN:
            for m in rx.finditer(text):
                problems.append(f"line {text.count(chr(10), 0, m.start()) + 1}: {why}")
    assert not problems, f"{os.path.relpath(path, ROOT)}:\n" + "\n".join(problems)


def test_metadata_admits_qgis_4():
    import configparser

    cfg = configparser.RawConfigParser()
    cfg.read(os.path.join(ROOT, "metadata.txt"), encoding="utf-8")
    g = cfg["general"]
    assert g["qgisMinimumVersion"] == "3.22"
    major, minor = (int(x) for x in g["qgisMaximumVersion"].split(".")[:2])
    assert (major, minor) >= (4, 0)  # QGIS 4's plugin manager offers the plugin
    assert major == 4  # and QGIS 5's does not (its API is checked against QGIS 4 only: test_qgis4_api.py)
    assert g.get("supportsQt6", "").strip().lower() == "true"


def test_compat_names_resolve_on_this_qgis():
    """Every compat constant is a real value of the running QGIS (a misspelled new name would fall back
    silently: the fallback must be a real value too)."""
    from satclassify_plugin import compat

    consts = {k: getattr(compat, k) for k in dir(compat) if k.isupper() and k != "QGIS_VERSION_INT"}
    assert len(consts) >= 25
    for k, v in consts.items():
        assert is_enum_member(v), (k, v)
    from qgis.core import QgsField

    for kind in ("FIELD_STRING", "FIELD_INT", "FIELD_LONG", "FIELD_DOUBLE", "FIELD_DATE"):
        assert QgsField("x", getattr(compat, kind)).type() == getattr(compat, kind), kind
