"""DESIGN.md rules for satclassify_plugin/core, checked on the import statements of every module:

* nothing in core imports qgis, PyQt, torch or Processing (core is plain Python + numpy + GDAL);
* core/contract/ (what the training package imports) imports no osgeo or rasterio either, and nothing of core
  outside contract/ - the folder is the rule, no list of names to keep up to date;
* dependencies point one way: contract <- raster, crs <- the domain packages (s2, labels, classify, accuracy), which
  do not import each other; nothing in core imports the plugin's algorithms or install helpers.
"""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGIN = os.path.join(ROOT, "satclassify_plugin")
CORE = os.path.join(PLUGIN, "core")
FORBIDDEN = ("qgis", "PyQt5", "PyQt6", "PyQt4", "torch", "processing")
DOMAINS = ("s2", "labels", "classify", "accuracy", "maps", "trainrun")
#: what each part of core may import (parts of satclassify_plugin, as dotted prefixes)
ALLOWED = {"contract": ("core.contract",), "raster": ("core.contract", "core.raster"),
           "crs": ("core.contract", "core.crs")}
ALLOWED.update({d: ("core.contract", "core.raster", "core.crs", f"core.{d}") for d in DOMAINS})


def modules(folder):
    for dirpath, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for f in files:
            if f.endswith(".py"):
                yield os.path.join(dirpath, f)


def dotted_of(path):
    rel = os.path.relpath(path, PLUGIN)[:-3].split(os.sep)
    return ".".join(rel[:-1] if rel[-1] == "__init__" else rel), rel[-1] == "__init__"


def imports(path):
    """(root module or 'satclassify_plugin.<dotted>' for the plugin's own, line) of every import."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    here, is_pkg = dotted_of(path) if path.startswith(PLUGIN) else ("", False)
    base = here.split(".") if here else []
    if not is_pkg:
        base = base[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base[:len(base) - (node.level - 1)] + ([node.module] if node.module else [])
                target = "satclassify_plugin." + ".".join(parts)
                for a in node.names:  # "from .. import raster": the names may be modules
                    yield f"{target}.{a.name}", node.lineno
            elif node.module:
                for a in node.names:
                    yield f"{node.module}.{a.name}", node.lineno
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            yield str(node.args[0].value), node.lineno


def part_of(path):
    rel = os.path.relpath(path, CORE).split(os.sep)
    return rel[0][:-3] if rel[0].endswith(".py") else rel[0]


def test_core_has_its_parts():
    parts = {part_of(p) for p in modules(CORE)}
    assert {"contract", "raster", "__init__"} | set(DOMAINS) <= parts


@pytest.mark.parametrize("path", sorted(modules(CORE)), ids=lambda p: os.path.relpath(p, CORE))
def test_core_module_imports_follow_the_rules(path):
    part = part_of(path)
    bad = []
    for name, line in imports(path):
        root = name.split(".")[0]
        if root in FORBIDDEN:
            bad.append((name, line, "core imports no qgis/PyQt/torch/processing"))
        if part == "contract" and root in ("osgeo", "rasterio"):
            bad.append((name, line, "contract/ is shared with the training env, which has no osgeo"))
        if root == "satclassify_plugin" and part in ALLOWED:
            own = name[len("satclassify_plugin."):]
            if not own.startswith(ALLOWED[part]):
                bad.append((name, line, f"core/{part} may import only {ALLOWED[part]}"))
    assert not bad, f"{path}: {bad}"


def test_install_helpers_import_no_raster_or_model_code():
    for path in modules(os.path.join(PLUGIN, "install")):
        bad = [(m, line) for m, line in imports(path) if m.split(".")[0] in ("osgeo", "torch", "onnxruntime")]
        assert not bad, f"{path} imports {bad}: install helpers hold no raster or model code"


def test_guardrail_catches_forbidden_imports(tmp_path, monkeypatch):
    p = tmp_path / "bad.py"
    p.write_text("import os\nfrom qgis.core import QgsRasterLayer\n")
    assert ("qgis.core.QgsRasterLayer", 2) in list(imports(str(p)))
    # a contract module that reaches into a domain package is caught
    fake = os.path.join(CORE, "contract", "_probe_bad.py")
    with open(fake, "w") as f:
        f.write("from ..s2 import products\nfrom osgeo import gdal\n")
    try:
        with pytest.raises(AssertionError, match=r"contract/ may import only|shared with the training env"):
            test_core_module_imports_follow_the_rules(fake)
    finally:
        os.remove(fake)
