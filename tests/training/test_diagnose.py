"""`python -m training diagnose` (what the plugin's Diagnostics and trainmodel report) and the names the plugin
lists without importing the training package."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_diagnose_prints_one_json_line_with_torch_and_cuda():
    out = subprocess.run(
        [sys.executable, "-m", "training", "diagnose"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    import torch

    assert info["torch"] == torch.__version__ and info["python"] == sys.version.split()[0]
    assert info["cuda_available"] == torch.cuda.is_available()
    assert len(info["gpus"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert info["default_device"] == ("cuda" if info["gpus"] else "cpu")
    for g in info["gpus"]:
        assert g["name"] and g["memory_gib"] > 0


def test_the_plugin_lists_the_training_packages_architectures():
    from satclassify_plugin.core.trainrun.protocol import ARCHITECTURE_LABELS, ARCHITECTURES
    from training.models.specs import ARCHITECTURES as TRAINING

    assert ARCHITECTURES == TRAINING and len(ARCHITECTURE_LABELS) == len(TRAINING)
