"""Model builders. ``build_model(arch, in_channels, num_classes, num_coarse, cfg)``."""
from ..errors import TrainingError

ARCHITECTURES = ("unet", "cnn_dual", "cnn_class")


def build_model(arch, in_channels, num_classes, num_coarse=0, cfg=None):
    cfg = cfg or {}
    if arch == "unet":
        from .unet import build_unet
        return build_unet(in_channels, num_classes, encoder=cfg.get("encoder", "resnet34"),
                          decoder_channels=cfg.get("decoder_channels"))
    if arch == "cnn_dual":
        from .cnn_dual import CNNDual
        return CNNDual(in_channels, num_classes, num_coarse, widths=cfg.get("widths"),
                       dropout=cfg.get("dropout", 0.1))
    if arch == "cnn_class":
        from .cnn_class import CNNClass
        return CNNClass(in_channels, num_classes, encoder=cfg.get("encoder", "resnet34"),
                        dropout=cfg.get("dropout", 0.1))
    raise TrainingError(f"unknown model '{arch}': choose one of {', '.join(ARCHITECTURES)}")


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
