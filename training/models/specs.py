"""One spec per architecture: all that train, evaluate and export need to know about a model.

The rest of the package asks ``get_spec(name)`` instead of testing the architecture's name. A spec gives:

* the model (:meth:`ArchSpec.build`), its halo (pixels of context the card declares) and size multiple
  (H and W of the exported graph's input);
* training: default batch size / lr / optimizer, whether it learns from sampled pixels (CNN-dual) or whole
  patches, patch-majority targets (CNN-class), the loss (:meth:`ArchSpec.train_loss`);
* evaluation: the full-tile forward (:meth:`ArchSpec.full_forward`: logits per head, same H and W);
* export: the graph's outputs in head order (:meth:`ArchSpec.export_outputs`), the dummy input, the dynamic
  axes and the parity-check inputs;
* the card fields that depend on the architecture (:meth:`ArchSpec.card_geometry`, the coarse head).

``name`` is what checkpoints (config ``model``) and cards (``architecture``) store: never rename one.
torch is imported inside the methods, so the CLI (which lists the names) starts without it.
"""

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from ..errors import TrainingError

if TYPE_CHECKING:
    from torch import Tensor, nn


class ArchSpec:
    """Defaults fit a single-head, fully convolutional segmentation model; subclasses change what differs."""

    name = ""
    label = ""
    halo = 0  # pixels of real context the classify tool reads around each tile (card 'halo')
    size_multiple = 1  # the graph's input H and W must be multiples of this
    coarse_head = False  # a second head ('coarse') after the fine one
    pixel_samples = False  # trained on labelled pixels with their (2*halo+1)^2 context, not on whole patches
    patch_labels = False  # target = the patch's majority class (a patch classifier)
    fixed_tile = False  # the graph takes one fixed tile = the dataset's patch size (card tile_size)
    channels_last = True  # channels_last memory format on CUDA
    encoder_transfer = False  # --encoder-from may initialise its encoder
    batch_size = 16  # defaults of TrainConfig.resolved()
    lr = 1e-3
    optimizer = "adamw"
    eval_batch_size: Optional[int] = None  # validation batch size (None: the training batch size, at most 64)
    export_size = 64  # H = W of the export's (traced) dummy input
    parity_random = (2, 64, 96)  # N, H, W of the parity check's odd-sized random input
    temporal = False  # needs a multi-date dataset (core.contract.timeseries)
    input_names: Tuple[str, ...] = ("image",)  # the exported graph's inputs (a temporal spec adds "doy")

    def build(self, in_channels: int, num_classes: int, num_coarse: int, cfg: Dict[str, Any]) -> "nn.Module":
        """The nn.Module; ``cfg``: the training config as a dict (encoder, widths, dropout, ...)."""
        raise NotImplementedError

    def full_forward(self, model: "nn.Module", x: "Tensor") -> List["Tensor"]:
        """Logits per head (fine first) of standardised images (N, C, H, W), each with the input's H and W
        (image heads) or (N, K) (patch heads); training and evaluation use it."""
        return [model(x)]

    def train_loss(
        self,
        net: "nn.Module",
        x: "Tensor",
        y: "Tensor",
        weight: Optional["Tensor"] = None,
        f2c: Optional["Tensor"] = None,
        smoothing: float = 0.0,
    ) -> "Tensor":
        """Loss of a training batch (``f2c``: fine index -> coarse index, for a coarse head; ``smoothing``: label
        smoothing of the single-label cross-entropy)."""
        import torch.nn.functional as F

        from ..data import IGNORE

        return F.cross_entropy(
            self.full_forward(net, x)[0].float(), y, weight=weight, ignore_index=IGNORE, label_smoothing=smoothing
        )

    def export_outputs(self, model: "nn.Module", image: "Tensor") -> Tuple["Tensor", ...]:
        """The exported graph's outputs: softmax probabilities (N, K, H, W) per head, in the card's head order."""
        import torch.nn.functional as F

        return (F.softmax(model(image), dim=1),)

    def dummy_input(self, nb: int, tile: int) -> "Tensor":
        import torch

        s = tile if self.fixed_tile else self.export_size
        return torch.randn(1, nb, s, s)

    def export_inputs(self, image: "Tensor", card: Any) -> Tuple["Tensor", ...]:
        """The graph's inputs (in :attr:`input_names` order) for an ``image`` tensor; a multi-date card's
        validity channels are set to 0/1 (half invalid at random), so the check covers masked dates."""
        import torch

        ts = card.timeseries
        if not ts:
            return (image,)
        n, _, h, w = image.shape
        x = image.clone().reshape(n, ts["num_dates"], ts["channels_per_date"], h, w)
        g = torch.Generator().manual_seed(1)
        x[:, :, -1] = (torch.rand(n, ts["num_dates"], h, w, generator=g) > 0.5).float()
        x = x.reshape(n, -1, h, w)
        if "doy" in self.input_names:
            return (x, torch.tensor(ts["doy"], dtype=torch.float32))
        return (x,)

    def dynamic_axes(self, out_names: List[str]) -> Dict[str, Dict[int, str]]:
        axes = {0: "batch"} if self.fixed_tile else {0: "batch", 2: "height", 3: "width"}
        return {name: dict(axes) for name in ["image", *out_names]}

    def pad_forward(self, model: "nn.Module", x: "Tensor", *extra: "Tensor") -> List["Tensor"]:
        """Any H, W: pad (replicate) to the size multiple, crop the logits back."""
        import torch.nn.functional as F

        h, w = x.shape[-2:]
        ph, pw = (-h) % self.size_multiple, (-w) % self.size_multiple
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return [model(x, *extra)[..., :h, :w]]

    def parity_inputs(self, nb: int, tile: int) -> Dict[str, Tuple[int, int, int, int]]:
        """{name: input shape} the export's parity check runs (an odd-sized random input and a tile)."""
        n, h, w = (3, tile, tile) if self.fixed_tile else self.parity_random
        return {"random": (n, nb, h, w), "tile": (1, nb, tile, tile)}

    def card_geometry(self, cfg: Any, info: Any) -> Dict[str, int]:
        """The card's tile_size and halo."""
        if self.fixed_tile:
            p = info.patch_size
            return {"tile_size": int(p if isinstance(p, int) else p[0]), "halo": self.halo}
        return {"tile_size": cfg.tile_size, "halo": self.halo}

    def check_tile(self, tile: int, train: bool = True) -> None:
        """Refuse a card tile_size the model cannot run (training also needs it larger than twice the halo)."""
        if self.fixed_tile:
            return
        need = [f"a multiple of {self.size_multiple}"] if self.size_multiple > 1 else []
        if train:
            need.append(f"larger than {2 * self.halo}")
        if tile % self.size_multiple or (train and tile <= 2 * self.halo):
            hint = " (e.g. 256)" if train and self.size_multiple > 1 else ""
            raise TrainingError(f"tile_size {tile} must be {' '.join(need)} for the {self.label}{hint}")


class UNetSpec(ArchSpec):
    name, label = "unet", "U-Net"
    halo = 32
    size_multiple = 32  # 5 down-samplings of the ResNet encoders
    encoder_transfer = True

    def build(self, in_channels, num_classes, num_coarse, cfg):
        from .unet import build_unet

        return build_unet(
            in_channels,
            num_classes,
            encoder=cfg.get("encoder", "resnet34"),
            decoder_channels=cfg.get("decoder_channels"),
        )

    def full_forward(self, model, x):
        return self.pad_forward(model, x)


class CNNDualSpec(ArchSpec):
    """Valid convolutions over a (2*halo+1)^2 window: trained on such crops (-> 1x1), run on whole tiles after a
    reflect pad by the halo (the exported graph does the same, so its outputs keep H and W)."""

    name, label = "cnn_dual", "CNN-dual"
    halo = 2
    coarse_head = True
    pixel_samples = True
    channels_last = False
    batch_size = 256
    lr = 0.01
    optimizer = "sgd"
    eval_batch_size = 16
    export_size = 16
    parity_random = (2, 37, 23)

    def build(self, in_channels, num_classes, num_coarse, cfg):
        from .cnn_dual import CNNDual

        return CNNDual(in_channels, num_classes, num_coarse, widths=cfg.get("widths"), dropout=cfg.get("dropout", 0.1))

    def full_forward(self, model, x):
        import torch.nn.functional as F

        h = self.halo
        return list(model(F.pad(x, (h, h, h, h), mode="reflect")))

    def train_loss(self, net, x, y, weight=None, f2c=None, smoothing=0.0):
        """Fine CE + coarse CE on the crops' centre pixels."""
        import torch.nn.functional as F

        from ..data import IGNORE

        fine, crs = net(x)
        fine, crs = fine[:, :, 0, 0].float(), crs[:, :, 0, 0].float()
        return F.cross_entropy(
            fine, y, weight=weight, ignore_index=IGNORE, label_smoothing=smoothing
        ) + F.cross_entropy(crs, f2c[y], label_smoothing=smoothing)

    def export_outputs(self, model, image):
        import torch.nn.functional as F

        return tuple(F.softmax(o, dim=1) for o in self.full_forward(model, image))


class CNNClassSpec(ArchSpec):
    """A patch classifier: one class per tile, broadcast over the tile's pixels in the exported graph.

    On a multilabel dataset (targets float (N, K)) the loss is BCE with logits (``weight`` = the per-class
    ``pos_weight``) and the exported graph gives sigmoid probabilities (``activation="sigmoid"``)."""

    name, label = "cnn_class", "CNN-class"
    patch_labels = True
    fixed_tile = True
    optimizer = "adam"

    def build(self, in_channels, num_classes, num_coarse, cfg):
        from .cnn_class import CNNClass

        return CNNClass(
            in_channels,
            num_classes,
            encoder=cfg.get("encoder", "resnet34"),
            dropout=cfg.get("dropout", 0.1),
            widths=cfg.get("light_widths"),
        )

    def train_loss(self, net, x, y, weight=None, f2c=None, smoothing=0.0):
        if y.dim() == 2 and y.is_floating_point():  # multi-hot targets: one independent yes/no per class
            import torch.nn.functional as F

            return F.binary_cross_entropy_with_logits(net(x).float(), y, pos_weight=weight)
        return super().train_loss(net, x, y, weight, f2c, smoothing)

    def export_outputs(self, model, image, activation="softmax"):
        import torch
        import torch.nn.functional as F

        logits = model(image)
        p = (torch.sigmoid(logits) if activation == "sigmoid" else F.softmax(logits, dim=1))[:, :, None, None]
        return (p * torch.ones_like(image[:, :1]),)


class UTAESpec(ArchSpec):
    """U-TAE (models/utae.py) on a multi-date dataset: input (N, T*(C+1), H, W) per date the bands then the
    validity, plus the days of year ``doy`` (T,) as the graph's second input."""

    name, label = "utae", "U-TAE"
    halo = 16
    size_multiple = 8  # up to 4 encoder levels (3 halvings)
    temporal = True
    channels_last = False
    batch_size = 8
    lr = 2e-3
    optimizer = "adamw"
    export_size = 32
    parity_random = (2, 40, 24)
    input_names = ("image", "doy")

    def build(self, in_channels, num_classes, num_coarse, cfg):
        from .utae import build_utae

        t = int(cfg.get("num_dates") or 0)
        if t < 1 or in_channels % t:
            raise TrainingError(
                "U-TAE needs a multi-date dataset (built by satclassify:buildpatches from a "
                "multi-date stack, fetchsentinel2 INTERVAL)"
            )
        m = build_utae(in_channels // t - 1, t, num_classes, cfg)
        m.doy_jitter = int(cfg.get("doy_jitter") or 0)
        return m

    def full_forward(self, model, x):
        return self.pad_forward(model, x)

    def export_outputs(self, model, image, doy=None):
        import torch.nn.functional as F

        return (F.softmax(model(image, doy), dim=1),)

    def dynamic_axes(self, out_names):
        axes = super().dynamic_axes(out_names)
        axes["doy"] = {}
        return axes


#: the registered architectures by name (the order of the CLI's --model choices)
SPECS = {s.name: s for s in (UNetSpec(), CNNDualSpec(), CNNClassSpec(), UTAESpec())}
ARCHITECTURES = tuple(SPECS)


def get_spec(name) -> ArchSpec:
    """The spec of architecture ``name`` (a checkpoint's config 'model', --model); a clear error otherwise."""
    spec = SPECS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise TrainingError(f"unknown model '{name}': choose {', '.join(ARCHITECTURES[:-1])} or {ARCHITECTURES[-1]}")
    return spec
