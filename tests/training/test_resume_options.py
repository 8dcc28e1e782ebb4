"""``train --resume``: every option given beside it is applied (the ones a resumed run may change), kept (the
checkpoint's value already) or refused (it differs from what the checkpoint fixes), and a line says which; none is
dropped silently (issue 26)."""

import json
import os

import pytest

from training.cli import main
from training.config import TrainConfig
from training.errors import TrainingError
from training.resume import resume_config

CK = "runs/d/last.pt"


@pytest.fixture
def base():
    """A CNN-dual run's saved config (resolved: lr 0.01, optimizer sgd, batch size 256)."""
    return TrainConfig(data="ds", model="cnn_dual", epochs=3, out="runs/d").resolved().to_dict()


def test_an_option_the_resumed_run_may_change_is_applied_and_said(base):
    cfg, note = resume_config(CK, base, {"epochs": 5, "device": "cpu", "resume": CK})
    assert (cfg.epochs, cfg.device, cfg.resume, cfg.encoder_from) == (5, "cpu", CK, None)
    assert note == (
        f"resuming {CK}: changes --epochs 5 (was 3), --device cpu (was auto); every other option is the checkpoint's"
    )


def test_a_fixed_option_with_the_checkpoints_value_is_kept_and_said(base):
    cfg, note = resume_config(CK, base, {"lr": 0.01, "model": "cnn_dual"})
    assert (cfg.lr, cfg.model) == (0.01, "cnn_dual")
    assert note == (
        f"resuming {CK}: keeps --lr 0.01, --model cnn_dual (the checkpoint's already); every other "
        "option is the checkpoint's"
    )


def test_a_value_that_resolves_to_the_checkpoints_is_kept_not_refused(base):
    cfg, note = resume_config(CK, base, {"optimizer": "auto"})  # auto is CNN-dual's sgd
    assert cfg.optimizer == "sgd" and "keeps --optimizer auto" in note


def test_a_fixed_option_that_differs_is_refused_naming_it(base):
    with pytest.raises(TrainingError) as e:
        resume_config(CK, base, {"lr": 0.5, "epochs": 9})
    assert str(e.value).startswith(
        f"--resume '{CK}' continues a cnn_dual run whose options it fixes: --lr 0.5 "
        "(the checkpoint's run has 0.01). Drop this option to resume"
    )


def test_config_file_options_count_as_given(base):
    cfg, note = resume_config(CK, base, {"epochs": 6, "early_stopping": 2}, config_keys=["early_stopping"])
    assert (cfg.epochs, cfg.early_stopping) == (6, 2)
    assert "changes --epochs 6 (was 3), early_stopping: 2 (--config) (was 8)" in note
    with pytest.raises(TrainingError, match=r"fixes: lr: 0\.5 \(--config\) \(the checkpoint's run has 0\.01\)"):
        resume_config(CK, base, {"lr": 0.5}, config_keys=["lr"])


def test_an_option_the_checkpoint_predates_is_its_default(base):
    del base["label_smoothing"]  # a checkpoint from before the option: its run had none (the default, 0)
    with pytest.raises(TrainingError, match=r"--label-smoothing 0\.1 \(the checkpoint's run has 0\.0\)"):
        resume_config(CK, base, {"label_smoothing": 0.1})
    cfg, note = resume_config(CK, base, {"label_smoothing": 0.0})
    assert cfg.label_smoothing == 0.0 and "keeps --label-smoothing 0.0" in note


def test_encoder_from_is_refused(base):
    with pytest.raises(TrainingError, match="--encoder-from x.pt initialises a new run only. Drop it to resume"):
        resume_config(CK, base, {"encoder_from": "x.pt"})


def test_nothing_given(base):
    cfg, note = resume_config(CK, base, {"resume": CK})
    assert cfg.to_dict() == {**base, "resume": CK, "encoder_from": None}
    assert note == f"resuming {CK}: with the checkpoint's options"


def test_cli_says_it_and_applies_the_config_files_epochs(dataset, tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(
        "model: cnn_dual\nwidths: {s1: 8, s2: 16, s3: 16, head: 16}\npixels_per_patch: 4\nprogress: false\nepochs: 1\n"
    )
    run = str(tmp_path / "run")
    assert main(["train", "--data", dataset, "--config", str(cfg), "--device", "cpu", "--out", run]) == 0
    capsys.readouterr()
    last = os.path.join(run, "last.pt")
    cfg.write_text(cfg.read_text().replace("epochs: 1", "epochs: 2"))  # the file's epochs was dropped before
    assert main(["train", "--resume", last, "--config", str(cfg), "--lr", "0.01"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        f"resuming {last}: changes epochs: 2 (--config) (was 1); keeps model: cnn_dual (--config), "
        "widths: {'s1': 8, 's2': 16, 's3': 16, 'head': 16} (--config), pixels_per_patch: 4 (--config), "
        "--lr 0.01 (the checkpoint's already); every other option is the checkpoint's"
    )
    assert json.loads(out[-1])["epochs_run"] == 2
