"""Model structure: CNN-dual size, init, crop/full-tile equivalence; U-Net/CNN-class shapes; encoder transfer."""

import math

import pytest
import torch

from training.errors import TrainingError
from training.models import build_model, count_parameters
from training.models.cnn_dual import CNNDual
from training.models.unet import load_encoder_from


def test_cnn_dual_default_size_is_about_1_26_million():
    m = build_model("cnn_dual", 4, 15, 5)  # B02 B03 B04 B08, CLC level 2 (15) + level 1 (5)
    assert count_parameters(m) == 1_259_892


def test_cnn_dual_layers_bn_dropout_and_he_uniform_init():
    torch.manual_seed(0)
    m = CNNDual(4, 3, 2)
    assert any(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())
    drops = [x for x in m.modules() if isinstance(x, torch.nn.Dropout)]
    assert drops and all(d.p == 0.1 for d in drops)
    conv = m.a2[0]
    fan_in = conv.weight[0].numel()
    bound = math.sqrt(6.0 / fan_in)  # kaiming_uniform_ with gain sqrt(2): sqrt(2) * sqrt(3 / fan_in)
    w = conv.weight.detach()
    assert w.abs().max() <= bound + 1e-6
    assert w.abs().max() > 0.95 * bound  # uniform over the full range, not a narrower default init
    assert abs(float(w.std()) - bound / math.sqrt(3)) < 0.05 * bound


def test_cnn_dual_5x5_crops_equal_full_tile_run():
    """Trained on 5x5 crops -> 1x1; the same module over a tile gives every pixel (valid convs)."""
    torch.manual_seed(1)
    m = CNNDual(4, 3, 2).eval()
    x = torch.randn(1, 4, 11, 9)
    with torch.no_grad():
        fine, coarse = m(x)
        assert fine.shape == (1, 3, 7, 5) and coarse.shape == (1, 2, 7, 5)
        for r, c in [(0, 0), (3, 2), (6, 4)]:
            f1, c1 = m(x[:, :, r : r + 5, c : c + 5])
            assert f1.shape == (1, 3, 1, 1)
            assert torch.allclose(f1[0, :, 0, 0], fine[0, :, r, c], atol=1e-5)
            assert torch.allclose(c1[0, :, 0, 0], coarse[0, :, r, c], atol=1e-5)


def test_unet_any_band_count_and_cnn_class_shapes():
    u = build_model("unet", 7, 5, cfg={"encoder": "resnet18", "decoder_channels": [16, 16, 8, 8, 8]})
    assert u(torch.randn(2, 7, 64, 32)).shape == (2, 5, 64, 32)
    c = build_model("cnn_class", 7, 10, cfg={"encoder": "resnet18"})
    assert c(torch.randn(3, 7, 64, 64)).shape == (3, 10)


def test_encoder_transfer_copies_weights_and_rejects_mismatch():
    c = build_model("cnn_class", 4, 10, cfg={"encoder": "resnet18"})
    u = build_model("unet", 4, 3, cfg={"encoder": "resnet18", "decoder_channels": [16, 16, 8, 8, 8]})
    n = load_encoder_from(u, c.state_dict())
    assert n > 50
    assert torch.equal(u.encoder.conv1.weight, c.encoder.conv1.weight)
    u34 = build_model("unet", 4, 3, cfg={"encoder": "resnet34", "decoder_channels": [16, 16, 8, 8, 8]})
    with pytest.raises(TrainingError, match="do not fit this U-Net encoder"):
        load_encoder_from(u34, c.state_dict())
    with pytest.raises(TrainingError, match="no 'encoder"):
        load_encoder_from(u, {"fc.weight": torch.zeros(1)})
