"""CNN-class (after SatImNet): a patch classifier (64x64xN by default) whose label is the
patch's majority class. Its feature extractor is a segmentation-models-pytorch encoder
(ResNet family by default), so a trained CNN-class checkpoint can initialise a U-Net encoder
(``train --model unet --encoder-from CKPT``, the Ulmas & Liiv transfer route)."""
import torch
from torch import nn


class CNNClass(nn.Module):
    def __init__(self, in_channels, num_classes, encoder="resnet34", dropout=0.1):
        super().__init__()
        from segmentation_models_pytorch.encoders import get_encoder
        self.encoder_name = encoder
        self.encoder = get_encoder(encoder, in_channels=in_channels, depth=5, weights=None)
        ch = self.encoder.out_channels[-1]
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(ch, num_classes)

    def forward(self, x):
        """(N, C, H, W) -> (N, K) logits."""
        f = self.encoder(x)[-1]
        return self.fc(self.drop(torch.flatten(self.pool(f), 1)))
