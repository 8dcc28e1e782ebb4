"""DESIGN.md rule: core imports no qgis/PyQt/torch; the modules training shares import no osgeo."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORE = os.path.join(ROOT, "satclassify_plugin", "core")
FORBIDDEN = ("qgis", "PyQt5", "PyQt6", "PyQt4", "torch", "processing")
SHARED_WITH_TRAINING = ("clc", "modelcard", "metrics", "dataset", "errors", "__init__")


def core_modules():
    for dirpath, _, files in os.walk(CORE):
        for f in files:
            if f.endswith(".py"):
                yield os.path.join(dirpath, f)


def imported_roots(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0], node.lineno
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            yield str(node.args[0].value).split(".")[0], node.lineno


def test_core_has_modules():
    names = {os.path.basename(p) for p in core_modules()}
    assert {"clc.py", "modelcard.py", "metrics.py"} <= names


@pytest.mark.parametrize("path", sorted(core_modules()), ids=lambda p: os.path.relpath(p, CORE))
def test_core_module_imports_no_qgis_pyqt_torch(path):
    bad = [(m, line) for m, line in imported_roots(path) if m in FORBIDDEN]
    assert not bad, f"{path} imports {bad}: core must stay pure (DESIGN.md)"


@pytest.mark.parametrize("name", SHARED_WITH_TRAINING)
def test_shared_modules_import_no_osgeo(name):
    path = os.path.join(CORE, name + ".py")
    if not os.path.exists(path):
        pytest.skip(f"{name}.py not written yet")
    bad = [(m, line) for m, line in imported_roots(path) if m in FORBIDDEN + ("osgeo", "rasterio")]
    assert not bad, f"{path} imports {bad}: the training env has no osgeo"


def test_guardrail_catches_a_forbidden_import(tmp_path):
    p = tmp_path / "bad.py"
    p.write_text("import os\nfrom qgis.core import QgsRasterLayer\n")
    assert ("qgis", 2) in list(imported_roots(str(p)))
