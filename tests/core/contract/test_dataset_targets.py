"""Patch-level targets in the dataset folder (multilabel / singlelabel), the block split and the pure-Python
GeoPackage writer (read back with OGR)."""

import json
import os

import numpy as np
import pytest

from satclassify_plugin.core.contract.dataset import Dataset, DatasetError, DatasetSpec, DatasetWriter, split_blocks
from satclassify_plugin.core.contract.gpkg import epsg_of_wkt, write_polygons

CLASSES = [
    {"value": 12, "code": "211", "name": "Non-irrigated arable land", "color": "#ffffa8"},
    {"value": 24, "code": "312", "name": "Coniferous forest", "color": "#00a600"},
    {"value": 41, "code": "512", "name": "Water bodies", "color": "#80f2e6"},
]


def test_multilabel_targets_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    spec = DatasetSpec(
        ["B02", "B08"], 8, CLASSES, task="multilabel", with_labels=False, shard_size=2, splits=("train", "val")
    )
    w = DatasetWriter(str(tmp_path / "ds"), spec)
    want = {"train": [], "val": []}
    for split, n in (("train", 5), ("val", 1)):
        for _ in range(n):
            img = rng.integers(1, 5000, (2, 8, 8)).astype(np.uint16)
            t = rng.integers(0, 2, 3).astype(np.uint8)
            w.add(split, img, target=t)
            want[split].append((img, t))
    man = w.close()
    assert man["task"] == "multilabel"
    tr = np.array([t for _i, t in want["train"]])
    assert man["splits"]["train"]["target_counts"] == {str(c["value"]): int(n) for c, n in zip(CLASSES, tr.sum(0))}
    assert man["splits"]["train"]["class_counts"] == man["splits"]["train"]["target_counts"]
    assert sorted(f for f in os.listdir(tmp_path / "ds") if f.startswith("targets")) == [
        "targets-train-0.npy",
        "targets-train-1.npy",
        "targets-train-2.npy",
        "targets-val-0.npy",
    ]
    assert not [f for f in os.listdir(tmp_path / "ds") if f.startswith("labels")]
    ds = Dataset(str(tmp_path / "ds"))
    assert ds.task == "multilabel" and not ds.has_labels
    np.testing.assert_array_equal(ds.load_targets("train"), tr)
    imgs, labs, masks = ds.load("train")
    assert labs is None and masks is None
    np.testing.assert_array_equal(imgs, np.array([i for i, _t in want["train"]]))
    assert ds.targets("val")[0].shape == (1, 3)


def test_target_checks(tmp_path):
    w = DatasetWriter(str(tmp_path / "a"), DatasetSpec(["B02"], 4, CLASSES, task="singlelabel", with_labels=False))
    img = np.ones((1, 4, 4), np.uint16)
    with pytest.raises(DatasetError, match="needs exactly one class, its target has 2"):
        w.add("train", img, target=[1, 1, 0])
    with pytest.raises(DatasetError, match=r"patch target has shape \(2,\), expected \(3,\)"):
        w.add("train", img, target=[1, 0])
    with pytest.raises(DatasetError, match="expected 0 or 1"):
        w.add("train", img, target=[2, 0, 0])
    with pytest.raises(DatasetError, match="stores a target per patch"):
        w.add("train", img)
    w.abort()
    seg = DatasetWriter(str(tmp_path / "b"), DatasetSpec(["B02"], 4, CLASSES))
    with pytest.raises(DatasetError, match="task is 'segmentation'"):
        seg.add("train", img, np.zeros((4, 4), np.uint8), target=[1, 0, 0])
    seg.abort()
    with pytest.raises(DatasetError, match="needs pixel labels"):
        DatasetWriter(str(tmp_path / "c"), DatasetSpec(["B02"], 4, CLASSES, with_labels=False))


def test_labels_and_targets_together(tmp_path):
    w = DatasetWriter(str(tmp_path / "ds"), DatasetSpec(["B02"], 4, CLASSES, task="multilabel"))
    lab = np.full((4, 4), 12, np.uint8)
    lab[0] = 41
    w.add("train", np.ones((1, 4, 4), np.uint16), lab, target=[1, 0, 1])
    man = w.close()
    assert man["splits"]["train"]["class_counts"] == {"12": 12, "24": 0, "41": 4}  # pixels
    assert man["splits"]["train"]["target_counts"] == {"12": 1, "24": 0, "41": 1}  # patches
    ds = Dataset(str(tmp_path / "ds"))
    assert ds.has_labels and ds.load("train")[1].shape == (1, 4, 4)


def test_missing_targets_shard_is_an_error(tmp_path):
    w = DatasetWriter(str(tmp_path / "ds"), DatasetSpec(["B02"], 4, CLASSES, task="multilabel", with_labels=False))
    w.add("train", np.ones((1, 4, 4), np.uint16), target=[0, 1, 0])
    w.close()
    path = tmp_path / "ds" / "manifest.json"
    m = json.loads(path.read_text())
    del m["splits"]["train"]["shards"][0]["targets"]
    path.write_text(json.dumps(m))
    with pytest.raises(DatasetError, match="needs 'images', 'count', 'targets'"):
        Dataset(str(tmp_path / "ds"))


def test_split_blocks():
    blocks = [(b,) for b in (0, 0, 1, 1, 2, 2, 3, 3, 4, 4)]
    s = split_blocks(blocks, 0.2, 0.2, seed=1)
    for i in range(0, 10, 2):
        assert s[i] == s[i + 1]  # whole blocks
    assert s.count("val") == 2 and s.count("test") == 2 and s.count("train") == 6
    assert split_blocks([("a",)] * 6, 0.15, 0.15) == ["train"] * 6  # one block stays in train
    two = split_blocks([("a",), ("b",)], 0.15, 0.15)
    assert "train" in two
    with pytest.raises(DatasetError, match="must be below 1"):
        split_blocks(blocks, 0.5, 0.5)


def test_geopackage_readable_by_ogr(tmp_path):
    ogr = pytest.importorskip("osgeo.ogr")
    osr = pytest.importorskip("osgeo.osr")
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    wkt = srs.ExportToWkt()
    assert epsg_of_wkt(wkt) == 32633
    path = str(tmp_path / "p.gpkg")
    ring = [(500000, 5000000), (500240, 5000000), (500240, 4999760), (500000, 4999760)]
    n = write_polygons(
        path,
        "patches",
        [("source", "str"), ("shard", "int"), ("p", "float")],
        [(ring, "a", 0, 0.25), ([(x + 240, y) for x, y in ring], "b", 1, 0.5)],
        crs_wkt=wkt,
    )
    assert n == 2
    ds = ogr.Open(path)
    lyr = ds.GetLayerByName("patches")
    assert lyr.GetFeatureCount() == 2 and lyr.GetSpatialRef().GetAuthorityCode(None) == "32633"
    assert lyr.GetExtent() == (500000.0, 500480.0, 4999760.0, 5000000.0)
    f = lyr.GetNextFeature()
    assert (f["source"], f["shard"], f["p"]) == ("a", 0, 0.25)
    g = f.GetGeometryRef()
    assert g.GetGeometryName() == "POLYGON" and g.GetArea() == 240 * 240
    assert g.GetGeometryRef(0).GetPoint_2D(2) == (500240.0, 4999760.0)
    ds = None
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
