"""Model builders. ``build_model(arch, in_channels, num_classes, num_coarse, cfg)``; what else depends on the
architecture is in its spec (``specs.get_spec``)."""

from typing import TYPE_CHECKING, Any, Dict, Optional

from .specs import ARCHITECTURES, get_spec

if TYPE_CHECKING:
    import torch

__all__ = ["ARCHITECTURES", "build_model", "count_parameters", "get_spec"]


def build_model(
    arch: str, in_channels: int, num_classes: int, num_coarse: int = 0, cfg: Optional[Dict[str, Any]] = None
) -> "torch.nn.Module":
    return get_spec(arch).build(in_channels, num_classes, num_coarse, cfg or {})


def count_parameters(model: "torch.nn.Module") -> int:
    return sum(p.numel() for p in model.parameters())
