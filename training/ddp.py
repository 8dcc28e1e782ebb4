"""Multi-process (DDP) helpers. Launch with torchrun, e.g.

    torchrun --nproc_per_node 4 -m training train --data DIR --model unet --device cuda

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; each process then uses ``cuda:LOCAL_RANK`` (backend
NCCL) or the CPU (backend gloo). Only rank 0 writes checkpoints, logs and curves.
"""

import os

import torch
import torch.distributed as dist


class DistInfo:
    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0, active: bool = False) -> None:
        self.rank, self.world, self.local_rank, self.active = rank, world, local_rank, active

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_type: str) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local, True)


def wrap(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    if not info.active:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DDP(model, device_ids=[device.index])
    return DDP(model)


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.active and dist.is_initialized():
        dist.destroy_process_group()
