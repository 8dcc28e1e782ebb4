"""core.dataset: the dataset folder writer and reader (pure numpy, runs in both envs)."""

import dataclasses
import json
import os

import numpy as np
import pytest

from satclassify_plugin.core.contract.dataset import (
    SCHEMA_VERSION,
    Dataset,
    DatasetError,
    DatasetSpec,
    DatasetWriter,
)
from satclassify_plugin.core.contract.errors import SatClassifyError

CLASSES = [
    {"value": 1, "code": "1", "name": "Artificial", "color": "#e6004d"},
    {"value": 2, "code": "2", "name": "Agricultural", "color": "#ffffa8"},
    {"value": 3, "code": "3", "name": "Forest", "color": "#80ff00"},
]
BANDS = ["B02", "B03", "B04", "B08"]


def patch(i, p=8, c=4):
    img = (np.arange(c * p * p, dtype=np.uint16).reshape(c, p, p) + i * 100).astype(np.uint16)
    lab = np.full((p, p), (i % 3) + 1, dtype=np.uint8)
    lab[0, :] = 0
    return img, lab


def write(folder, n_train=5, n_val=2, shard_size=2, masks=False, **kw):
    overwrite = kw.pop("overwrite", False)
    w = DatasetWriter(
        str(folder),
        DatasetSpec(BANDS, 8, CLASSES, crs_wkt="EPSG:32633", shard_size=shard_size, with_masks=masks, **kw),
        overwrite=overwrite,
    )
    pos = []
    for i in range(n_train):
        img, lab = patch(i)
        m = np.ones((8, 8), np.uint8) if masks else None
        if masks:
            m[:, 0] = 0
        pos.append(w.add("train", img, lab, m))
    for i in range(n_val):
        img, lab = patch(100 + i)
        pos.append(w.add("val", img, lab, np.ones((8, 8), np.uint8) if masks else None))
    return w, pos


def test_round_trip_shards_and_manifest(tmp_path):
    w, pos = write(tmp_path)
    assert pos[:5] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)] and pos[5:] == [(0, 0), (0, 1)]
    assert w.counts() == {"train": 5, "val": 2}
    m = w.close(extra={"split_rule": "blocks", "stride": 8})
    files = sorted(os.listdir(tmp_path))
    assert files == [
        "images-train-0.npy",
        "images-train-1.npy",
        "images-train-2.npy",
        "images-val-0.npy",
        "labels-train-0.npy",
        "labels-train-1.npy",
        "labels-train-2.npy",
        "labels-val-0.npy",
        "manifest.json",
    ]
    on_disk = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk == m
    assert m["schema_version"] == SCHEMA_VERSION == 1 and m["dtype"] == "uint16" and m["scale"] == 1e-4
    assert m["split_rule"] == "blocks" and m["stride"] == 8 and m["crs"] == "EPSG:32633"
    assert m["splits"]["train"]["patches"] == 5
    assert m["splits"]["train"]["shards"][2] == {
        "images": "images-train-2.npy",
        "labels": "labels-train-2.npy",
        "masks": None,
        "count": 1,
    }
    # labels of train patches i=0..4 -> classes 1,2,3,1,2; 7 rows of 8 labelled pixels each
    assert m["splits"]["train"]["class_counts"] == {"1": 112, "2": 112, "3": 56}
    assert list(m["splits"]) == ["train", "val"]

    ds = Dataset(str(tmp_path))
    assert ds.bands == BANDS and ds.patch_size == 8 and ds.scale == 1e-4 and ds.classes == CLASSES
    assert ds.splits == ["train", "val"] and ds.count("train") == 5 and ds.count("val") == 2
    assert ds.class_counts("train") == {1: 112, 2: 112, 3: 56}
    shards = ds.shards("train")
    assert [s[0].shape for s in shards] == [(2, 4, 8, 8), (2, 4, 8, 8), (1, 4, 8, 8)]
    assert all(isinstance(s[0], np.memmap) and s[2] is None for s in shards)
    got = list(ds.iter_patches("train"))
    for i, (img, lab, mask) in enumerate(got):
        e_img, e_lab = patch(i)
        np.testing.assert_array_equal(img, e_img)
        np.testing.assert_array_equal(lab, e_lab)
        assert mask is None
    imgs, labs, masks = ds.load("val")
    assert imgs.dtype == np.uint16 and imgs.shape == (2, 4, 8, 8) and labs.shape == (2, 8, 8) and masks is None
    np.testing.assert_array_equal(imgs[1], patch(101)[0])
    # plain numpy can memory-map the shards
    arr = np.load(tmp_path / "images-train-1.npy", mmap_mode="r")
    np.testing.assert_array_equal(arr[1], patch(3)[0])


def test_masks_and_class_counts_skip_masked(tmp_path):
    w, _ = write(tmp_path, n_train=3, n_val=0, shard_size=10, masks=True)
    m = w.close()
    # column 0 masked: 7 rows x 7 cols labelled per patch
    assert m["splits"]["train"]["class_counts"] == {"1": 49, "2": 49, "3": 49}
    ds = Dataset(str(tmp_path))
    imgs, labs, masks = ds.load("train")
    assert masks.dtype == np.uint8 and masks.shape == (3, 8, 8)
    assert (masks[:, :, 0] == 0).all() and (masks[:, :, 1:] == 1).all()
    assert ds.has_masks
    assert sorted(os.listdir(tmp_path)) == [
        "images-train-0.npy",
        "labels-train-0.npy",
        "manifest.json",
        "masks-train-0.npy",
    ]


def test_declared_empty_split(tmp_path):
    w, _ = write(tmp_path, n_train=1, n_val=0, splits=("train", "val", "test"))
    m = w.close()
    assert m["splits"]["test"] == {"patches": 0, "shards": [], "class_counts": {"1": 0, "2": 0, "3": 0}}
    ds = Dataset(str(tmp_path))
    assert ds.splits == ["train"] and ds.count("val") == 0
    with pytest.raises(DatasetError, match="split 'val' has no patches"):
        ds.load("val")
    with pytest.raises(DatasetError, match=r"no split 'valid' \(available: 'train'\)"):
        ds.shards("valid")


def test_existing_folder_needs_overwrite(tmp_path):
    w, _ = write(tmp_path)
    w.close()
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="already holds a dataset.*choose an empty folder or allow overwriting"):
        DatasetWriter(str(tmp_path), DatasetSpec(BANDS, 8, CLASSES))
    w, _ = write(tmp_path, n_train=1, n_val=0, overwrite=True)
    # the earlier dataset stays whole (and readable) until the new one is complete
    assert Dataset(str(tmp_path)).splits == ["train", "val"]
    w.close()
    assert sorted(os.listdir(tmp_path)) == ["images-train-0.npy", "labels-train-0.npy", "manifest.json", "notes.txt"]
    assert Dataset(str(tmp_path)).splits == ["train"]


def test_overwrite_that_fails_keeps_the_earlier_dataset(tmp_path):
    w, _ = write(tmp_path)
    w.close()
    before = {p: (tmp_path / p).read_bytes() for p in os.listdir(tmp_path)}
    with pytest.raises(RuntimeError):
        with DatasetWriter(str(tmp_path), DatasetSpec(BANDS, 8, CLASSES, shard_size=1), overwrite=True) as w2:
            w2.add("train", *patch(0))
            w2.add("train", *patch(1))
            raise RuntimeError("cancelled")
    assert {p: (tmp_path / p).read_bytes() for p in os.listdir(tmp_path)} == before  # no staging left either


def test_full_disk_is_a_message_not_a_crash(tmp_path, monkeypatch):
    """Shards are written with plain writes (a memory-mapped write to a full disk is SIGBUS): ENOSPC becomes
    a message, nothing is left behind, an earlier dataset is unchanged."""
    import errno

    from satclassify_plugin.core.contract import dataset as dsm

    w, _ = write(tmp_path)
    w.close()
    before = {p: (tmp_path / p).read_bytes() for p in os.listdir(tmp_path)}
    calls = {"n": 0}
    real = dsm._NpyAppender.append

    def failing(self, arr):
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, arr)

    monkeypatch.setattr(dsm._NpyAppender, "append", failing)
    with pytest.raises(
        DatasetError,
        match=r"cannot write the dataset into '.*': the disk is full\. Nothing was "
        r"kept \(an earlier dataset there is unchanged\)",
    ):
        with DatasetWriter(str(tmp_path), DatasetSpec(BANDS, 8, CLASSES, shard_size=2), overwrite=True) as w2:
            for i in range(10):
                w2.add("train", *patch(i))
    assert {p: (tmp_path / p).read_bytes() for p in os.listdir(tmp_path)} == before


def test_free_space_is_checked_before_writing(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 2**20, 2**20))
    with pytest.raises(
        DatasetError,
        match=r"the dataset needs about \d+ MB \(100000 patches\) but only 1 MB are "
        r"free on the disk of",
    ):
        DatasetWriter(str(tmp_path / "ds"), DatasetSpec(BANDS, 8, CLASSES), expected_patches=100000)
    assert not (tmp_path / "ds").exists() or os.listdir(tmp_path / "ds") == []


def test_shards_are_plain_npy_files(tmp_path):
    w, _ = write(tmp_path, n_train=3, n_val=0, shard_size=10)
    w.close()
    a = np.load(tmp_path / "images-train-0.npy")
    assert a.shape[0] == 3 and a.dtype == np.uint16
    mm = np.load(tmp_path / "labels-train-0.npy", mmap_mode="r")
    assert mm.shape[0] == 3


def test_context_manager_aborts_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with DatasetWriter(str(tmp_path), DatasetSpec(BANDS, 8, CLASSES, shard_size=1)) as w:
            w.add("train", *patch(0))
            w.add("train", *patch(1))
            raise RuntimeError("cancelled")
    assert os.listdir(tmp_path) == []
    with DatasetWriter(str(tmp_path), DatasetSpec(BANDS, 8, CLASSES)) as w:
        w.add("train", *patch(0))
    assert Dataset(str(tmp_path)).count("train") == 1


def test_memory_flat_large_shard_preallocation(tmp_path):
    # a shard preallocated for 512 patches of 4x64x64 but holding 3 is truncated on close
    w = DatasetWriter(str(tmp_path), DatasetSpec(BANDS, 64, CLASSES, shard_size=512))
    for i in range(3):
        w.add("train", np.full((4, 64, 64), i, np.uint16), np.ones((64, 64), np.uint8))
    w.close()
    assert os.path.getsize(tmp_path / "images-train-0.npy") < 3 * 4 * 64 * 64 * 2 + 1024
    assert Dataset(str(tmp_path)).load("train")[0][:, 0, 0, 0].tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    "args,msg",
    [
        (dict(image=np.zeros((3, 8, 8), np.uint16)), r"image patch has shape \(3, 8, 8\), expected \(4, 8, 8\)"),
        (dict(label=np.zeros((8, 9), np.uint8)), r"label patch has shape \(8, 9\), expected \(8, 8\)"),
        (dict(image=np.full((4, 8, 8), -1, np.int32)), "do not fit uint16"),
        (dict(image=np.full((4, 8, 8), 0.5)), "non-integer values"),
        (dict(label=np.full((8, 8), 7, np.uint8)), r"label value 7 is not in the class table \(\[1, 2, 3\]\)"),
        (dict(mask=np.ones((8, 8), np.uint8)), "with_masks=False"),
        (dict(split="tr ain"), "split name 'tr ain' must be letters"),
    ],
)
def test_add_rejects_bad_patches(tmp_path, args, msg):
    w = DatasetWriter(str(tmp_path), DatasetSpec(BANDS, 8, CLASSES))
    img, lab = patch(0)
    kw = {"split": "train", "image": img, "label": lab, "mask": None}
    kw.update(args)
    with pytest.raises(DatasetError, match=msg):
        w.add(kw["split"], kw["image"], kw["label"], kw["mask"])


@pytest.mark.parametrize(
    "kw,msg",
    [
        (dict(bands=[]), "at least one band"),
        (dict(bands=["B02", "B02"]), "band names must be unique"),
        (dict(classes=[]), "class table is empty"),
        (dict(classes=[{"value": 0, "code": "x", "name": "n", "color": "#000000"}]), "out of range 1..255"),
        (dict(classes=CLASSES + [dict(CLASSES[0])]), "class values must be unique"),
        (dict(classes=[{"value": 1, "name": "n", "color": "red"}]), "is not #rrggbb"),
        (dict(patch_size=0), "patch size must be at least 1"),
    ],
)
def test_writer_rejects_bad_setup(tmp_path, kw, msg):
    args = dict(bands=BANDS, patch_size=8, classes=CLASSES)
    args.update(kw)
    with pytest.raises(DatasetError, match=msg):
        DatasetWriter(str(tmp_path), DatasetSpec(**args))


def test_writer_takes_a_spec(tmp_path):
    with pytest.raises(DatasetError, match="DatasetWriter takes a DatasetSpec"):
        DatasetWriter(str(tmp_path), BANDS)
    spec = DatasetSpec(iter(BANDS), 8.0, CLASSES, splits=["train"])  # normalised when made
    assert (spec.bands, spec.patch_size, spec.splits) == (tuple(BANDS), 8, ("train",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.patch_size = 16


def test_writer_mask_required(tmp_path):
    w = DatasetWriter(str(tmp_path), DatasetSpec(BANDS, 8, CLASSES, with_masks=True))
    with pytest.raises(DatasetError, match="give a mask for every patch"):
        w.add("train", *patch(0))


def test_reader_errors(tmp_path):
    with pytest.raises(
        DatasetError, match="no manifest.json in '.*': is this a folder written by satclassify:buildpatches\\?"
    ):
        Dataset(str(tmp_path))
    with pytest.raises(DatasetError, match="does not exist"):
        Dataset(str(tmp_path / "nope"))
    w, _ = write(tmp_path)
    w.close()
    mpath = tmp_path / "manifest.json"
    good = json.loads(mpath.read_text())

    def corrupt(change):
        m = json.loads(json.dumps(good))
        change(m)
        mpath.write_text(json.dumps(m))

    corrupt(lambda m: m.update(schema_version=2))
    with pytest.raises(DatasetError, match="schema_version 2 is not supported"):
        Dataset(str(tmp_path))
    corrupt(lambda m: m.pop("bands"))
    with pytest.raises(DatasetError, match="missing key 'bands'"):
        Dataset(str(tmp_path))
    corrupt(lambda m: m.update(bands=["B02", "B03", "B04"]))
    with pytest.raises(
        DatasetError,
        match=r"shard 'images-train-0.npy' has shape \(2, 4, 8, 8\) and dtype uint16, "
        r"but the manifest expects \(2, 3, 8, 8\)",
    ):
        Dataset(str(tmp_path))
    corrupt(lambda m: m["splits"]["train"].update(patches=9))
    with pytest.raises(DatasetError, match="says 9 patches but its shards hold 5"):
        Dataset(str(tmp_path))
    mpath.write_text("{not json")
    with pytest.raises(DatasetError, match="cannot read"):
        Dataset(str(tmp_path))
    mpath.write_text(json.dumps(good))
    np.save(tmp_path / "labels-val-0.npy", np.zeros((2, 8, 8), np.int16))
    with pytest.raises(DatasetError, match="labels-val-0.npy' has shape .* dtype int16.*expects .* uint8"):
        Dataset(str(tmp_path))
    os.remove(tmp_path / "labels-val-0.npy")
    with pytest.raises(DatasetError, match="shard file 'labels-val-0.npy' of split 'val' is missing"):
        Dataset(str(tmp_path))


def test_dataset_error_is_satclassify_error():
    assert issubclass(DatasetError, SatClassifyError)


def test_resolution_in_ground_metres_round_trips(tmp_path):
    """Issue 25 item 6: a dataset records its pixel size in ground metres (training copies it into the card)."""
    w, _ = write(tmp_path / "a", resolution_m=10.0)
    w.close()
    ds = Dataset(str(tmp_path / "a"))
    assert ds.manifest["resolution_m"] == 10.0 and ds.resolution_m == 10.0
    w, _ = write(tmp_path / "b")
    w.close()
    plain = Dataset(str(tmp_path / "b"))
    assert "resolution_m" not in plain.manifest and plain.resolution_m is None
    for bad in (0, -10.0, float("inf"), "10"):
        with pytest.raises(DatasetError, match="resolution_m must be a positive pixel size"):
            write(tmp_path / "c", resolution_m=bad)
