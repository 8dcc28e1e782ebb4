"""The plugin against QGIS 4's API: its qgis.* names against tests/data/qgis4_api.json, its Qt code against PyQt6.

No QGIS 4 build installs on these machines. Instead:
* every ``from qgis.core|gui|analysis import Name``, every ``Name.attr.attr`` the plugin, scripts and benchmarks
  use, compat.py's QGIS-4 spellings, and the methods called on objects whose QGIS class the source fixes
  (``self.addParameter`` in a QgsProcessingAlgorithm subclass, ``context.project()``, ``p = QgsField(...); p.x``)
  are resolved in the data file that scripts/qgis4_api.py derives from QGIS 4's PyQt6 binding files
  (``python/PyQt6/core/auto_generated/**/*.sip.in`` of qgis/QGIS, commits recorded per class): a class it lacks,
  a member missing from a class whose member list is complete (inherited members included), an enum member
  missing from its enum, or a name listed as removed in QGIS 4 fails;
* every module of the plugin is imported in a separate process against real PyQt6 (Debian's python3-pyqt6, set up
  by scripts/setup.sh), ``qgis.PyQt`` being PyQt6 and ``qgis.core`` stubs built from the same data file
  (tests/plugin/pyqt6_import_check.py); every Qt ``Name.attr.attr`` the plugin uses must resolve in PyQt6.
The check reads only the JSON file: no network, no QGIS 4 at test time.
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


def test_data_file_names_its_source():
    """Every class read from a binding file names the file and commit; the commits say what QGIS they are."""
    data = load()
    assert "4" in data["qgis"]["release"] and data["qgis"]["read_from"]
    commits = data["qgis"]["commits"]
    assert commits and all(c["what"] and "date" in c for c in commits.values())
    assert any(c.get("qgis4") for c in commits.values())
    read = {k: e for k, e in data["classes"].items() if e["status"] == "read"}
    for cls, entry in data["classes"].items():
        assert entry["module"] in qgis4_api.QGIS_MODULES, cls
        assert entry["status"] in ("read", "unconfirmed"), cls
    for cls, entry in read.items():
        assert entry["file"].startswith("python/PyQt6/"), cls
        assert entry["commit"] in commits, cls
        assert entry["qgis4"] == bool(commits[entry["commit"]].get("qgis4")), cls
    # the Processing API the plugin is built on comes from QGIS 4 versions of the files
    for cls in (
        "Qgis",
        "QgsProcessingAlgorithm",
        "QgsProcessingContext",
        "QgsProcessingProvider",
        "QgsProcessingParameterNumber",
        "QgsProcessingParameterDefinition",
        "QgsApplication",
    ):
        assert read[cls]["qgis4"] and read[cls]["complete"], cls
    assert len(read) >= 90


def test_plugin_names_exist_in_qgis4():
    data = load()
    used = qgis4_api.used_names()
    r = qgis4_api.resolve(data, used)
    print(qgis4_api.report_line(data, used))
    if r["unconfirmed"]:
        print(f"classes not yet read from a QGIS 4 binding file: {r['unconfirmed']}")
    if r["unchecked"]:
        print(f"names on classes whose member list was not read whole: {r['unchecked']}")
    assert not r["missing"], "names the plugin uses that QGIS 4 lacks:\n" + "\n".join(r["missing"])
    c = r["counts"]
    assert c["names"] >= 150 and c["classes"] >= 60 and c["members"] >= 110 and c["enum_members"] >= 20, c


def test_every_used_class_is_in_the_data_file():
    """A new qgis.* import must be added to the data file (scripts/qgis4_api.py from-sip), never skipped."""
    used = qgis4_api.wanted_classes(qgis4_api.used_names())
    assert used - set(load()["classes"]) == set()


FABRICATED = """
from qgis.core import (Qgis, QgsFeatureSink, QgsMapLayerType, QgsProcessingAlgorithm, QgsProcessingParameterNumbr,
                       QgsProcessingParameterNumber)

a = Qgis.ProcessingSourceType.VectorPolygn
b = Qgis.ProcessingSourceType.VectorPolygon
c = QgsFeatureSink.Flag.FastInsert
d = QgsFeatureSink.addFeatureV2
e = Qgis.QGIS_VERSION_INT
f = QgsMapLayerType.RasterLayer


class Alg(QgsProcessingAlgorithm):
    def helper(self):
        return 1

    def processAlgorithm(self, parameters, context, feedback):
        self.helper()
        self.parameterAsRasterLayer(parameters, "IN", context)
        self.parameterAsRastrLayer(parameters, "IN", context)
        context.addLayerToLoadOnCompletin("x", None)
        context.project()
        feedback.pushInf("x")
        feedback.isCanceled()
        p = QgsProcessingParameterNumber("N")
        p.setMinimun(1)
        p.setFlags(p.flags())
        return {}
"""


def test_the_check_catches_fabricated_and_removed_names(tmp_path):
    """Negative self-test: misspelled classes, members, enum members and methods (on self, on the Processing
    context / feedback arguments, on a local object), and names QGIS 4 removed, all fail; the real spellings
    next to them pass."""
    src = tmp_path / "fabricated.py"
    src.write_text(FABRICATED)
    data = load()
    data = {**data, "removed_in_qgis4": {**data["removed_in_qgis4"], "QgsMapLayerType": "Qgis.LayerType"}}
    r = qgis4_api.resolve(data, qgis4_api.used_names([str(src)]))
    text = "\n".join(r["missing"])
    for bad in (
        "QgsProcessingParameterNumbr (",
        "Qgis.ProcessingSourceType.VectorPolygn",
        "QgsFeatureSink.addFeatureV2",
        "Qgis.QGIS_VERSION_INT",
        "QgsMapLayerType (",
        "QgsProcessingAlgorithm.parameterAsRastrLayer",
        "QgsProcessingContext.addLayerToLoadOnCompletin",
        "QgsProcessingParameterNumber.setMinimun",
    ):
        assert bad in text, (bad, text)
    # QgsProcessingFeedback derives (through QgsFeedback) from QObject: a name neither class has is left to PyQt6,
    # where test_qt_names_resolve_in_pyqt6 looks it up
    assert list(r["qt"]) == ["QObject.pushInf"] and "QgsProcessingFeedback.pushInf (" in r["qt"]["QObject.pushInf"]
    for good in (
        "VectorPolygon (",
        "FastInsert",
        "parameterAsRasterLayer (",
        ".helper",
        "project (",
        "isCanceled",
        "setFlags",
        "flags (",
    ):
        assert good not in text, (good, text)
    assert len(r["missing"]) == 9, text  # QgsMapLayerType is imported and used: both reported


def test_the_check_follows_inheritance_and_partial_lists():
    """An inherited member resolves through the QGIS base class; a member of a class read only in part is
    reported as unchecked, not as missing and not as found."""
    data = {
        "qgis": {},
        "classes": {
            "QgsBase": {"module": "qgis.core", "complete": True, "members": ["baseMethod"], "enums": {}, "bases": []},
            "QgsChild": {
                "module": "qgis.core",
                "complete": True,
                "members": ["own"],
                "enums": {},
                "bases": ["QgsBase"],
            },
            "QgsWidgetish": {"module": "qgis.core", "complete": True, "members": [], "enums": {}, "bases": ["QObject"]},
            "QgsPartial": {"module": "qgis.core", "complete": False, "members": ["known"], "enums": {}, "bases": []},
        },
    }
    used = {
        ("qgis.core", n): [("x.py", 1)]
        for n in ("QgsChild.baseMethod", "QgsChild.own", "QgsChild.nope", "QgsWidgetish.objectName", "QgsPartial.other")
    }
    r = qgis4_api.resolve(data, used)
    assert r["missing"] == ["qgis.core.QgsChild.nope (x.py:1): QgsChild has no member nope in QGIS 4"]
    assert r["unchecked"] == ["qgis.core.QgsPartial.other"]
    assert r["qt"] == {"QObject.objectName": "qgis.core.QgsWidgetish.objectName (x.py:1)"}


SIP_SAMPLE = """/* a binding file as sipify writes it (written for this test) */
%ModuleHeaderCode
#include <x.h>
%End

class QgsThing : QgsBase
{
%Docstring(signature="appended")
A thing. NotAMember( x ) in prose.
%End

%TypeHeaderCode
#include "qgsthing.h"
%End
  public:
    enum class Kind /BaseType=IntEnum/
    {
      First,
      // a comment
      Second = 3,
    };
    typedef QFlags<QgsThing::Kind> Kinds;

    QgsThing( const QString &name,
              const QVariant &value = QVariant() );
%Docstring
Constructor.
%End

    static QgsThing *fromName( const QString &name ) /Factory/;
    virtual QString describe() const = 0 /HoldGIL/;

    struct Options
    {
      Options();
      double dpi;
      QList< int > pages;
    };

%If (HAVE_EXTRA)
    void extra();
%End
    QString label;

  signals:
    void changed();

  protected:
    void helper();

  private:
    void hidden();
    QgsThing( const QgsThing &other );
};

QFlags<QgsThing::Kind> operator|(QgsThing::Kind f1, QFlags<QgsThing::Kind> f2);
"""


def test_parse_sip_reads_a_binding_file():
    classes = qgis4_api.parse_sip(SIP_SAMPLE)
    thing = classes["QgsThing"]
    assert thing["bases"] == ["QgsBase"]
    assert thing["enums"] == {"Kind": ["First", "Second"]}
    assert set(thing["members"]) == {
        "Kind",
        "Kinds",
        "fromName",
        "describe",
        "Options",
        "extra",
        "label",
        "changed",
        "helper",
    }
    assert set(classes["QgsThing.Options"]["members"]) == {"dpi", "pages"}


def test_from_sip_builds_the_data_file(tmp_path):
    """``from-sip``: classes read from the folder carry their file, commit and QGIS 4 evidence; a wanted class
    the folder lacks keeps its previous entry, marked unconfirmed; QGIS base classes come along."""
    folder = tmp_path / "sip" / "python" / "PyQt6" / "core" / "auto_generated"
    folder.mkdir(parents=True)
    (folder / "qgsthing.sip.in").write_text(
        "// qgis/QGIS python/PyQt6/core/auto_generated/qgsthing.sip.in @ abcdef1234567\n" + SIP_SAMPLE
    )
    (folder / "qgsbase.sip.in").write_text(
        "// qgis/QGIS x @ 7654321fedcba\nclass QgsBase\n{\n  public:\n    baseMethod();\n};\n"
    )
    manifest = {"commits": {"abcdef1234567": {"date": "2026-03-01", "what": "4.0", "qgis4": True}}}
    found = qgis4_api.read_tree(str(tmp_path / "sip"), manifest)
    previous = {"classes": {"QgsGone": {"module": "qgis.core", "members": ["a"], "enums": {}}}}
    data = qgis4_api.build(found, previous, {"QgsThing", "QgsGone"}, {"release": "4.0"})
    assert set(data["classes"]) == {"QgsThing", "QgsThing.Options", "QgsBase", "QgsGone"}
    thing = data["classes"]["QgsThing"]
    assert (thing["file"], thing["commit"], thing["date"], thing["qgis4"], thing["status"]) == (
        "python/PyQt6/core/auto_generated/qgsthing.sip.in",
        "abcdef1234567",
        "2026-03-01",
        True,
        "read",
    )
    assert data["classes"]["QgsBase"]["qgis4"] is False
    assert data["classes"]["QgsGone"]["status"] == "unconfirmed"
    used = {("qgis.core", "QgsThing.baseMethod"): [("x.py", 1)], ("qgis.core", "QgsThing.Kind.Third"): [("x.py", 2)]}
    assert qgis4_api.resolve(data, used)["missing"] == [
        "qgis.core.QgsThing.Kind.Third (x.py:2): QgsThing.Kind has no member Third in QGIS 4"
    ]


def test_extract_reads_a_whole_checkout(tmp_path, monkeypatch):
    """``extract``: a QGIS 4 checkout read at one commit; every class read from its PyQt6 binding files carries that
    commit, and the PyQt5 copies under python/core are not read when a PyQt6 tree exists."""
    sip = tmp_path / "QGIS" / "python" / "PyQt6" / "core" / "auto_generated"
    sip.mkdir(parents=True)
    (sip / "qgis.sip.in").write_text("class Qgis\n{\n  public:\n    static versionInt();\n};\n")
    old = tmp_path / "QGIS" / "python" / "core" / "auto_generated"
    old.mkdir(parents=True)
    (old / "qgsold.sip.in").write_text("class QgsProcessingAlgorithm\n{\n  public:\n    gone();\n};\n")
    out = tmp_path / "api.json"
    monkeypatch.setattr(qgis4_api, "DATA", str(out))
    qgis4_api.main(
        [
            "extract",
            "--qgis-src",
            str(tmp_path / "QGIS"),
            "--ref",
            "final-4_0_0",
            "--commit",
            "abc1234",
            "--date",
            "2026-02-20",
        ]
    )
    data = json.loads(out.read_text())
    assert data["qgis"]["commits"] == {"abc1234": {"date": "2026-02-20", "what": "final-4_0_0", "qgis4": True}}
    qgis = data["classes"]["Qgis"]
    assert (qgis["commit"], qgis["qgis4"], qgis["members"], qgis["status"]) == ("abc1234", True, ["versionInt"], "read")
    assert data["classes"]["QgsProcessingAlgorithm"]["status"] == "unconfirmed"


def test_compat_uses_its_qgis4_spellings():
    """compat.py's first choice for each name is a QGIS 4 name (it is what a QGIS 4 build runs), and its version
    number comes from Qgis.versionInt(), which QGIS 4's binding has (QGIS_VERSION_INT is a 3.x Python alias)."""
    paths = {f"Qgis.{'.'.join(chain)}" for _, owner, chain in qgis4_api.compat_new_paths() if owner == "Qgis"}
    assert len(paths) >= 15
    used = {name for (module, name) in qgis4_api.used_names() if module == "qgis.core"}
    assert paths <= used
    assert "Qgis.versionInt" in used and "Qgis.QGIS_VERSION_INT" not in used
    assert "versionInt" in load()["classes"]["Qgis"]["members"]
    from qgis.core import Qgis

    from satclassify_plugin import compat

    assert compat.QGIS_VERSION_INT == Qgis.versionInt() == Qgis.QGIS_VERSION_INT


def test_report_prints_counts_and_commits():
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "qgis4_api.py"), "report"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    assert "QGIS 4 API check:" in line and "0 missing" in line, line
    for commit in load()["qgis"]["commits"]:
        assert commit[:10] in line, (commit, line)


def _pyqt6():
    try:
        out = subprocess.run(
            [sys.executable, "-c", "import PyQt6.QtCore as c; print(c.QT_VERSION_STR)"],
            capture_output=True,
            text=True,
            timeout=120,
        )
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
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "plugin", "pyqt6_import_check.py")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_plugin_imports_against_pyqt6(pyqt6_import):
    r = pyqt6_import
    print(f"PyQt6 {r['pyqt']} (Qt {r['qt']}): {len(r['imported'])} plugin modules imported, {len(r['failed'])} failed")
    assert not r["failed"], "\n".join(f"{k}: {v}" for k, v in r["failed"].items())
    assert len(r["imported"]) >= 60


def test_qt_names_resolve_in_pyqt6():
    """Every ``from qgis.PyQt.X import Y`` and ``Y.attr.attr`` the plugin uses exists in PyQt6 (QAction only via
    its QtGui home: compat.py tries QtGui first), and so does every member of a QGIS class that QGIS 4's binding
    inherits from a Qt class (``QgsApplication.exit`` is ``QApplication.exit``)."""
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
    inherited = qgis4_api.resolve(load(), qgis4_api.used_names())["qt"]
    assert "QApplication.exit" in inherited
    for name, where in inherited.items():
        wanted[f"*:{name}"] = where
    code = (
        "import importlib, json, sys\nbad = []\nfor key in json.loads(sys.stdin.read()):\n"
        "    module, path = key.split(':')\n"
        "    mods = ['PyQt6.QtCore', 'PyQt6.QtGui', 'PyQt6.QtWidgets'] if module == '*' else "
        "[module.replace('qgis.PyQt', 'PyQt6')]\n"
        "    for m in mods:\n        obj = importlib.import_module(m)\n"
        "        try:\n            for part in path.split('.'):\n                obj = getattr(obj, part)\n"
        "            break\n        except AttributeError:\n            pass\n"
        "    else:\n        bad.append(key)\nprint(json.dumps(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(sorted(wanted)), capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    bad = json.loads(out.stdout)
    # QAction from QtWidgets is compat.py's Qt5 fallback (tried after QtGui); QVariant.Type is compat's pre-3.38 branch
    allowed = {"qgis.PyQt.QtWidgets:QAction"} | {k for k in bad if k.startswith("qgis.PyQt.QtCore:QVariant.Type")}
    print(f"Qt names checked against PyQt6: {len(wanted)}")
    assert set(bad) <= allowed, [f"{k} ({wanted[k]})" for k in bad if k not in allowed]
    assert len(wanted) >= 40
