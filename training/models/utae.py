"""U-TAE: a U-Net with a temporal attention encoder, after Garnot & Landrieu (2021), "Panoptic segmentation of
satellite image time series with convolutional temporal attention networks", ICCV (the PASTIS benchmark).

Written for this project from the paper's description (no code copied), kept small for CPU by default:

* a **shared-weight spatial encoder**: the same convolution blocks run on every date (batch N*T), giving feature
  maps at ``len(widths)`` resolutions (each level halves H and W);
* a **lightweight temporal attention encoder** (L-TAE, Garnot & Landrieu 2020) at the lowest resolution: per pixel,
  the sequence of T feature vectors plus a sinusoidal **positional encoding of the day of year** (period 1000, as in
  the paper) is attended by ``heads`` learned master queries; each head weighs the dates with a softmax;
* the attention masks are **upsampled** (bilinear) to every skip resolution and collapse each level's T feature
  maps into one (channel groups, one per head: the paper's "group" mode); the decoder is a U-Net decoder over those;
* **invalid dates are masked**: the input carries a validity channel per date; a date is left out of a pixel's
  attention at the lowest resolution when none of the pixels it covers is valid there (a pixel invalid on every
  date falls back to all dates), and at each skip level the upsampled weights are renormalised over the pixel's
  valid dates.

Input: (N, T * (C + 1), H, W), per date the C standardised bands then the date's validity (1/0), date-major: the
multi-date stack's band order (core.contract.timeseries). Invalid observations are zeroed inside the model.
``doy``: (T,) day of year of the dates; default the training dates (a buffer); the exported graph takes it as its
second input. H and W must be multiples of 2 ** (levels - 1).
"""

import math
from typing import Any, Dict

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import TrainingError

DEFAULT_WIDTHS = (16, 32, 64)


def _block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def doy_encoding(doy: torch.Tensor, d: int, period: float = 1000.0) -> torch.Tensor:
    """Sinusoidal positional encoding (T, d) of the days of year ``doy`` (T,) (Vaswani et al. 2017 with the
    date as position, period 1000 as in U-TAE)."""
    i = torch.arange(d, device=doy.device, dtype=torch.float32)
    rate = torch.pow(torch.tensor(period, device=doy.device), -(2.0 * torch.div(i, 2, rounding_mode="floor")) / d)
    ang = doy.float()[:, None] * rate[None, :]
    return torch.where((i % 2 == 0)[None, :], torch.sin(ang), torch.cos(ang))


class LTAE(nn.Module):
    """Lightweight temporal attention over (B, T, D) sequences with a (B, T) validity mask; returns the attended
    features (B, d_out) and the attention weights (heads, B, T)."""

    def __init__(self, d_in, d_model=64, heads=4, d_k=8, d_out=64):
        super().__init__()
        if d_model % heads:
            raise TrainingError(f"U-TAE: d_model {d_model} must be a multiple of heads {heads}")
        self.heads, self.d_k, self.d_model = heads, d_k, d_model
        self.norm_in = nn.GroupNorm(min(heads, d_in), d_in)
        self.proj = nn.Linear(d_in, d_model)
        self.query = nn.Parameter(torch.randn(heads, d_k) * (1.0 / math.sqrt(d_k)))
        self.key = nn.Linear(d_model, heads * d_k)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_out), nn.BatchNorm1d(d_out), nn.ReLU(inplace=True))
        self.norm_out = nn.GroupNorm(min(heads, d_out), d_out)

    def forward(self, x, pe, valid):
        b, t, d = x.shape
        x = self.norm_in(x.reshape(b * t, d)).reshape(b, t, d)
        x = self.proj(x) + pe[None]  # (B, T, d_model)
        k = self.key(x).reshape(b, t, self.heads, self.d_k)  # (B, T, H, d_k)
        score = (k * self.query[None, None]).sum(-1) / math.sqrt(self.d_k)  # (B, T, H)
        score = score.masked_fill(~valid[:, :, None], -1e4)
        att = torch.softmax(score, dim=1)  # over the dates
        v = x.reshape(b, t, self.heads, self.d_model // self.heads)  # channel groups, one per head
        out = (att[..., None] * v).sum(1).reshape(b, self.d_model)
        out = self.norm_out(self.mlp(out))
        return out, att.permute(2, 0, 1)  # (heads, B, T)


class UTAE(nn.Module):
    def __init__(self, num_bands, num_dates, num_classes, widths=DEFAULT_WIDTHS, heads=4, d_model=None, doy=None):
        super().__init__()
        widths = [int(w) for w in (widths or DEFAULT_WIDTHS)]
        if not 2 <= len(widths) <= 4:
            raise TrainingError(f"U-TAE: give 2 to 4 encoder widths, not {widths}")
        if any(w % heads for w in widths):
            raise TrainingError(f"U-TAE: every encoder width {widths} must be a multiple of heads {heads}")
        self.c, self.t, self.heads = int(num_bands), int(num_dates), int(heads)
        self.widths = widths
        self.size_multiple = 2 ** (len(widths) - 1)
        self.enc = nn.ModuleList()
        cin = self.c
        for w in widths:
            self.enc.append(_block(cin, w))
            cin = w
        d_model = int(d_model or max(widths[-1], 4 * heads))
        self.ltae = LTAE(widths[-1], d_model=d_model, heads=heads, d_k=8, d_out=widths[-1])
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for lvl in range(len(widths) - 1, 0, -1):
            self.up.append(nn.ConvTranspose2d(widths[lvl], widths[lvl - 1], 2, stride=2))
            self.dec.append(_block(2 * widths[lvl - 1], widths[lvl - 1]))
        self.head = nn.Conv2d(widths[0], num_classes, 1)
        d = torch.tensor(doy if doy is not None else [15 + 30 * i for i in range(self.t)], dtype=torch.float32)
        if d.numel() != self.t:
            raise TrainingError(f"U-TAE: {d.numel()} days of year for {self.t} dates")
        self.register_buffer("doy", d)
        self.doy_jitter = 0  # days of random shift of all dates in training (set by the spec)

    def split(self, x):
        """(N, T*(C+1), H, W) -> bands (N, T, C, H, W) with invalid observations zeroed, validity (N, T, H, W)."""
        n, _, h, w = x.shape
        x = x.reshape(n, self.t, self.c + 1, h, w)
        valid = (x[:, :, self.c] > 0.5).float()
        return x[:, :, : self.c] * valid[:, :, None], valid

    def forward(self, x, doy=None):
        doy = self.doy if doy is None else doy.reshape(-1).float()
        if self.training and self.doy_jitter:
            doy = doy + torch.randint(-self.doy_jitter, self.doy_jitter + 1, (1,), device=doy.device).float()
        bands, valid = self.split(x)
        n, t, c, h, w = bands.shape
        feats = []
        f = bands.reshape(n * t, c, h, w)
        for i, blk in enumerate(self.enc):
            if i:
                f = F.max_pool2d(f, 2)
            f = blk(f)
            feats.append(f)
        low = feats[-1]
        _, d, hl, wl = low.shape
        factor = 2 ** (len(self.enc) - 1)
        v_low = F.avg_pool2d(valid, factor) > 0 if factor > 1 else valid > 0  # (N, T, hl, wl)
        v_low = v_low | ~v_low.any(dim=1, keepdim=True)  # no valid date: use all
        seq = low.reshape(n, t, d, hl, wl).permute(0, 3, 4, 1, 2).reshape(n * hl * wl, t, d)
        pe = doy_encoding(doy, self.ltae.d_model)
        out, att = self.ltae(seq, pe, v_low.permute(0, 2, 3, 1).reshape(n * hl * wl, t))
        y = out.reshape(n, hl, wl, d).permute(0, 3, 1, 2)
        att = att.reshape(self.heads, n, hl, wl, t).permute(0, 1, 4, 2, 3)  # (heads, N, T, hl, wl)
        for k, lvl in enumerate(range(len(self.enc) - 2, -1, -1)):
            skip = feats[lvl]
            s = 2 ** (len(self.enc) - 1 - lvl)
            a = F.interpolate(
                att.reshape(self.heads * n, t, hl, wl), scale_factor=float(s), mode="bilinear", align_corners=False
            ).reshape(self.heads, n, t, hl * s, wl * s)
            vl = F.avg_pool2d(valid, 2**lvl) > 0 if lvl else valid > 0
            vl = (vl | ~vl.any(dim=1, keepdim=True)).float()
            a = a * vl[None]
            a = a / a.sum(dim=2, keepdim=True).clamp(min=1e-6)
            cw = skip.shape[1]
            g = skip.reshape(n, t, self.heads, cw // self.heads, hl * s, wl * s)
            agg = (a.permute(1, 2, 0, 3, 4)[:, :, :, None] * g).sum(1).reshape(n, cw, hl * s, wl * s)
            y = self.dec[k](torch.cat([self.up[k](y), agg], dim=1))
        return self.head(y)


def build_utae(num_bands: int, num_dates: int, num_classes: int, cfg: Dict[str, Any]) -> nn.Module:
    return UTAE(
        num_bands,
        num_dates,
        num_classes,
        widths=cfg.get("utae_widths") or DEFAULT_WIDTHS,
        heads=int(cfg.get("utae_heads") or 4),
        doy=cfg.get("doy"),
    )
