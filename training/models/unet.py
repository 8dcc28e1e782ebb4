"""U-Net from segmentation-models-pytorch with any band count (``in_channels``) and no
downloaded weights (``encoder_weights=None``).

Input H and W must be divisible by 32 for the ResNet encoders (5 down-samplings): training pads
patches to a multiple of 32 (replicate, labels ignored there); the exported card says tile_size 256
and the classify tool pads edge tiles itself. Halo and size multiple: ``specs.UNetSpec``.
"""

from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence

from ..errors import TrainingError

if TYPE_CHECKING:
    import torch


def build_unet(
    in_channels: int, num_classes: int, encoder: str = "resnet34", decoder_channels: Optional[Sequence[int]] = None
) -> "torch.nn.Module":
    import segmentation_models_pytorch as smp

    kw = {}
    if decoder_channels:
        kw["decoder_channels"] = list(decoder_channels)
    try:
        return smp.Unet(encoder_name=encoder, encoder_weights=None, in_channels=in_channels, classes=num_classes, **kw)
    except (KeyError, ValueError) as e:
        raise TrainingError(f"cannot build a U-Net with encoder '{encoder}': {e}")


def load_encoder_from(unet: "torch.nn.Module", state_dict: Dict[str, Any], source: str = "checkpoint") -> int:
    """Copy ``encoder.*`` weights of a CNN-class / patch-classifier checkpoint into the U-Net's encoder."""
    enc = {k[len("encoder.") :]: v for k, v in state_dict.items() if k.startswith("encoder.")}
    if not enc:
        raise TrainingError(f"{source} has no 'encoder.*' weights: give a CNN-class (or U-Net) checkpoint")
    own = unet.encoder.state_dict()
    bad = [k for k, v in enc.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in enc]
    if bad or missing:
        raise TrainingError(
            f"{source}: encoder weights do not fit this U-Net encoder "
            f"({len(bad)} shape mismatches, {len(missing)} missing, e.g. {(bad or missing)[0]}); "
            "use the same --encoder and bands as the patch classifier"
        )
    unet.encoder.load_state_dict(enc)
    return len(enc)
