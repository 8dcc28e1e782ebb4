"""Finding the training environment and the child's environment (install/training_env.py, no QGIS needed)."""

import os

from satclassify_plugin.install import training_env as t


def test_order_environment_variable_setting_plugin_env(tmp_path):
    py = tmp_path / "py"
    py.write_text("")
    other = tmp_path / "other"
    other.write_text("")
    assert t.resolve(str(other), None, {"SATCLASSIFY_TRAINING_PYTHON": str(py)}) == (
        str(py),
        "environment variable SATCLASSIFY_TRAINING_PYTHON",
    )
    assert t.resolve("", None, {"SATCLASSIFY_TRAIN_PYTHON": str(py)})[0] == str(py)  # the test scripts' name
    assert t.resolve(str(other), None, {}) == (str(other), f"setting {t.SETTING}")
    python, why = t.resolve("", None, {"SATCLASSIFY_TRAINING_PYTHON": str(tmp_path / "gone")})
    assert python is None and "no file" in why
    python, why = t.resolve(str(tmp_path / "gone"), None, {})
    assert python is None and "does not exist any more" in why
    profile = tmp_path / "profile"
    assert t.resolve("", str(profile), {}) == (None, "no training environment is set up")
    env = t.env_dir(str(profile))
    os.makedirs(os.path.dirname(t.env_python(env)))
    open(t.env_python(env), "w").close()
    assert "was not set up completely" in t.resolve("", str(profile), {})[1]  # no marker: not finished
    open(os.path.join(env, t.MARKER), "w").close()
    assert t.resolve("", str(profile), {}) == (t.env_python(env), f"the plugin's training environment {env}")
    assert "Set up training environment" in t.missing_message("no training environment is set up")


def test_child_env_carries_none_of_qgis_pythons_variables():
    env = t.child_env(
        {"PYTHONPATH": "/usr/share/qgis/python", "PYTHONHOME": "C:/OSGeo4W/apps/Python312", "PATH": "/bin"}
    )
    # in a checkout both are the repository root; in an installed zip training_pkg/, then the plugins folder
    assert env["PYTHONPATH"].split(os.pathsep) == list(
        dict.fromkeys([t.training_source(), os.path.dirname(t.PLUGIN_DIR)])
    )
    assert "PYTHONHOME" not in env and env["PATH"] == "/bin" and env["PYTHONUNBUFFERED"] == "1"


def test_requirements_leave_the_test_packages_out(tmp_path):
    reqs = t.read_requirements()
    assert any(r.startswith("torch==") for r in reqs) and not any(r.startswith("pytest") for r in reqs)
    cmd = t.pip_install_command("py", ["torch==2"], torch_index="https://example.invalid/cpu", find_links=str(tmp_path))
    assert cmd[:4] == ["py", "-m", "pip", "install"] and "--extra-index-url" in cmd and "--no-index" not in cmd
