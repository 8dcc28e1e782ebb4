"""``python -m training diagnose``: what this training environment will train on, as one JSON line.

The plugin asks it (Plugins > SatClassify > Diagnostics..., and the trainmodel tool's log) in a small child process,
so QGIS itself never imports torch."""

import os
import platform
import sys
from typing import Any, Dict, List


def diagnose() -> Dict[str, Any]:
    info: Dict[str, Any] = {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "training_package": os.path.dirname(os.path.abspath(__file__)),
    }
    try:
        import torch
    except ImportError as e:
        info.update(torch=None, error=f"torch cannot be imported here: {e}")
        return info
    gpus: List[Dict[str, Any]] = []
    info.update(
        torch=torch.__version__,
        torch_cuda_build=torch.version.cuda,
        cuda_available=False,
        gpus=gpus,
        threads=torch.get_num_threads(),
    )
    try:
        info["cuda_available"] = bool(torch.cuda.is_available())
        for i in range(torch.cuda.device_count() if info["cuda_available"] else 0):
            p = torch.cuda.get_device_properties(i)
            gpus.append(
                {
                    "index": i,
                    "name": p.name,
                    "memory_gib": round(p.total_memory / 2**30, 1),
                    "capability": f"{p.major}.{p.minor}",
                }
            )
    except Exception as e:  # a broken driver: say so instead of failing the whole report
        info["cuda_error"] = str(e).splitlines()[0] if str(e) else type(e).__name__
    info["default_device"] = "cuda" if gpus else "cpu"
    for mod in ("onnxruntime", "onnx", "segmentation_models_pytorch", "numpy"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:
            info[mod] = None
    return info
