"""What will run where: the lines of Plugins > SatClassify > Diagnostics... and of the tools' logs.

The QGIS side (this Python, onnxruntime and its execution providers) is read here; the training side (its Python,
torch, CUDA, the GPUs) comes from ``python -m training diagnose`` run in the training environment
(``install.training_env.probe``), so QGIS never imports torch."""

from __future__ import annotations

import platform
import sys
from typing import List, Mapping, Optional


def onnxruntime_info() -> dict:
    try:
        import onnxruntime as ort
    except ImportError as e:
        return {"onnxruntime": None, "error": str(e)}
    err: Optional[str] = None
    try:
        providers = list(ort.get_available_providers())
    except Exception as e:  # a broken install: report it
        providers, err = [], str(e)
    info = {
        "onnxruntime": getattr(ort, "__version__", "?"),
        "providers": providers,
        "device": ort.get_device() if hasattr(ort, "get_device") else None,
    }
    if err:
        info["error"] = err
    return info


def training_lines(training: Optional[Mapping], python: Optional[str], source: str) -> List[str]:
    """The training environment's lines (``training``: the probe's dict, None when there is no environment)."""
    if not python:
        return [f"Training environment: none ({source})"]
    lines = [f"Training environment: {python} ({source})"]
    if not training:
        return lines
    if training.get("error") and not training.get("torch"):
        return lines + [f"  cannot use it: {training['error']}"]
    lines.append(
        f"  Python {training.get('python')}, torch {training.get('torch')} (CUDA build "
        f"{training.get('torch_cuda_build') or 'none'}), onnxruntime {training.get('onnxruntime')}"
    )
    gpus = training.get("gpus") or []
    if training.get("cuda_available") and gpus:
        for g in gpus:
            lines.append(f"  CUDA usable: GPU {g.get('index')} {g.get('name')}, {g.get('memory_gib')} GiB")
    else:
        why = training.get("cuda_error") or (
            "this torch has no CUDA" if not training.get("torch_cuda_build") else "no NVIDIA GPU / driver found"
        )
        lines.append(f"  CUDA not usable ({why}): training runs on the CPU ({training.get('threads')} threads)")
    lines.append(f"  device 'auto' trains on: {training.get('default_device')}")
    return lines


def report_lines(
    qgis_version: str, training: Optional[Mapping], python: Optional[str], source: str, ort: Optional[Mapping] = None
) -> List[str]:
    ort = ort if ort is not None else onnxruntime_info()
    lines = [f"QGIS {qgis_version}, Python {sys.version.split()[0]} ({platform.platform()})"]
    if ort.get("onnxruntime"):
        lines.append(
            f"onnxruntime {ort['onnxruntime']} (classify), execution providers: "
            + ", ".join(ort.get("providers") or [])
        )
    else:
        lines.append(
            f"onnxruntime: not installed in QGIS's Python ({ort.get('error')}); Plugins > SatClassify > "
            "Install Python dependencies..."
        )
    return lines + training_lines(training, python, source)


def inference_line(used: Optional[str], ort: Optional[Mapping] = None) -> str:
    """The line classify / classifypatches log: the execution provider that ran the model, and what else was there."""
    ort = ort if ort is not None else onnxruntime_info()
    return (
        f"Device used: onnxruntime {ort.get('onnxruntime')} ran the model on {used or 'unknown'} "
        f"(available here: {', '.join(ort.get('providers') or []) or 'none'})"
    )
