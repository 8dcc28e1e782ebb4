"""CNN-class (after SatImNet): a patch classifier (64x64xN by default) whose label is the patch's majority class.

Two feature extractors:

* ``encoder="satimnet"`` (:class:`LightCNN`): the light patch CNN of SatImNet (Syrris et al. 2020, "SatImNet:
  Structured and Harmonised Training Data for Enhanced Satellite Imagery Classification", Remote Sensing 12(20)),
  trained from scratch: pairs of 3x3 convolutions with max-pooling between them, then a dense layer. Built here
  with batch normalisation after every convolution (trains faster and more stably from scratch than the
  paper's dropout-only stack) and about 2.6 M parameters with the default widths. It is what the shipped EuroSAT
  model uses: small enough to train to its figure on a 2-core CPU (docs/training.md).
* any segmentation-models-pytorch encoder name (ResNet family, default ``resnet34``), so a trained CNN-class
  checkpoint can initialise a U-Net encoder (``train --model unet --encoder-from CKPT``, the Ulmas & Liiv
  transfer route).
"""

import torch
from torch import nn

#: the light CNN's default widths: two 3x3 convolutions per stage, max-pooling between stages
LIGHT_WIDTHS = (32, 64, 128, 256)
#: width of the dense layer before the classifier
LIGHT_DENSE = 256
LIGHT_NAME = "satimnet"


def _conv(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class LightCNN(nn.Module):
    """Stages of two (conv 3x3 - BN - ReLU) with a 2x2 max-pool before every stage but the first; global average
    pooling, a dense layer, dropout, the classifier. Any input size (the pooling is global)."""

    def __init__(self, in_channels, num_classes, widths=LIGHT_WIDTHS, dense=LIGHT_DENSE, dropout=0.3):
        super().__init__()
        layers, cin = [], in_channels
        for i, w in enumerate(widths):
            if i:
                layers.append(nn.MaxPool2d(2))
            layers += _conv(cin, w) + _conv(w, w)
            cin = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(cin, dense),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(dense, num_classes),
        )

    def forward(self, x):
        return self.head(self.pool(self.features(x)))


class CNNClass(nn.Module):
    def __init__(self, in_channels, num_classes, encoder="resnet34", dropout=0.1, widths=None):
        super().__init__()
        self.encoder_name = encoder
        if encoder == LIGHT_NAME:
            self.net = LightCNN(in_channels, num_classes, widths=tuple(widths or LIGHT_WIDTHS), dropout=dropout)
            return
        from segmentation_models_pytorch.encoders import get_encoder

        self.encoder = get_encoder(encoder, in_channels=in_channels, depth=5, weights=None)
        ch = self.encoder.out_channels[-1]
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(ch, num_classes)

    def forward(self, x):
        """(N, C, H, W) -> (N, K) logits."""
        if self.encoder_name == LIGHT_NAME:
            return self.net(x)
        f = self.encoder(x)[-1]
        return self.fc(self.drop(torch.flatten(self.pool(f), 1)))
