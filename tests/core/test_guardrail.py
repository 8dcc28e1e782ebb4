"""DESIGN.md rules for satclassify_plugin/core, checked on the import statements of every module:

* nothing in core imports qgis, PyQt, torch or Processing (core is plain Python + numpy + GDAL);
* core/contract/ (what the training package imports) imports no osgeo or rasterio either, and nothing of core
  outside contract/ - the folder is the rule, no list of names to keep up to date;
* dependencies point one way: contract <- raster, crs <- the domain packages (s2, labels, classify, accuracy), which
  do not import each other; nothing in core imports the plugin's algorithms or install helpers;
* the sensor-neutral network stack sits beside them: contract <- net (HTTP client, deadlines, retries, proxy) <-
  catalog (STAC / CDSE OData / DHuS clients) <- s2 (Sentinel-2 specifics); net and catalog import nothing of
  a domain package (and no GDAL: they are plain HTTP), so a Sentinel-1 package can use them too.
"""

import ast
import os

import pytest

from satclassify_plugin.algorithms import SHARED_MODULES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGIN = os.path.join(ROOT, "satclassify_plugin")
CORE = os.path.join(PLUGIN, "core")
FORBIDDEN = ("qgis", "PyQt5", "PyQt6", "PyQt4", "torch", "processing")
DOMAINS = ("s2", "labels", "classify", "accuracy", "maps", "trainrun")
#: what each part of core may import (parts of satclassify_plugin, as dotted prefixes)
ALLOWED = {
    "contract": ("core.contract",),
    "raster": ("core.contract", "core.raster"),
    "crs": ("core.contract", "core.crs"),
}
ALLOWED.update({d: ("core.contract", "core.raster", "core.crs", f"core.{d}") for d in DOMAINS})
ALLOWED.update({"net": ("core.contract", "core.net"), "catalog": ("core.contract", "core.net", "core.catalog")})
ALLOWED["s2"] += ("core.net", "core.catalog")
#: third-party roots the network parts may not import (they are plain HTTP; GDAL belongs to the sensor packages)
NO_GDAL = ("net", "catalog")


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
                parts = base[: len(base) - (node.level - 1)] + ([node.module] if node.module else [])
                target = "satclassify_plugin." + ".".join(parts)
                for a in node.names:  # "from .. import raster": the names may be modules
                    yield f"{target}.{a.name}", node.lineno
            elif node.module:
                for a in node.names:
                    yield f"{node.module}.{a.name}", node.lineno
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            yield str(node.args[0].value), node.lineno


def part_of(path):
    rel = os.path.relpath(path, CORE).split(os.sep)
    return rel[0][:-3] if rel[0].endswith(".py") else rel[0]


def test_core_has_its_parts():
    parts = {part_of(p) for p in modules(CORE)}
    assert {"contract", "raster", "__init__", "net", "catalog"} | set(DOMAINS) <= parts


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
        if part in NO_GDAL and root in ("osgeo", "rasterio", "numpy"):
            bad.append((name, line, f"core/{part} is plain HTTP: no GDAL or numpy"))
        if root == "satclassify_plugin" and part in ALLOWED:
            own = name[len("satclassify_plugin.") :]
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
    # the network stack may not reach up into a sensor package
    fake = os.path.join(CORE, "catalog", "_probe_bad.py")
    with open(fake, "w") as f:
        f.write("from ..s2.products import Scene\n")
    try:
        with pytest.raises(AssertionError, match=r"core/catalog may import only"):
            test_core_module_imports_follow_the_rules(fake)
    finally:
        os.remove(fake)
    fake = os.path.join(CORE, "net", "_probe_bad.py")
    with open(fake, "w") as f:
        f.write("from ..catalog import Credentials\nfrom osgeo import gdal\n")
    try:
        with pytest.raises(AssertionError, match=r"core/net may import only.*core/net is plain HTTP"):
            test_core_module_imports_follow_the_rules(fake)
    finally:
        os.remove(fake)


def test_headless_imports_no_qgis_pyqt_or_torch():
    """satclassify_plugin/headless (the `satclassify` command, export-openeo) runs without QGIS: no qgis, PyQt,
    torch or Processing import anywhere in it."""
    folder = os.path.join(PLUGIN, "headless")
    found = sorted(modules(folder))
    assert any(p.endswith("openeo_export.py") for p in found)
    qgis_side = tuple(f"satclassify_plugin.{m}" for m in ("algorithms", "plugin", "provider", "compat"))
    bad = [
        (os.path.relpath(p, PLUGIN), m, line)
        for p in found
        for m, line in imports(p)
        if m.split(".")[0] in FORBIDDEN or m.startswith(qgis_side)
    ]
    assert not bad, f"headless modules import QGIS-side code: {bad}"


HEADLESS = os.path.join(PLUGIN, "headless")
#: what the satclassify command (satclassify_plugin/headless, docs/headless.md) may import of the plugin: the core
#: and the model list (pure Python); outside the plugin only the standard library, numpy, osgeo, onnxruntime, dask
#: (batch), openeo and xarray (export-openeo, lazily)
HEADLESS_OWN = ("core", "install.model_catalogue", "headless")
HEADLESS_THIRD = ("numpy", "osgeo", "onnxruntime", "dask", "distributed", "openeo", "xarray")


def test_headless_exists():
    assert os.path.isfile(os.path.join(HEADLESS, "cli.py"))


@pytest.mark.parametrize("path", sorted(modules(HEADLESS)), ids=lambda p: os.path.relpath(p, HEADLESS))
def test_headless_imports_only_the_core_and_the_stdlib(path):
    import sys

    bad = []
    for name, line in imports(path):
        root = name.split(".")[0]
        if root == "satclassify_plugin":
            if not name[len("satclassify_plugin.") :].startswith(HEADLESS_OWN):
                bad.append((name, line, f"headless imports only satclassify_plugin.{HEADLESS_OWN}"))
        elif root in FORBIDDEN or not (
            root in sys.stdlib_module_names or root in HEADLESS_THIRD or root == "__future__"
        ):
            bad.append(
                (
                    name,
                    line,
                    f"headless imports no qgis/PyQt/torch/processing, only the stdlib, {', '.join(HEADLESS_THIRD)}",
                )
            )
    assert not bad, f"{path}: {bad}"


def test_headless_guardrail_catches_a_qgis_import(tmp_path):
    fake = os.path.join(HEADLESS, "_probe_bad.py")
    with open(fake, "w") as f:
        f.write("from qgis.core import QgsRasterLayer\nfrom ..algorithms import classify\n")
    try:
        with pytest.raises(AssertionError, match=r"headless imports"):
            test_headless_imports_only_the_core_and_the_stdlib(fake)
    finally:
        os.remove(fake)


ALGORITHMS = os.path.join(PLUGIN, "algorithms")
#: the shared, non-tool modules of algorithms/: the algorithm base, the layer styles, the layer-path helpers
#: (and any module whose name starts with "_", e.g. _sentinel2.py: helpers shared by the Sentinel-2 tools)
SHARED_ALGORITHM_MODULES = ("__init__",) + SHARED_MODULES


def tool_modules():
    """The algorithms/*.py that hold one tool each (not "_*", not the shared modules)."""
    return sorted(
        f[:-3]
        for f in os.listdir(ALGORITHMS)
        if f.endswith(".py") and not f.startswith("_") and f[:-3] not in SHARED_ALGORITHM_MODULES
    )


def tool_imports_of_tools(path):
    """(tool module, line) for every import in ``path`` that reaches another tool module of algorithms/."""
    tools = set(tool_modules())
    own = os.path.basename(path)[:-3]
    bad = []
    for name, line in imports(path):
        parts = name.split(".")
        if parts[:2] == ["satclassify_plugin", "algorithms"] and len(parts) > 2 and parts[2] in tools - {own}:
            bad.append((parts[2], line))
    return bad


#: tools still borrowing from another tool (none: importsafe's helpers moved to _sentinel2.py)
_BORROWING: dict = {}


@pytest.mark.parametrize("tool", [pytest.param(t, marks=_BORROWING.get(t, ())) for t in tool_modules()])
def test_no_tool_module_imports_another_tool_module(tool):
    """A tool shares code through base / styles / layers / _*.py or core, never by importing another tool."""
    bad = tool_imports_of_tools(os.path.join(ALGORITHMS, tool + ".py"))
    assert not bad, (
        f"algorithms/{tool}.py imports the tool module(s) {bad}: move what they share into "
        "algorithms/base.py, styles.py, layers.py, a '_' module, or core"
    )


def test_tool_guardrail_catches_a_tool_importing_a_tool(tmp_path):
    assert {"classify", "classifypatches", "fetchsentinel2"} <= set(tool_modules())
    assert not {"base", "styles", "layers", "_sentinel2"} & set(tool_modules())
    probe = os.path.join(ALGORITHMS, "_probe_tool.py")
    with open(probe, "w") as f:
        f.write(
            "from .classify import ClassifyAlgorithm\nfrom .layers import input_and_extent\n"
            "from satclassify_plugin.algorithms import generalize\n"
        )
    try:
        assert tool_imports_of_tools(probe) == [("classify", 1), ("generalize", 3)]
    finally:
        os.remove(probe)


#: core modules still taking loose progress / cancel callables: the feedback contract itself (Monitor is made of
#: them) and the HTTP watchdog (network branch). Rasterizing (labels/rasterize.py) takes ``monitor=`` like the rest
LOOSE_FEEDBACK_ALLOWED = ("contract/feedback.py", "net/")


def loose_feedback_params(path):
    """(function, parameter, line) of every ``progress`` / ``is_canceled`` parameter in ``path``."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for a in node.args.args + node.args.kwonlyargs:
                if a.arg in ("progress", "is_canceled"):
                    out.append((node.name, a.arg, node.lineno))
    return out


@pytest.mark.parametrize("path", sorted(modules(CORE)), ids=lambda p: os.path.relpath(p, CORE))
def test_core_takes_one_monitor_not_loose_callbacks(path):
    """One feedback convention in core: a long call takes ``monitor=`` (contract.feedback.Monitor)."""
    rel = os.path.relpath(path, CORE).replace(os.sep, "/")
    if rel.startswith(LOOSE_FEEDBACK_ALLOWED):
        return
    bad = loose_feedback_params(path)
    assert not bad, (
        f"core/{rel} takes loose feedback callables {bad}: take monitor: Optional[Monitor] = None "
        "and call monitor.progress / monitor.info / monitor.check (monitor.sub for a step)"
    )


def test_feedback_guardrail_catches_loose_callbacks(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("def f(a, progress=None, *, is_canceled=None):\n    pass\ndef g(monitor=None):\n    pass\n")
    assert loose_feedback_params(str(p)) == [("f", "progress", 1), ("f", "is_canceled", 1)]


def test_feedback_allow_list_names_existing_modules():
    """An allow-list entry for a module that is gone (or converted) would silently exempt whatever comes next."""
    for entry in LOOSE_FEEDBACK_ALLOWED:
        assert os.path.exists(os.path.join(CORE, entry)), f"stale entry {entry!r} in LOOSE_FEEDBACK_ALLOWED"
        if entry != "contract/feedback.py":
            assert any(
                loose_feedback_params(p)
                for p in modules(CORE)
                if os.path.relpath(p, CORE).replace(os.sep, "/").startswith(entry)
            ), f"{entry!r} takes no loose callables any more: remove it from LOOSE_FEEDBACK_ALLOWED"


def test_long_core_calls_take_monitor_not_callbacks():
    """The rasterizing entry points take ``monitor=`` (the last core calls that took progress/is_canceled/log), and
    nothing spreads a monitor back into loose callables (``Monitor.callbacks()`` is gone)."""
    from satclassify_plugin.core.contract.feedback import Monitor

    assert not hasattr(Monitor, "callbacks")
    path = os.path.join(CORE, "labels", "rasterize.py")
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name in ("rasterize_clc", "rasterize_labels"):
            names = [a.arg for a in node.args.args + node.args.kwonlyargs]
            assert "monitor" in names and not {"progress", "is_canceled", "log"} & set(names), (node.name, names)
            found.add(node.name)
    assert found == {"rasterize_clc", "rasterize_labels"}
    root = os.path.dirname(CORE)
    for p in modules(root):
        with open(p, encoding="utf-8") as f:
            assert ".callbacks()" not in f.read(), f"{os.path.relpath(p, root)} spreads a monitor into callables"
