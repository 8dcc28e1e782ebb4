"""Copy rules of the shipped Processing models (pure Python, no QGIS)."""

import os

from satclassify_plugin.install.shipped_models import LEDGER, install_models, shipped_models


def _src(tmp_path, text="<model v1/>"):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "a.model3").write_text(text)
    (src / "notes.txt").write_text("not a model")
    return str(src)


def test_shipped_folder_holds_both_models():
    names = [os.path.basename(p) for p in shipped_models()]
    assert names == [
        "satclassify_change_two_dates.model3",
        "satclassify_classify_aoi.model3",
        "satclassify_sampling_design.model3",
        "satclassify_train_and_map.model3",
        "satclassify_training_dataset.model3",
        "satclassify_training_dataset_labels.model3",
    ]


def test_install_copies_only_models_and_is_idempotent(tmp_path):
    src = _src(tmp_path)
    dest = tmp_path / "models"
    written = install_models(str(dest), src)
    assert written == [str(dest / "a.model3")]
    assert (dest / "a.model3").read_text() == "<model v1/>"
    assert not (dest / "notes.txt").exists()
    assert (dest / LEDGER).exists()
    assert install_models(str(dest), src) == []  # nothing changed: nothing written
    assert not [f for f in os.listdir(dest) if f.endswith(".part")]


def test_upgrade_replaces_our_old_version_but_keeps_user_edits(tmp_path):
    dest = tmp_path / "models"
    install_models(str(dest), _src(tmp_path, "<model v1/>"))
    # plugin upgrade: the file is still what we wrote, so it is replaced
    assert install_models(str(dest), _src(tmp_path, "<model v2/>")) == [str(dest / "a.model3")]
    assert (dest / "a.model3").read_text() == "<model v2/>"
    # the user edits the model in the modeler; the next upgrade must not overwrite it
    (dest / "a.model3").write_text("<model v2 edited by the user/>")
    logs = []
    assert install_models(str(dest), _src(tmp_path, "<model v3/>"), log=logs.append) == []
    assert (dest / "a.model3").read_text() == "<model v2 edited by the user/>"
    assert "kept your edited model" in logs[0]


def test_corrupt_ledger_is_treated_as_empty(tmp_path):
    dest = tmp_path / "models"
    dest.mkdir()
    (dest / LEDGER).write_text("{not json")
    assert install_models(str(dest), _src(tmp_path)) == [str(dest / "a.model3")]
