"""Architecture specs: every registered spec builds, runs, exports the card's heads; unknown names are refused."""

import io
import warnings
from types import SimpleNamespace

import pytest
import torch

from satclassify_plugin.core.contract.timeseries import card_entry
from training import export as export_mod
from training.card import add_card, card_from_checkpoint
from training.config import TrainConfig
from training.errors import TrainingError
from training.models import ARCHITECTURES, build_model, get_spec

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

TINY = {
    "encoder": "resnet18",
    "decoder_channels": [16, 16, 8, 8, 8],
    "widths": {"s1": 8, "s2": 16, "s3": 16, "head": 16},
}


def _classes(n, first=1):
    return [{"value": v, "code": str(v), "name": f"c{v}", "color": "#808080"} for v in range(first, first + n)]


def _card(spec, nb, nk, nc, timeseries=None):
    geo = spec.card_geometry(SimpleNamespace(tile_size=96), SimpleNamespace(patch_size=32))
    heads = [{"name": "class", "classes": _classes(nk)}]
    if spec.coarse_head:
        heads.append({"name": "coarse", "classes": _classes(nc, 10)})
    info = {
        "architecture": spec.name,
        "bands": [f"B{i}" for i in range(nb)],
        "input_scale": 1e-4,
        "mean": [0.0] * nb,
        "std": [1.0] * nb,
        "resolution_m": 10.0,
        "heads": heads,
        **geo,
        "timeseries": timeseries,
    }
    return card_from_checkpoint({"card": info, "config": {"model": spec.name}, "history": []})


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_every_spec_round_trips(name):
    """build -> full-tile forward and export wrapper on the dummy input -> ONNX whose outputs are the card's
    heads (add_card checks them) and pass the export's parity rule on the spec's parity inputs."""
    spec = get_spec(name)
    assert spec.name == name
    nb, nk, nc = 4, 3, (2 if spec.coarse_head else 0)
    torch.manual_seed(0)
    dates = ["2023-03-01", "2023-05-01", "2023-07-01"]
    ts = card_entry([f"B{i}" for i in range(nb)], dates, "doy" in spec.input_names) if spec.temporal else None
    cfg = {**TINY, "num_dates": 3, "doy": ts["doy"], "utae_widths": [8, 16]} if ts else TINY
    nin = 3 * (nb + 1) if ts else nb  # a multi-date model: per date the bands then the validity
    model = spec.build(nin, nk, nc, cfg).eval()
    card = _card(spec, nb, nk, nc, ts)
    spec.check_tile(card.tile_size)
    wrapper = export_mod.ExportWrapper(model, spec).eval()
    dummy = spec.dummy_input(nin, card.tile_size)
    feeds = spec.export_inputs(dummy, card)
    with torch.no_grad():
        logits = spec.full_forward(model, feeds[0])
        probs = wrapper(*feeds)
    assert len(logits) == len(probs) == len(card.heads)
    for lo, p, k in zip(logits, probs, [nk, nc]):
        if not spec.fixed_tile:  # image heads keep H and W: the halo covers the model's valid convolutions
            assert lo.shape == (1, k) + dummy.shape[2:]
        assert p.shape == (1, k) + dummy.shape[2:]
        assert torch.allclose(p.sum(1), torch.ones(1), atol=1e-5)
    names = [h.output for h in card.heads]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            feeds,
            buf,
            opset_version=export_mod.OPSET,
            input_names=list(spec.input_names),
            output_names=names,
            dynamic_axes=spec.dynamic_axes(names),
            dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    assert [o.name for o in proto.graph.output] == names
    add_card(proto, card)  # refuses a head whose output the graph lacks
    stats = export_mod.parity(
        wrapper,
        proto.SerializeToString(),
        spec.parity_inputs(nin, card.tile_size),
        lambda x: spec.export_inputs(x, card),
    )
    assert set(stats) == {"random", "tile"} and export_mod.parity_problems(stats) == []


def test_unknown_architecture_is_a_clear_error():
    msg = r"^unknown model 'resnet': choose unet, cnn_dual, cnn_class or utae$"
    for call in (
        lambda: get_spec("resnet"),
        lambda: build_model("resnet", 4, 3),
        lambda: TrainConfig(model="resnet").resolved(),
    ):
        with pytest.raises(TrainingError, match=msg):
            call()
    with pytest.raises(TrainingError, match="unknown model"):
        get_spec(["unet"])  # a YAML list is not a name
