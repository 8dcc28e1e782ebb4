"""Training throughput: samples/s for fp32 vs AMP (autocast) on the available device.

    .venv-train/bin/python benchmarks/train.py [--device auto|cpu|cuda] [--steps 10] [--model unet|cnn_dual|all]

On CPU AMP means bf16 autocast; on CUDA bf16 (or fp16 with a GradScaler where bf16 is unsupported) plus
channels_last for the U-Net. Synthetic data, no dataset needed. Prints one line per model and mode and
the AMP/fp32 ratio.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch
import torch.nn.functional as F

from training.models import build_model, count_parameters


def bench(model_name, device, amp, steps, batch, size, bands=4, classes=10):
    torch.manual_seed(0)
    cfg = {"encoder": "resnet34"}
    model = build_model(model_name, bands, classes, 5 if model_name == "cnn_dual" else 0, cfg).to(device)
    if device.type == "cuda" and model_name == "unet":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    dtype = torch.bfloat16 if (device.type == "cpu" or torch.cuda.is_bf16_supported()) else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp and dtype == torch.float16)
    x = torch.randn(batch, bands, size, size, device=device)
    if device.type == "cuda" and model_name == "unet":
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (batch, size, size) if model_name == "unet" else (batch,), device=device)

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            out = model(x)
            if model_name == "cnn_dual":
                loss = F.cross_entropy(out[0][:, :, 0, 0].float(), y) + F.cross_entropy(
                    out[1][:, :, 0, 0].float(), y % 5
                )
            else:
                loss = F.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t), count_parameters(model)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--model", default="all", choices=["unet", "cnn_dual", "all"])
    a = ap.parse_args()
    dev = torch.device(
        "cuda" if a.device == "auto" and torch.cuda.is_available() else ("cpu" if a.device == "auto" else a.device)
    )
    gpu = dev.type == "cuda"
    print(
        f"device {dev}{' (' + torch.cuda.get_device_name(dev) + ')' if gpu else ''}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}"
    )
    setups = {"unet": (16 if gpu else 4, 256 if gpu else 128), "cnn_dual": (4096 if gpu else 512, 5)}
    for name in ["unet", "cnn_dual"] if a.model == "all" else [a.model]:
        batch, size = setups[name]
        r32, n = bench(name, dev, False, a.steps, batch, size)
        ramp, _ = bench(name, dev, True, a.steps, batch, size)
        print(
            f"{name:9s} ({n:,} params, batch {batch}, {size}x{size}): fp32 {r32:9.1f} samples/s | "
            f"amp {'bf16' if not gpu or torch.cuda.is_bf16_supported() else 'fp16'} {ramp:9.1f} samples/s | "
            f"ratio {ramp / r32:.2f}x"
        )


if __name__ == "__main__":
    main()
