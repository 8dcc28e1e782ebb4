"""CNN-dual (after SatImNet): a pixel classifier over a 5x5xN neighbourhood with two branches
coupled three times and two heads (fine and coarse classes).

Written with 'valid' convolutions only, so the same module is

* trained on 5x5 crops -> (N, K, 1, 1) logits, and
* run fully convolutionally on a whole tile: (N, C, H, W) -> (N, K, H-4, W-4).

The exported graph pads the input by 2 pixels (reflect) first so its outputs keep H and W
(``halo`` = 2 in the model card, ``specs.CNNDualSpec``: the classify tool reads 2 real pixels around each
tile, the reflect padding only matters at the raster's outer edge).

Branches: the *spatial* branch uses 3x3 kernels (5x5 -> 3x3 -> 1x1); the *spectral* branch uses
1x1 kernels on the centre of the same window (cropped so both stay aligned). After each of the
three stages the two branches exchange features: each next stage sees the concatenation of both.
The fine head reads the final coupled features; the coarse head reads them too (its logits are
also fed to the fine head, a hierarchy hint). BN after every conv, dropout 0.1, He-uniform init.
"""

import torch
from torch import nn

#: default stage widths (spatial branch, spectral branch) and head width; 1,259,892 parameters (~1.26 M) for
#: 4 bands, 15 fine and 5 coarse classes (see tests/training and docs/training.md).
DEFAULT_WIDTHS = {"s1": 128, "s2": 320, "s3": 416, "head": 384}


def _cbr(cin, cout, k):
    return nn.Sequential(nn.Conv2d(cin, cout, k, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _crop(x, n):
    return x[:, :, n : x.shape[2] - n, n : x.shape[3] - n]


class CNNDual(nn.Module):
    def __init__(self, in_channels, num_classes, num_coarse, widths=None, dropout=0.1):
        super().__init__()
        w = dict(DEFAULT_WIDTHS)
        w.update(widths or {})
        self.in_channels, self.num_classes, self.num_coarse = in_channels, num_classes, num_coarse
        s1, s2, s3, hd = w["s1"], w["s2"], w["s3"], w["head"]
        # stage 1: 5x5 -> 3x3
        self.a1 = _cbr(in_channels, s1, 3)
        self.b1 = _cbr(in_channels, s1 // 2, 1)
        c1 = s1 + s1 // 2
        # stage 2: 3x3 -> 1x1
        self.a2 = _cbr(c1, s2, 3)
        self.b2 = _cbr(c1, s2 // 2, 1)
        c2 = s2 + s2 // 2
        # stage 3: 1x1 -> 1x1
        self.a3 = _cbr(c2, s3, 1)
        self.b3 = _cbr(c2, s3 // 2, 1)
        c3 = s3 + s3 // 2
        self.drop = nn.Dropout(dropout)
        self.coarse = nn.Sequential(_cbr(c3, hd // 2, 1), nn.Dropout(dropout), nn.Conv2d(hd // 2, num_coarse, 1))
        self.fine = nn.Sequential(_cbr(c3 + num_coarse, hd, 1), nn.Dropout(dropout), nn.Conv2d(hd, num_classes, 1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        """(N, C, H, W) -> (fine logits, coarse logits), each (N, K, H-4, W-4)."""
        x1 = torch.cat([self.a1(x), self.b1(_crop(x, 1))], 1)  # coupling 1
        x1 = self.drop(x1)
        x2 = torch.cat([self.a2(x1), self.b2(_crop(x1, 1))], 1)  # coupling 2
        x2 = self.drop(x2)
        x3 = torch.cat([self.a3(x2), self.b3(x2)], 1)  # coupling 3
        x3 = self.drop(x3)
        coarse = self.coarse(x3)
        fine = self.fine(torch.cat([x3, coarse], 1))
        return fine, coarse
