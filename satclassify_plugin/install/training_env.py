"""The training environment: the Python that runs ``python -m training`` for the trainmodel tool.

QGIS's own Python never gets torch: training runs in a separate environment, found in this order:

1. the environment variable ``SATCLASSIFY_TRAINING_PYTHON`` (``SATCLASSIFY_TRAIN_PYTHON``, the name the project's
   test scripts use, is read too): for ``qgis_process``, scripts and CI;
2. the QGIS setting ``SatClassify/training_python`` (Plugins > SatClassify > Set up training environment... >
   "Use an existing environment"): the Python of any environment where torch and the training requirements are
   installed, e.g. the project's ``.venv-train/bin/python``;
3. the plugin-owned environment ``<profile>/python/satclassify_training_env`` made by "Set up training
   environment..." (:func:`create_env`), used once its marker file says the set-up finished.

The training package's code comes with the plugin (``training_pkg/`` in the zip, the repository's ``training/`` in a
checkout): :func:`child_env` puts it first on the child's ``PYTHONPATH``, together with the folder holding the
plugin (the training package imports ``satclassify_plugin.core.contract``), so the plugin and the training code
always agree on the model card and the dataset format. Pure Python (no qgis import).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Callable, List, Mapping, Optional, Tuple

from ..core.contract.errors import SatClassifyError
from ..core.contract.feedback import Monitor

ENV_VARS = ("SATCLASSIFY_TRAINING_PYTHON", "SATCLASSIFY_TRAIN_PYTHON")
SETTING = "SatClassify/training_python"
ENV_DIR_NAME = "satclassify_training_env"
MARKER = "satclassify-training-env.json"
PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: the training package's code inside the plugin zip (scripts/build_zip.py puts it there)
BUNDLED = os.path.join(PLUGIN_DIR, "training_pkg")
SETUP_HINT = (
    "Set one up with Plugins > SatClassify > Set up training environment... (it installs PyTorch and the "
    "training requirements into an environment of the plugin's own, QGIS's Python is not touched), or choose "
    "an existing environment there, or set the environment variable SATCLASSIFY_TRAINING_PYTHON to the "
    "Python of an environment with the training requirements (qgis_process, scripts)"
)


def env_dir(settings_dir: str) -> str:
    """The plugin-owned environment's folder inside a QGIS profile (QgsApplication.qgisSettingsDirPath())."""
    return os.path.join(settings_dir, "python", ENV_DIR_NAME)


def env_python(folder: str) -> str:
    return os.path.join(folder, "Scripts", "python.exe") if os.name == "nt" else os.path.join(folder, "bin", "python")


def training_source() -> Optional[str]:
    """The folder holding the ``training`` package the plugin runs: the copy in the zip, else the checkout's."""
    for folder in (BUNDLED, os.path.dirname(PLUGIN_DIR)):
        if os.path.isfile(os.path.join(folder, "training", "__main__.py")):
            return folder
    return None


def requirements_file() -> Optional[str]:
    for folder in (BUNDLED, os.path.dirname(PLUGIN_DIR)):
        p = os.path.join(folder, "requirements-training.txt")
        if os.path.isfile(p):
            return p
    return None


def resolve(
    setting: Optional[str], settings_dir: Optional[str], environ: Mapping[str, str] = os.environ
) -> Tuple[Optional[str], str]:
    """(Python of the training environment or None, where it came from / why there is none)."""
    for var in ENV_VARS:
        value = (environ.get(var) or "").strip()
        if value:
            if not os.path.isfile(value):
                return None, f"{var} is '{value}', which is no file: set it to a Python executable, or unset it"
            return value, f"environment variable {var}"
    if setting and str(setting).strip():
        value = str(setting).strip()
        if not os.path.isfile(value):
            return None, (
                f"the chosen training environment's Python '{value}' does not exist any more (setting {SETTING})"
            )
        return value, f"setting {SETTING}"
    if settings_dir:
        folder = env_dir(settings_dir)
        py = env_python(folder)
        if os.path.isfile(py) and os.path.isfile(os.path.join(folder, MARKER)):
            return py, f"the plugin's training environment {folder}"
        if os.path.isdir(folder):
            return None, f"the plugin's training environment {folder} was not set up completely"
    return None, "no training environment is set up"


def missing_message(why: str) -> str:
    return f"Train model needs a training environment with PyTorch: {why}. {SETUP_HINT}."


def child_env(environ: Mapping[str, str] = os.environ) -> dict:
    """The child's environment: PYTHONPATH is exactly the plugin's training code and the plugin's parent folder,
    unbuffered output. QGIS's own Python variables never reach the other interpreter: QGIS sets PYTHONPATH (and on
    Windows PYTHONHOME) to its own packages, whose numpy and GDAL would shadow the training environment's."""
    env = {
        k: v
        for k, v in environ.items()
        if k not in ("PYTHONHOME", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "PYTHONPATH", "PYTHONUSERBASE")
    }
    paths = [p for p in (training_source(), os.path.dirname(PLUGIN_DIR)) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("PYTHONIOENCODING", "utf-8")
    return env


# --- the plugin-owned environment ---------------------------------------------------------------------------------
def read_requirements(path: Optional[str] = None) -> List[str]:
    """The training requirements (the test-only packages left out)."""
    path = path or requirements_file()
    if not path:
        raise SatClassifyError("the plugin carries no requirements-training.txt: reinstall the plugin")
    reqs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line and not line.lower().startswith(("pytest",)):
                reqs.append(line)
    return reqs


def pip_install_command(
    python: str, reqs: List[str], torch_index: str = "", find_links: str = "", no_index: bool = False
) -> List[str]:
    cmd = [
        python,
        "-m",
        "pip",
        "install",
        "--upgrade",
        "--disable-pip-version-check",
        "--no-warn-script-location",
        "--progress-bar",
        "off",
    ]
    if torch_index:
        cmd += ["--extra-index-url", torch_index]
    if find_links:
        cmd += ["--find-links", find_links]
    if no_index:
        cmd += ["--no-index"]
    return cmd + list(reqs)


def create_env(
    folder: str,
    base_python: str,
    reqs: List[str],
    *,
    torch_index: str = "",
    find_links: str = "",
    no_index: bool = False,
    log: Callable[[str], None] = print,
    monitor: Optional[Monitor] = None,
    gpu: Optional[bool] = None,
) -> str:
    """Create (or update) the virtual environment ``folder`` with ``base_python -m venv`` and pip-install ``reqs``
    into it; the marker file is written last, so a failed or cancelled set-up is never taken for a working one.
    Returns the environment's Python. Raises SatClassifyError with pip's last lines on failure. ``monitor``: progress
    (a fraction of the set-up) and cancel."""
    from ..core.trainrun.child import child_message, run_child

    monitor = monitor or Monitor()
    py = env_python(folder)
    marker = os.path.join(folder, MARKER)
    if os.path.exists(marker):
        os.remove(marker)  # an update that fails leaves an environment that is not taken as complete
    lines: List[str] = []

    def run(cmd, what, start, end):
        n = [0]

        def out(line):
            lines.append(line)
            n[0] += 1
            if line.startswith(("Collecting", "Downloading", "Installing", "Successfully", "Requirement")):
                log(line)
            monitor.progress(start + (end - start) * (1 - 1 / (1 + n[0] / 20)))

        res = run_child(cmd, on_stdout=out, on_stderr=out, monitor=monitor, env=_clean_env())
        if res.canceled:
            raise SatClassifyError(
                f"{what} cancelled: the training environment {folder} is not complete; run the set-up again"
            )
        if res.returncode != 0:
            tail = "\n".join(lines[-8:])
            raise SatClassifyError(
                f"{what} failed (exit code {res.returncode}):\n{tail}\n"
                "Check the network connection (or the wheel folder), then run the set-up again; "
                f"{child_message(res, what)}"
            )

    if not os.path.isfile(py):
        log(f"Creating the training environment {folder} with {base_python}")
        run([base_python, "-m", "venv", folder], "creating the environment (python -m venv)", 0.0, 0.05)
    log("Installing " + ", ".join(reqs))
    run(pip_install_command(py, reqs, torch_index, find_links, no_index), "pip install", 0.05, 0.95)
    check = run_child([py, "-c", "import sys; print(sys.version.split()[0])"], env=_clean_env())
    if check.returncode != 0:
        raise SatClassifyError(f"the new environment's Python {py} does not run: {child_message(check)}")
    with open(marker + ".part", "w", encoding="utf-8") as f:
        json.dump(
            {
                "requirements": reqs,
                "torch_index": torch_index,
                "gpu": gpu,
                "base_python": base_python,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
            f,
            indent=1,
        )
    os.replace(marker + ".part", marker)
    monitor.progress(1.0)
    log(f"Training environment ready: {py}")
    return py


def _clean_env() -> dict:
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PIP_TARGET", "PIP_USER")
    }


def probe(python: str, timeout: float = 120) -> dict:
    """``python -m training diagnose`` in the training environment: its Python, torch, CUDA, GPUs (a dict; on
    failure ``{"error": "<one line>"}``)."""
    try:
        out = subprocess.run(
            [python, "-m", "training", "diagnose"], capture_output=True, text=True, env=child_env(), timeout=timeout
        )
    except (OSError, subprocess.SubprocessError) as e:
        return {"error": f"cannot run {python}: {e}"}
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                break
    lines = [x for x in (out.stderr or out.stdout).splitlines() if x.strip()]
    last = lines[-1] if lines else f"exit code {out.returncode}"
    return {"error": last[len("error: ") :] if last.startswith("error: ") else last}


def base_python() -> str:
    """The Python that creates the environment: QGIS's own (``deps.python_executable``), or this interpreter."""
    from .deps import python_executable

    try:
        return python_executable()
    except SatClassifyError:
        return sys.executable
