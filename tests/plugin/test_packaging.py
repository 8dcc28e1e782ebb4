"""The plugin zip follows the QGIS plugin repository rules, and qgis_process sees the provider."""

import configparser
import os
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import build_zip  # noqa: E402

REQUIRED_KEYS = (
    "name",
    "qgisMinimumVersion",
    "description",
    "about",
    "version",
    "author",
    "email",
    "repository",
    "tracker",
    "homepage",
    "tags",
    "hasProcessingProvider",
    "experimental",
    "changelog",
)


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist") / "satclassify_plugin.zip"
    build_zip.build_zip(str(out))
    return out


def test_zip_layout(built_zip):
    with zipfile.ZipFile(built_zip) as z:
        names = z.namelist()
        assert z.testzip() is None
    roots = {n.split("/")[0] for n in names}
    assert roots == {"satclassify_plugin"}
    for required in (
        "__init__.py",
        "metadata.txt",
        "LICENSE",
        "provider.py",
        "plugin.py",
        "core/contract/data/clc_legend.csv",
        "resources/icons/satclassify.svg",
    ):
        assert f"satclassify_plugin/{required}" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
    assert not [n for n in names if n.split("/")[1] in ("tests", "training")]
    # the pip-installed satclassify command is not part of the plugin (docs/headless.md)
    assert os.path.isdir(os.path.join(build_zip.ROOT, "satclassify_plugin", "headless"))
    assert not [n for n in names if n.startswith("satclassify_plugin/headless/")]
    # the training package's code rides along (for the training environment), without tests
    for required in (
        "training/__main__.py",
        "training/cli.py",
        "training/diagnose.py",
        "training/models/specs.py",
        "requirements-training.txt",
    ):
        assert f"satclassify_plugin/training_pkg/{required}" in names
    assert not [n for n in names if "/tests/" in n or n.split("/")[-1].startswith("test_")]
    assert os.path.getsize(built_zip) < 25 * 1024 * 1024


def test_zip_metadata_has_required_keys(built_zip):
    with zipfile.ZipFile(built_zip) as z:
        text = z.read("satclassify_plugin/metadata.txt").decode("utf-8")
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(text)
    general = cfg["general"]
    missing = [k for k in REQUIRED_KEYS if not general.get(k, "").strip()]
    assert not missing, f"metadata.txt lacks {missing}"
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["hasProcessingProvider"] == "yes"
    with zipfile.ZipFile(built_zip) as z:
        assert f"satclassify_plugin/{general['icon']}" in z.namelist()


def test_zip_imports_in_isolation(built_zip, tmp_path):
    """The zipped package imports on its own (no dependency on the repository layout)."""
    with zipfile.ZipFile(built_zip) as z:
        z.extractall(tmp_path)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import satclassify_plugin, "
        "satclassify_plugin.core.contract.clc as c;"
        "assert satclassify_plugin.__file__.startswith(sys.argv[1]); print(len(c.legend()))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "44"


def test_the_zip_runs_its_training_package_in_a_training_env(built_zip, tmp_path):
    """A zip-only user: the training environment runs the zip's copy of the training package (the code comes with
    the plugin, the environment only needs the requirements)."""
    train_py = os.environ.get("SATCLASSIFY_TRAIN_PYTHON") or os.environ.get("SATCLASSIFY_TRAINING_PYTHON")
    if not train_py:
        pytest.skip("no training environment (SATCLASSIFY_TRAIN_PYTHON)")
    with zipfile.ZipFile(built_zip) as z:
        z.extractall(tmp_path)
    plugin = tmp_path / "satclassify_plugin"
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from satclassify_plugin.install import training_env as t; "
        "import json; print(json.dumps([t.training_source(), t.requirements_file(), "
        "t.child_env({})['PYTHONPATH']]))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    import json

    source, reqs, pythonpath = json.loads(out.stdout)
    assert source == str(plugin / "training_pkg") and reqs == str(plugin / "training_pkg" / "requirements-training.txt")
    assert pythonpath.split(os.pathsep) == [source, str(tmp_path)]
    r = subprocess.run(
        [train_py, "-m", "training", "diagnose"],
        capture_output=True,
        text=True,
        cwd="/",
        env=dict(os.environ, PYTHONPATH=pythonpath),
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["training_package"] == str(plugin / "training_pkg" / "training")


def test_qgis_process_lists_the_provider(tmp_path):
    cfg = tmp_path / "qgis-config"
    build_zip.install_profile(str(cfg))
    env = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(cfg), QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR=str(tmp_path))
    out = subprocess.run(["/usr/bin/qgis_process.bin", "list"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "SatClassify" in out.stdout
    from satclassify_plugin.algorithms import algorithm_classes

    for cls in algorithm_classes():
        assert f"satclassify:{cls.ALGORITHM_ID}" in out.stdout


def test_install_keeps_an_identical_copy_and_replaces_a_stale_one(tmp_path):
    """qgis_process.sh installs on every call: an up-to-date copy must be left alone (parallel runs load it),
    a stale one replaced whole."""
    plugins = tmp_path / "plugins"
    target = build_zip.install(str(plugins))
    marker = os.path.join(target, "provider.py")
    before = os.stat(marker).st_ino
    assert build_zip.install(str(plugins)) == target
    assert os.stat(marker).st_ino == before  # not copied again
    with open(os.path.join(target, build_zip.STAMP), "w") as f:
        f.write("stale")
    open(os.path.join(target, "leftover.py"), "w").close()
    build_zip.install(str(plugins))
    assert not os.path.exists(os.path.join(target, "leftover.py"))
    assert os.stat(marker).st_ino != before
    assert sorted(os.listdir(plugins)) == [".satclassify-install.lock", "satclassify_plugin"]  # no temp copies


def test_parallel_qgis_process_runs_share_one_profile(tmp_path):
    """Several scripts/qgis_process.sh calls at once on a fresh profile all find the provider."""
    env = dict(
        os.environ,
        SATCLASSIFY_QGIS_CONFIG=str(tmp_path / "cfg"),
        QT_QPA_PLATFORM="offscreen",
        XDG_RUNTIME_DIR=str(tmp_path),
    )
    procs = [
        subprocess.Popen(
            ["bash", os.path.join(ROOT, "scripts", "qgis_process.sh"), "help", "satclassify:rasterizeclc"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "Rasterize" in out
