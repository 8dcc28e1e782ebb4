"""The plugin against QGIS 4's API: its qgis.* names against tests/data/qgis4_api.json, its Qt code against PyQt6.

No QGIS 4 build installs on these machines. Instead:
* every ``from qgis.core|gui|analysis import Name`` and every ``Name.attr.attr`` the plugin, scripts and benchmarks
  use (found by test_qt6_safe's walker; compat.py's QGIS-4 spellings included) is looked up in the data file that
  scripts/qgis4_api.py derives from QGIS 4's binding files: a class it lacks, a member missing from a class whose
  member list is complete, an enum member missing from its enum, or a name listed as removed in QGIS 4 fails;
* every module of the plugin is imported in a separate process against real PyQt6 (Debian's python3-pyqt6, set up
  by scripts/setup.sh), ``qgis.PyQt`` being PyQt6 and ``qgis.core`` stubs built from the same data file
  (tests/plugin/pyqt6_import_check.py); every Qt ``Name.attr.attr`` the plugin uses must resolve in PyQt6.
"""
import ast
import json
import os
import subprocess
import sys

import pytest

from .test_qt6_safe import ROOT, attribute_chains, qgis_imports, sources

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import qgis4_api  # noqa: E402

DATA = os.path.join(ROOT, "tests", "data", "qgis4_api.json")


def load():
    with open(DATA, encoding="utf-8") as f:
        return json.load(f)


def problems(data, used):
    """(missing, unconfirmed, checked): names QGIS 4 lacks per ``data``; names whose class is not yet read from
    a QGIS 4 binding file; how many names were looked at."""
    missing, unconfirmed, checked = [], set(), 0
    removed = data.get("removed_in_qgis4", {})
    for (module, name), where in sorted(used.items()):
        if module not in qgis4_api.QGIS_MODULES:
            continue
        checked += 1
        at = f"{where[0][0]}:{where[0][1]}"
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
            if ".".join(parts[:i]) in removed:
                missing.append(f"{module}.{name} ({at}): removed in QGIS 4, use {removed['.'.join(parts[:i])]}")
                break
        else:
            entry = data["classes"].get(parts[0])
            if entry is None or entry.get("module") != module:
                missing.append(f"{module}.{name} ({at}): no class {parts[0]} in {module} of QGIS 4")
                continue
            if entry.get("status") != "confirmed":
                unconfirmed.add(parts[0])
            if len(parts) >= 2 and entry.get("complete") and parts[1] not in entry["members"]:
                missing.append(f"{module}.{name} ({at}): {parts[0]} has no member {parts[1]} in QGIS 4")
            elif len(parts) >= 3 and parts[1] in entry.get("enums", {}) and parts[2] not in entry["enums"][parts[1]]:
                missing.append(f"{module}.{name} ({at}): {parts[0]}.{parts[1]} has no member {parts[2]} in QGIS 4")
    return missing, sorted(unconfirmed), checked


def test_data_file_names_its_source():
    data = load()
    assert data["qgis"]["release"].startswith("4") or "4_" in data["qgis"]["release"], data["qgis"]
    assert data["qgis"]["read_from"]
    for cls, entry in data["classes"].items():
        assert entry["module"] in qgis4_api.QGIS_MODULES, cls
        assert entry["status"] in ("confirmed", "unconfirmed"), cls
        assert entry["status"] == "unconfirmed" or entry.get("source") or data["qgis"]["commit"], cls


def test_plugin_names_exist_in_qgis4():
    data = load()
    missing, unconfirmed, checked = problems(data, qgis4_api.used_names())
    print(f"QGIS 4 API check against QGIS {data['qgis']['release']} {data['qgis']['commit']}: {checked} names, "
          f"{len(data['classes'])} classes ({len(unconfirmed)} not yet read from a QGIS 4 binding file)")
    assert checked >= 100
    assert not missing, "names the plugin uses that QGIS 4 lacks:\n" + "\n".join(missing)


def test_every_used_class_is_in_the_data_file():
    """A new qgis.* import must be added to the data file (scripts/qgis4_api.py), never silently skipped."""
    data = load()
    used = {name.split(".")[0] for (module, name) in qgis4_api.used_names() if module in qgis4_api.QGIS_MODULES}
    assert used - set(data["classes"]) == set()


def test_the_check_flags_removed_and_renamed_names(tmp_path):
    """Negative self-test: a name QGIS 4 removed, a member a complete class lacks and an enum member its enum
    lacks all fail; their present spellings pass."""
    src = tmp_path / "old.py"
    src.write_text("from qgis.core import QgsFeatureSink, QgsMapLayerType, QgsVectorFileWriter, QgsNotInQgis4\n"
                   "a = QgsMapLayerType.RasterLayer\n"
                   "b = QgsFeatureSink.Flag.FastInsert\n"
                   "c = QgsFeatureSink.Flag.SlowInsert\n"
                   "d = QgsFeatureSink.addFeatureV2\n"
                   "e = QgsVectorFileWriter.writeAsVectorFormat\n")
    data = load()
    data = {**data, "removed_in_qgis4": {**data["removed_in_qgis4"], "QgsMapLayerType": "Qgis.LayerType",
                                         "QgsVectorFileWriter.writeAsVectorFormat": "writeAsVectorFormatV3"}}
    missing, _, checked = problems(data, qgis4_api.used_names([str(src)]))
    text = "\n".join(missing)
    for bad in ("QgsMapLayerType (", "QgsMapLayerType.RasterLayer", "QgsFeatureSink.Flag.SlowInsert",
                "QgsFeatureSink.addFeatureV2", "QgsVectorFileWriter.writeAsVectorFormat (", "QgsNotInQgis4"):
        assert bad in text, (bad, text)
    assert "QgsFeatureSink.Flag.FastInsert" not in text
    assert len(missing) == 6, text


def test_compat_uses_its_qgis4_spellings():
    """compat.py's first choice for each name is a QGIS 4 name (it is what a QGIS 4 build runs)."""
    paths = {f"Qgis.{'.'.join(chain)}" for _, owner, chain in qgis4_api.compat_new_paths() if owner == "Qgis"}
    assert len(paths) >= 15
    used = {name for (module, name) in qgis4_api.used_names() if module == "qgis.core"}
    assert paths <= used


def _pyqt6():
    try:
        out = subprocess.run([sys.executable, "-c", "import PyQt6.QtCore as c; print(c.QT_VERSION_STR)"],
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@pytest.fixture(scope="module")
def pyqt6_import():
    if not _pyqt6():
        if os.environ.get("CI"):
            pytest.fail("PyQt6 is missing: scripts/setup.sh installs python3-pyqt6")
        pytest.skip("PyQt6 not installed (scripts/setup.sh installs python3-pyqt6)")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "plugin", "pyqt6_import_check.py")],
                         capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_plugin_imports_against_pyqt6(pyqt6_import):
    r = pyqt6_import
    print(f"PyQt6 {r['pyqt']} (Qt {r['qt']}): {len(r['imported'])} plugin modules imported, {len(r['failed'])} failed")
    assert not r["failed"], "\n".join(f"{k}: {v}" for k, v in r["failed"].items())
    assert len(r["imported"]) >= 60


def test_qt_names_resolve_in_pyqt6():
    """Every ``from qgis.PyQt.X import Y`` and ``Y.attr.attr`` the plugin uses exists in PyQt6 (QAction only via
    its QtGui home: compat.py tries QtGui first)."""
    if not _pyqt6():
        pytest.skip("PyQt6 not installed")
    wanted = {}
    for path in sources():
        tree = ast.parse(qgis4_api._read(path), path)
        imports = {k: v for k, v in qgis_imports(tree).items() if v[0].startswith("qgis.PyQt.")}
        for module, name in imports.values():
            wanted.setdefault(f"{module}:{name}", os.path.relpath(path, ROOT))
        for line, local, chain in attribute_chains(tree, imports):
            module, name = imports[local]
            wanted.setdefault(f"{module}:{'.'.join([name] + chain)}", f"{os.path.relpath(path, ROOT)}:{line}")
    code = ("import importlib, json, sys\nbad = []\nfor key in json.loads(sys.stdin.read()):\n"
            "    module, path = key.split(':')\n"
            "    obj = importlib.import_module(module.replace('qgis.PyQt', 'PyQt6'))\n"
            "    try:\n        for part in path.split('.'):\n            obj = getattr(obj, part)\n"
            "    except AttributeError:\n        bad.append(key)\nprint(json.dumps(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(sorted(wanted)), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    bad = json.loads(out.stdout)
    # QAction from QtWidgets is compat.py's Qt5 fallback (tried after QtGui); QVariant.Type is compat's pre-3.38 branch
    allowed = {"qgis.PyQt.QtWidgets:QAction"} | {k for k in bad if k.startswith("qgis.PyQt.QtCore:QVariant.Type")}
    print(f"Qt names checked against PyQt6: {len(wanted)}")
    assert set(bad) <= allowed, [f"{k} ({wanted[k]})" for k in bad if k not in allowed]
    assert len(wanted) >= 40
