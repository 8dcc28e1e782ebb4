"""The training report: one self-contained HTML file."""

import base64

from satclassify_plugin.core.trainrun.report import read_log, render, write_report

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def test_report_embeds_the_curves_and_the_validation_figures(tmp_path):
    curves = tmp_path / "curves.png"
    curves.write_bytes(PNG)
    evaluation = {
        "split": "val",
        "heads": {
            "class": {
                "overall_accuracy": 0.9,
                "kappa": 0.8,
                "miou": 0.7,
                "macro_f1": 0.75,
                "pixels": 1000,
                "classes": [
                    {
                        "value": 1,
                        "name": "Arable <land>",
                        "precision": 0.9,
                        "recall": 0.8,
                        "f1": 0.85,
                        "iou": 0.7,
                        "support": 600,
                        "predicted": 550,
                    },
                    {
                        "value": 2,
                        "name": "Never seen",
                        "precision": None,
                        "recall": None,
                        "f1": None,
                        "iou": None,
                        "support": 0,
                        "predicted": 0,
                    },
                ],
            }
        },
    }
    history = [
        {"epoch": 1, "train_loss": 1.0, "val_miou": 0.5, "improved": True},
        {"epoch": 2, "train_loss": 0.5, "val_miou": 0.7, "improved": True},
        {"epoch": 3, "train_loss": 0.4, "val_miou": 0.6, "improved": False},
    ]
    html = render(
        {"architecture": "cnn_dual"},
        history,
        evaluation,
        str(curves),
        {"model": "/m.onnx"},
        "cuda:0 (H100)",
        ["one class only"],
    )
    assert f"data:image/png;base64,{base64.b64encode(PNG).decode()}" in html
    assert "Arable &lt;land&gt;" in html and "Never seen" not in html  # escaped; an absent class left out
    assert "<tr class='best'><td class='l'>2</td>" in html  # the last improving epoch
    assert "cuda:0 (H100)" in html and "one class only" in html and "0.7000" in html
    out = write_report(str(tmp_path / "r" / "report.html"), html)
    with open(out, encoding="utf-8") as f:
        assert f.read() == html
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["report.html"]  # no temporary file left


def test_read_log(tmp_path):
    p = tmp_path / "log.csv"
    p.write_text("epoch,train_loss,val_miou\n1,0.5,\n2,0.25,0.5\n")
    assert read_log(str(p)) == [
        {"epoch": 1, "train_loss": 0.5, "val_miou": None},
        {"epoch": 2, "train_loss": 0.25, "val_miou": 0.5},
    ]
    assert read_log(str(tmp_path / "none.csv")) == []
