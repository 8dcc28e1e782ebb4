"""The training CLI's progress lines as the trainmodel tool reads them (both the jsonl protocol and the human lines)."""

from satclassify_plugin.core.trainrun import protocol
from satclassify_plugin.core.trainrun.protocol import ProgressTracker, parse_line


def test_jsonl_events():
    ev = parse_line('SATCLASSIFY_PROGRESS {"event": "step", "epoch": 2, "step": 3, "steps": 12}')
    assert ev == {"event": "step", "epoch": 2, "step": 3, "steps": 12}
    assert parse_line("SATCLASSIFY_PROGRESS {broken") is None
    assert parse_line("SATCLASSIFY_PROGRESS [1, 2]") is None
    assert parse_line("some log text") is None


def test_human_lines_of_a_training_package_without_the_protocol():
    start = parse_line(
        "model cnn_dual: 1,254,118 parameters; device cuda:0; amp bf16; train 24 patches, val; run folder /tmp/r"
    )
    assert start["event"] == "start" and start["device"] == "cuda:0" and start["num_parameters"] == 1254118
    ev = parse_line(
        "epoch 2/5: train_loss 0.4997 val_loss 0.0248 val_oa 0.9971 val_miou n/a coarse_oa 0.9987 lr 0.01 (1.5s) *"
    )
    assert ev["event"] == "epoch" and (ev["epoch"], ev["epochs"]) == (2, 5) and ev["improved"]
    assert ev["metrics"] == {
        "train_loss": 0.4997,
        "val_loss": 0.0248,
        "val_oa": 0.9971,
        "val_miou": None,
        "val_coarse_oa": 0.9987,
        "lr": 0.01,
    }
    assert ev["seconds"] == 1.5
    assert not parse_line("epoch 3/5: train_loss 0.4 val_loss 0.1 lr 0.01 (1.2s)")["improved"]
    done = parse_line('{"run_dir": "/r", "best": "/r/best.pt", "last": "/r/last.pt", "epochs_run": 5}')
    assert done["event"] == "done" and done["best"] == "/r/best.pt"


def test_tracker_moves_with_steps_and_epochs():
    t = ProgressTracker(10)
    t.update({"event": "start", "epochs": 4, "steps_per_epoch": 10, "device": "cuda:0", "device_name": "H100"})
    assert t.epochs == 4 and t.device == "cuda:0 (H100)"
    assert t.update({"event": "step", "epoch": 1, "step": 5, "steps": 10}) == 0.125
    assert t.update({"event": "epoch", "epoch": 1, "epochs": 4, "metrics": {"val_miou": 0.5}, "improved": True}) == 0.25
    assert t.update({"event": "step", "epoch": 1, "step": 2}) == 0.25  # never backwards
    t.update({"event": "warning", "message": "one class"})
    assert t.history == [{"epoch": 1, "val_miou": 0.5, "improved": True}] and t.warnings == ["one class"]


def test_train_command():
    cmd = protocol.train_command(
        "py", "/d", "/r", model="unet", epochs=3, lr=0.002, seed=4, jsonl=True, encoder="resnet18", augment=False
    )
    assert cmd[:5] == ["py", "-u", "-m", "training", "train"]
    assert ["--progress", "jsonl"] == cmd[cmd.index("--progress") : cmd.index("--progress") + 2]
    assert "--no-augment" in cmd and "--lr" in cmd and "--batch-size" not in cmd and "--overwrite" in cmd
    assert "--no-progress" in protocol.train_command("py", "/d", "/r", model="unet", epochs=3, jsonl=False)
