"""Cross-validation: fold views of a dataset, train --fold K, crossval (mean +- std over folds), import --k-folds."""

import json
import os

import numpy as np
import pytest

from tests import benchmark_archives as ba
from training.cli import main

from .conftest import BANDS, CLASSES, make_dataset, synth_patch

K = 3
NTRAIN = 24


def write_folds_dataset(folder, k=K, ntrain=NTRAIN, p=32, seed=0, fold_ids=None):
    """A buildpatches-like dataset whose train patches carry fold ids (shards of 8, so folds cross shards)."""
    from satclassify_plugin.core.contract.dataset import DatasetSpec, DatasetWriter

    rng = np.random.default_rng(seed)
    w = DatasetWriter(str(folder), DatasetSpec(BANDS, p, CLASSES, shard_size=8), overwrite=True)
    for split, n in (("train", ntrain), ("val", 6), ("test", 6)):
        for _ in range(n):
            img, lab = synth_patch(rng, p)
            w.add(split, img, lab)
    ids = fold_ids if fold_ids is not None else [int(v) for v in rng.permutation(np.arange(ntrain) % k)]
    w.close({"resolution_m": 10.0, "k_folds": k, "folds": {"train": ids}})
    return str(folder), np.asarray(ids)


@pytest.fixture(scope="module")
def folds_ds(tmp_path_factory):
    return write_folds_dataset(tmp_path_factory.mktemp("folds") / "ds")


def _err(capsys):
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.startswith("error: ")]
    assert len(err) == 1, err
    return err[0]


def _concat(shards, i):
    return np.concatenate([np.asarray(sh[i]) for sh in shards])


def test_fold_view_serves_the_rows_of_its_folds(folds_ds):
    from satclassify_plugin.core.contract.dataset import Dataset
    from training.folds import fold_view

    folder, ids = folds_ds
    ds = Dataset(folder)
    imgs, labs, _ = ds.load("train")
    for fold in range(K):
        v = fold_view(ds, fold)
        assert v.splits == ["train", "val", "test"]
        assert (v.count("train"), v.count("val"), v.count("test")) == ((ids != fold).sum(), (ids == fold).sum(), 6)
        for split, sel in (("train", ids != fold), ("val", ids == fold)):
            np.testing.assert_array_equal(_concat(v.shards(split), 0), imgs[sel])
            np.testing.assert_array_equal(_concat(v.shards(split), 1), labs[sel])
            hist = np.bincount(labs[sel].ravel(), minlength=4)
            assert v.class_counts(split) == {1: hist[1], 2: hist[2], 3: hist[3]}
            assert v.manifest["splits"][split]["patches"] == sel.sum()
        np.testing.assert_array_equal(_concat(v.shards("test"), 0), ds.load("test")[0])
        assert v.class_counts("test") == ds.class_counts("test")
    # the row selection reads like the array it stands for
    rows = max((sh[0] for sh in fold_view(ds, 0).shards("train")), key=len)
    full = np.asarray(rows)
    assert rows.shape == full.shape and len(rows) == len(full) and rows.dtype == full.dtype
    np.testing.assert_array_equal(rows[1], full[1])
    np.testing.assert_array_equal(rows[0:2][:, [0, 2]], full[0:2][:, [0, 2]])
    np.testing.assert_array_equal(rows[:, 1, 2:5], full[:, 1, 2:5])
    assert ds.manifest["splits"]["val"]["patches"] == 6  # the dataset itself is untouched


def test_training_reads_a_fold(folds_ds):
    from training.data import DataInfo, PatchDataset, band_stats, open_dataset
    from training.folds import fold_view

    folder, ids = folds_ds
    ds = open_dataset(folder)
    info = DataInfo(fold_view(ds, 2))
    assert info.check_split("val") == (ids == 2).sum()
    assert len(PatchDataset(info, "train")) == (ids != 2).sum()
    imgs = ds.load("train")[0][ids != 2].astype(np.float64) * ds.scale
    mean, std = band_stats(info, "train")
    np.testing.assert_allclose(mean, imgs.mean(axis=(0, 2, 3)), rtol=1e-9)
    np.testing.assert_allclose(std, imgs.std(axis=(0, 2, 3)), rtol=1e-6)


def test_train_fold_validates_on_the_fold(folds_ds, tmp_path, capsys):
    import torch

    from training import checkpoint as ckpt_io
    from training.data import DataInfo, open_dataset
    from training.engine import evaluate_split
    from training.evaluate import load_model
    from training.folds import fold_view
    from training.models import get_spec

    folder, ids = folds_ds
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                folder,
                "--model",
                "cnn_dual",
                "--epochs",
                "1",
                "--max-steps",
                "2",
                "--fold",
                "1",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    log = capsys.readouterr().out
    assert f"train {(ids != 1).sum()} patches, val" in log
    ck = ckpt_io.load(str(out / "best.pt"))
    assert ck["config"]["fold"] == 1
    # the logged validation is the checkpoint's on fold 1's patches
    info = DataInfo(fold_view(open_dataset(folder), 1))
    heads = evaluate_split(
        load_model(ck),
        get_spec("cnn_dual"),
        info,
        "val",
        torch.tensor(ck["card"]["mean"]),
        torch.tensor(ck["card"]["std"]),
        torch.device("cpu"),
        torch.tensor(ck["f2c"]),
        [c["value"] for c in ck["card"]["heads"][1]["classes"]],
    )
    m = heads["fine"].result()
    assert m["pixels"] == sum(info.ds.class_counts("val").values())
    assert m["overall_accuracy"] == pytest.approx(ck["metrics"]["val_oa"], abs=1e-9)


def test_fold_errors(folds_ds, tmp_path, capsys):
    folder, _ids = folds_ds
    plain = make_dataset(tmp_path / "plain", splits=(("train", 4), ("val", 2)))
    run = ["--model", "cnn_dual", "--epochs", "1", "--no-progress"]
    assert main(["train", "--data", plain, "--fold", "0", "--out", str(tmp_path / "r"), *run]) == 2
    msg = _err(capsys)
    assert "has no cross-validation folds (manifest k_folds 0)" in msg and "K_FOLDS" in msg and "--k-folds" in msg
    for bad in ("3", "-1"):
        assert main(["train", "--data", folder, "--fold", bad, "--out", str(tmp_path / "r"), *run]) == 2
        assert _err(capsys) == f"error: --fold {bad} is out of range: the dataset has 3 folds, numbered 0 to 2"
    assert not os.path.exists(tmp_path / "r")
    assert main(["crossval", "--data", plain, "--out", str(tmp_path / "cv"), *run]) == 2
    assert "has no cross-validation folds" in _err(capsys)
    for bad, text in (
        ("4", "the dataset has 3 folds; run 1 to 3"),
        ("0,0", "must be distinct"),
        ("0,5", "must be distinct, in 0..2"),
        ("some", "is not 'all', a number"),
    ):
        assert main(["crossval", "--data", folder, "--folds", bad, "--out", str(tmp_path / "cv"), *run]) == 2
        assert text in _err(capsys)
    # a fold without patches (all train patches in fold 0 of 2)
    lop, _ = write_folds_dataset(tmp_path / "lop", k=2, ntrain=4, fold_ids=[0, 0, 0, 0])
    assert main(["train", "--data", lop, "--fold", "1", "--out", str(tmp_path / "r"), *run]) == 2
    assert "fold 1 holds no train patch" in _err(capsys)
    assert main(["train", "--data", lop, "--fold", "0", "--out", str(tmp_path / "r"), *run]) == 2
    assert "every train patch is in fold 0" in _err(capsys)


def test_crossval_runs_the_folds_and_reports_mean_and_std(folds_ds, tmp_path, capsys):
    folder, ids = folds_ds
    out = tmp_path / "cv"
    assert (
        main(
            [
                "crossval",
                "--data",
                folder,
                "--folds",
                "2",
                "--model",
                "cnn_dual",
                "--epochs",
                "2",
                "--max-steps",
                "2",
                "--seed",
                "3",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    stdout = capsys.readouterr().out.strip().splitlines()
    printed = json.loads(stdout[-1])
    assert any(ln.startswith("crossval over 2 fold(s): oa ") and " ± " in ln for ln in stdout)
    summary = json.load(open(out / "crossval.json"))
    assert summary["k_folds"] == 3 and summary["folds"] == [0, 1]
    assert sorted(os.listdir(out)) == ["crossval.json", "fold-0", "fold-1"]
    assert summary["patches_per_fold"] == [int((ids == i).sum()) for i in range(3)]
    assert [e["fold"] for e in summary["per_fold"]] == [0, 1]
    for e in summary["per_fold"]:
        assert os.path.isfile(os.path.join(e["run_dir"], "best.pt"))
        assert e["val_patches"] == (ids == e["fold"]).sum() and e["train_patches"] == (ids != e["fold"]).sum()
    for m in ("oa", "macro_f1", "kappa"):
        v = [e[m] for e in summary["per_fold"]]
        assert summary["mean"][m] == pytest.approx(np.mean(v))
        assert summary["std"][m] == pytest.approx(np.std(v, ddof=1))
        assert printed["mean"][m] == pytest.approx(summary["mean"][m])
    assert summary["config"]["seed"] == 3 and "fold" not in summary["config"]
    # each fold's figures are its best checkpoint's validation
    from training import checkpoint as ckpt_io

    ck = ckpt_io.load(os.path.join(summary["per_fold"][1]["run_dir"], "best.pt"))
    assert ck["config"]["fold"] == 1 and ck["metrics"]["val_oa"] == summary["per_fold"][1]["oa"]


def test_mean_std_and_fold_list():
    from training.crossval import mean_std, parse_folds

    assert mean_std([0.9, None, 0.8]) == (pytest.approx(0.85), pytest.approx(np.std([0.9, 0.8], ddof=1)))
    assert mean_std([0.9]) == (0.9, None) and mean_std([None]) == (None, None)
    assert parse_folds("all", 4) == [0, 1, 2, 3] and parse_folds("2", 4) == [0, 1]
    assert parse_folds("3,1", 4) == [3, 1]


def test_assign_folds_is_seeded_and_balanced():
    from training.errors import TrainingError
    from training.folds import assign_folds

    blocks = [("crs", i // 3, 0) for i in range(30)]  # 10 blocks of 3 patches
    a = assign_folds(blocks, 4, seed=1)
    assert a == assign_folds(list(reversed(blocks)), 4, seed=1)  # the order of the patches does not matter
    assert sorted(a.values()) == sorted([i % 4 for i in range(10)])
    assert a != assign_folds(blocks, 4, seed=2)
    with pytest.raises(TrainingError, match="4 folds need at least 4 spatial blocks"):
        assign_folds(blocks[:9], 4)


def test_import_writes_folds_that_train_fold_reads(tmp_path, capsys):
    from satclassify_plugin.core.contract.dataset import Dataset
    from training.data import DataInfo, PatchDataset
    from training.folds import fold_view

    root = str(tmp_path / "rgb")
    ba.eurosat_rgb_archive(root, per_class=8)
    out = str(tmp_path / "ds")
    assert main(["import", "eurosat", root, "--out", out, "--k-folds", "4", "--seed", "3"]) == 0
    man = json.load(open(os.path.join(out, "manifest.json")))
    ntrain = man["splits"]["train"]["patches"]
    assert man["k_folds"] == 4 and len(man["folds"]["train"]) == ntrain
    assert sorted(set(man["folds"]["train"])) == [0, 1, 2, 3]
    assert max(np.bincount(man["folds"]["train"])) - min(np.bincount(man["folds"]["train"])) <= 1  # 1 patch a block
    assert main(["import", "eurosat", root, "--out", str(tmp_path / "ds2"), "--k-folds", "4", "--seed", "3"]) == 0
    assert json.load(open(tmp_path / "ds2" / "manifest.json"))["folds"] == man["folds"]  # seeded
    ds = Dataset(out)
    ids = np.asarray(man["folds"]["train"])
    targets = ds.load_targets("train")
    info = DataInfo(fold_view(ds, 2))
    val = PatchDataset(info, "val", patch_labels=True)
    assert len(val) == (ids == 2).sum()
    assert [int(val[i][1]) for i in range(len(val))] == targets[ids == 2].argmax(1).tolist()
    assert sum(info.ds.manifest["splits"]["val"]["target_counts"].values()) == (ids == 2).sum()
    # without --k-folds: no folds; bad counts are refused
    assert main(["import", "eurosat", root, "--out", str(tmp_path / "ds3")]) == 0
    assert json.load(open(tmp_path / "ds3" / "manifest.json"))["k_folds"] == 0
    capsys.readouterr()
    assert main(["import", "eurosat", root, "--out", str(tmp_path / "ds4"), "--k-folds", "1"]) == 2
    assert "--k-folds must be 0 (no folds) or at least 2, not 1" in _err(capsys)
    assert main(["import", "eurosat", root, "--out", str(tmp_path / "ds4"), "--k-folds", "99"]) == 2
    assert "99 folds need at least 99 spatial blocks in the train split" in _err(capsys)
    assert not os.path.exists(tmp_path / "ds4" / "manifest.json")
