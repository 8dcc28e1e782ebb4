"""DDP: two CPU processes (gloo) launched with torchrun train a tiny CNN-dual."""

import json
import os
import subprocess
import sys

import torch

from .conftest import ROOT


def test_torchrun_two_gloo_processes(dataset, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "widths: {s1: 16, s2: 32, s3: 32, head: 32}\npixels_per_patch: 16\nbatch_size: 32\nprogress: false\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(29500 + os.getpid() % 1000),
        "-m",
        "training",
        "train",
        "--data",
        dataset,
        "--model",
        "cnn_dual",
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--config",
        str(cfg),
        "--out",
        str(tmp_path / "run"),
    ]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "x2 processes" in r.stdout
    summaries = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1  # only rank 0 reports and writes
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ck["epoch"] == 1 and ck["history"][-1]["val_oa"] > 0.8
    assert not any(k.startswith("module.") for k in ck["state_dict"])
