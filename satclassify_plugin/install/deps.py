"""Installing SatClassify's optional Python packages into a plugin-owned folder.

QGIS ships its own Python with numpy and GDAL bindings built against each other; installing packages
into it with pip can replace numpy and break GDAL. SatClassify therefore installs onnxruntime (or
onnxruntime-gpu where an NVIDIA GPU is present), onnx, pystac-client, sentinelsat, requests and ukis-csmask with
``pip install --target <profile>/python/satclassify_deps``, constrained to the running numpy version, then
removes any numpy copy pip put there, and appends the folder to the END of ``sys.path`` so QGIS's own
numpy and GDAL always win.
"""

from __future__ import annotations

import glob
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Callable, List, Optional, Sequence

from ..core.contract.errors import SatClassifyError

DEPS_DIR_NAME = "satclassify_deps"
#: onnx is optional: with it the classify tool computes each head's argmax inside the model's graph
#: (faster, and on a GPU only the class indices come back to the host)
#: ukis-csmask: the cloud and shadow detector of satclassify:cloudmask and of L1C stacks (its ONNX models are in
#: its wheel, about 145 MB; it needs scipy, which pip adds when QGIS's Python lacks it)
BASE_REQUIREMENTS = (
    "onnx>=1.15,<2",
    "pystac-client>=0.7,<1",
    "sentinelsat>=1.2,<2",
    "requests>=2.28,<3",
    "ukis-csmask==1.0.0",
)
#: packages that must come from QGIS's own Python, never from the deps folder
#: (Qt5 and Qt6 builds of QGIS: a pip-installed PyQt6 or sip next to QGIS's own would break the GUI)
PROTECTED = ("numpy", "osgeo", "GDAL", "gdal", "PyQt5", "PyQt5_sip", "PyQt6", "PyQt6_sip", "sip", "qgis")


def deps_dir(settings_dir: str) -> str:
    """The plugin-owned folder inside a QGIS profile (QgsApplication.qgisSettingsDirPath())."""
    return os.path.join(settings_dir, "python", DEPS_DIR_NAME)


def has_nvidia_gpu() -> bool:
    """True when an NVIDIA driver and GPU are visible (nvidia-smi -L lists one, or /proc says so)."""
    if os.path.isdir("/proc/driver/nvidia/gpus") and os.listdir("/proc/driver/nvidia/gpus"):
        return True
    exe = shutil.which("nvidia-smi")
    if not exe:
        return False
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def requirements(gpu: bool) -> List[str]:
    return ["onnxruntime-gpu>=1.17,<2" if gpu else "onnxruntime>=1.17,<2", *BASE_REQUIREMENTS]


def python_executable() -> str:
    """The Python interpreter of the running QGIS (``sys.executable`` is the QGIS binary inside QGIS)."""
    exe = sys.executable or ""
    if os.path.basename(exe).lower().startswith("python") and os.path.exists(exe):
        return exe
    candidates = []
    if os.name == "nt":
        candidates += [os.path.join(sys.exec_prefix, "python.exe"), os.path.join(sys.exec_prefix, "python3.exe")]
    else:
        v = f"python{sys.version_info.major}.{sys.version_info.minor}"
        candidates += [
            os.path.join(sys.exec_prefix, "bin", v),
            os.path.join(sys.exec_prefix, "bin", "python3"),
            os.path.join("/usr/bin", v),
            "/usr/bin/python3",
        ]
    for c in candidates:
        if os.path.exists(c):
            return c
    raise SatClassifyError(
        "cannot find the Python interpreter of this QGIS; install the packages by hand: "
        "python3 -m pip install --user onnxruntime"
    )


def pip_command(python: str, target: str, reqs: Sequence[str], constraints_file: str) -> List[str]:
    return [
        python,
        "-m",
        "pip",
        "install",
        "--upgrade",
        "--target",
        target,
        "--constraint",
        constraints_file,
        "--disable-pip-version-check",
        "--no-warn-script-location",
        *reqs,
    ]


def install(
    target: str,
    python: Optional[str] = None,
    gpu: Optional[bool] = None,
    runner: Callable = subprocess.run,
    log: Callable[[str], None] = print,
) -> List[str]:
    """pip-install the requirements into ``target`` keeping the running numpy; returns the requirement list.

    Raises SatClassifyError with pip's last lines when pip fails.
    """
    import numpy

    python = python or python_executable()
    gpu = has_nvidia_gpu() if gpu is None else gpu
    reqs = requirements(gpu)
    os.makedirs(target, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cfile = os.path.join(tmp, "constraints.txt")
        with open(cfile, "w") as f:
            f.write(f"numpy=={numpy.__version__}\n")
        cmd = pip_command(python, target, reqs, cfile)
        log("Installing " + ", ".join(reqs) + f" into {target} (numpy kept at {numpy.__version__})")
        try:
            out = runner(cmd, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.SubprocessError) as e:
            raise SatClassifyError(f"could not run pip ({python}): {e}")
    if out.returncode != 0:
        tail = "\n".join((out.stderr or out.stdout or "").strip().splitlines()[-8:])
        raise SatClassifyError(
            f"pip failed (exit {out.returncode}):\n{tail}\n"
            "Check the network connection or install the packages by hand."
        )
    removed = remove_protected(target)
    if removed:
        log("Removed copies of QGIS's own packages from the deps folder: " + ", ".join(removed))
    activate(target)
    return reqs


def remove_protected(target: str) -> List[str]:
    """Delete numpy/GDAL/PyQt copies pip may have put in ``target`` (QGIS's own must be used)."""
    removed = []
    for name in PROTECTED:
        for p in glob.glob(os.path.join(target, name)) + glob.glob(os.path.join(target, name + "-*.dist-info")):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(os.path.basename(p))
    for p in glob.glob(os.path.join(target, "numpy.libs")):
        shutil.rmtree(p, ignore_errors=True)
        removed.append("numpy.libs")
    return sorted(set(removed))


def activate(target: str) -> bool:
    """Append ``target`` to the end of sys.path (QGIS's packages keep precedence). True when added."""
    if not os.path.isdir(target) or target in sys.path:
        return False
    sys.path.append(target)
    importlib.invalidate_caches()
    return True
