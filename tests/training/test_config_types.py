"""Issue 25 item 12: --config values of the wrong type are refused with one line naming the option, before
anything is written (they gave a TypeError traceback, exit 1, and config.yaml already written)."""

import pytest

from training.cli import main
from training.config import make_config
from training.errors import TrainingError


@pytest.mark.parametrize(
    "text,msg",
    [
        ("epochs: ten\n", "option 'epochs' must be a whole number, got 'ten'"),
        ("batch_size: 1.5\n", "option 'batch_size' must be a whole number, got 1.5"),
        ("lr: fast\n", "option 'lr' must be a number, got 'fast'"),
        ("amp: maybe\n", "option 'amp' must be true or false, got 'maybe'"),
        ("bands: [B02, 4]\n", "option 'bands' (each item) must be a text, got 4"),
        ("epochs:\n", "option 'epochs' needs a value (a whole number), got nothing"),
    ],
)
def test_wrong_types_are_refused_before_anything_is_written(tmp_path, capsys, text, msg):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "no-dataset"), "--config", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0] == f"error: config file '{cfg}': {msg}", err
    assert not out.exists()


def test_right_types_and_harmless_forms_are_taken(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    # YAML 1.1 reads 1e-3 as text; 10.0 is a whole number; a band list may be written as on the command line
    cfg.write_text("lr: 1e-3\nepochs: 10.0\nbands: B02, B08\nbatch_size: 8\namp: true\n")
    c = make_config(str(cfg))
    assert (c.lr, c.epochs, c.bands, c.batch_size, c.amp) == (0.001, 10, ["B02", "B08"], 8, True)
    assert isinstance(c.epochs, int)
    with pytest.raises(TrainingError, match="option 'dropout' must be a number, got nan"):
        make_config(None, {"dropout": float("nan")})
