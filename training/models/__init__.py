"""Model builders. ``build_model(arch, in_channels, num_classes, num_coarse, cfg)``; what else depends on the
architecture is in its spec (``specs.get_spec``)."""
from .specs import ARCHITECTURES, get_spec

__all__ = ["ARCHITECTURES", "build_model", "count_parameters", "get_spec"]


def build_model(arch, in_channels, num_classes, num_coarse=0, cfg=None):
    return get_spec(arch).build(in_channels, num_classes, num_coarse, cfg or {})


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
