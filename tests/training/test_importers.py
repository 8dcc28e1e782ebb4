"""python -m training import bigearthnet|eurosat: every label and pixel of small archives written here."""

import json
import os
import sqlite3

import numpy as np
import pytest

from tests import benchmark_archives as ba
from training.cli import main
from training.importers import bigearthnet as ben

from .conftest import ROOT  # noqa: F401  (puts the repository on sys.path)

pytest.importorskip("rasterio")


def _err(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def _footprints(folder):
    con = sqlite3.connect(os.path.join(folder, "patches.gpkg"))
    rows = con.execute('SELECT source, split, shard, "index", labels, crs FROM patches').fetchall()
    con.close()
    return {r[0]: r[1:] for r in rows}


def _patch(folder, split, shard, index):
    from satclassify_plugin.core.contract.dataset import Dataset

    ds = Dataset(folder)
    imgs = ds.shards(split)[shard][0]
    return np.asarray(imgs[index]), np.asarray(ds.targets(split)[shard][index])


# -- nomenclature ----------------------------------------------------------------------------------------


def test_every_bigearthnet_label_maps_to_a_clc_code():
    from satclassify_plugin.core.contract import clc

    codes = [ben.clc_code(n) for n in ben.LABELS_43]
    assert len(ben.LABELS_43) == 43 and len(set(codes)) == 43
    assert sorted(codes) == sorted(e.code for e in clc.legend() if e.code != 335)  # no glaciers in BigEarthNet
    legend = {e.level3: e.code for e in clc.legend()}
    assert {n: legend[a] for n, a in ben.ALIASES.items()} == {
        "Natural grassland": 321,
        "Transitional woodland/shrub": 324,
        "Bare rock": 332,
        "Peatbogs": 412,
    }
    for name in ben.LABELS_43:
        if name not in ben.ALIASES:
            assert legend[name] == ben.clc_code(name)  # the other 39 are spelled as in the CLC legend
    assert ben.clc_code("  peatbogs ") == 412


def test_nomenclature_43_values_are_clc_grid_codes():
    table, index = ben.nomenclature(43)
    by_code = {int(c["code"]): c for c in table}
    assert len(table) == 43
    assert by_code[211] == {"value": 12, "code": "211", "name": "Non-irrigated arable land", "color": "#ffffa8"}
    assert by_code[412]["name"] == "Peat bogs" and by_code[412]["value"] == 36
    assert index[523] == [c["code"] for c in table].index("523")


def test_bigearthnet19_mapping_is_the_published_one():
    table, index = ben.nomenclature(19)
    assert len(table) == 19 and [c["value"] for c in table] == list(range(1, 20))
    removed = {122, 123, 124, 131, 132, 133, 141, 142, 332, 334, 423}
    codes43 = {ben.clc_code(n) for n in ben.LABELS_43}
    assert set(index) == codes43 - removed and len(index) == 32
    name = {c: table[i]["name"] for c, i in index.items()}
    assert name[111] == name[112] == "Urban fabric"
    assert {c for c in index if name[c] == "Permanent crops"} == {221, 222, 223, 241}
    assert {c for c in index if name[c] == "Natural grassland and sparsely vegetated areas"} == {321, 333}
    assert {c for c in index if name[c] == "Moors, heathland and sclerophyllous vegetation"} == {322, 323}
    assert {c for c in index if name[c] == "Inland wetlands"} == {411, 412}
    assert {c for c in index if name[c] == "Coastal wetlands"} == {421, 422}
    assert {c for c in index if name[c] == "Marine waters"} == {521, 522, 523}
    assert [c["name"] for c in table][:3] == ["Urban fabric", "Industrial or commercial units", "Arable land"]
    assert table[13]["name"] == "Transitional woodland, shrub" and index[324] == 13


def test_upsampling_matches_the_reference():
    a = np.random.default_rng(3).integers(0, 9000, (5, 5)).astype(np.uint16)
    from training.importers.common import upsample_bilinear

    for f in (2, 6):
        np.testing.assert_array_equal(upsample_bilinear(a, f), ba.upsample_reference(a, f))
    ramp = np.add.outer(np.arange(4) * 60, np.arange(4) * 20).astype(np.uint16)
    up = upsample_bilinear(ramp, 2)
    assert up[1, 1] == 15 + 5 and up[2, 3] == round(0.75 * 60 + 1.25 * 20) and up[0, 0] == 0  # inside: the plane


# -- BigEarthNet ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("ben") / "BigEarthNet-v1.0")
    return root, ba.bigearthnet_archive(root)


def test_import_bigearthnet_every_label_and_pixel(archive, tmp_path, capsys):
    root, truth = archive
    out = str(tmp_path / "ds")
    assert main(["import", "bigearthnet", root, "--out", out]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["task"] == "multilabel" and res["classes"] == 43
    man = json.load(open(os.path.join(out, "manifest.json")))
    assert man["task"] == "multilabel" and man["patch_size"] == 24 and man["resolution_m"] == 10.0
    assert man["bands"] == list(ba.BEN_RES)
    assert sum(v["patches"] for v in man["splits"].values()) == 6
    table = man["classes"]
    fp = _footprints(out)
    assert set(fp) == set(truth)
    for name, (labels, bands) in truth.items():
        split, shard, index, text, crs = fp[name]
        img, target = _patch(out, split, shard, index)
        want = {ben.clc_code(lab) for lab in labels}
        assert {int(table[k]["code"]) for k in np.nonzero(target)[0]} == want, name
        assert set(text.split("; ")) == {table[k]["name"] for k in np.nonzero(target)[0]}
        assert crs == ("EPSG:32634" if "_77_" in name else "EPSG:32633")
        for i, b in enumerate(man["bands"]):
            f = ba.BEN_RES[b] // 10
            expected = bands[b] if f == 1 else ba.upsample_reference(bands[b], f)
            np.testing.assert_array_equal(img[i], expected, err_msg=f"{name} {b}")
    # spatial split: the two groups of neighbouring patches each stay in one split, every split has patches
    groups = [[n for n in truth if n.startswith("S2A")], [n for n in truth if "_10_" in n]]
    for g in groups:
        assert len({fp[n][0] for n in g}) == 1
    assert {v[0] for v in fp.values()} == {"train", "val", "test"}
    assert man["splits"]["train"]["target_counts"][str(table[0]["value"])] == 0
    counts = {s: man["splits"][s]["target_counts"] for s in ("train", "val", "test")}
    forest = str(next(c["value"] for c in table if c["code"] == "312"))
    assert sum(c[forest] for c in counts.values()) == 3  # 0_45, 0_46, 77_9
    assert not [f for f in os.listdir(out) if f.startswith(".")]  # no staging left


def test_footprints_are_the_patch_corners(archive, tmp_path):
    import struct

    root, truth = archive
    out = str(tmp_path / "ds")
    assert main(["import", "bigearthnet", root, "--out", out, "--bands", "B02,B8A,B01"]) == 0
    con = sqlite3.connect(os.path.join(out, "patches.gpkg"))
    assert con.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47
    srs = con.execute("SELECT srs_id FROM gpkg_geometry_columns WHERE table_name='patches'").fetchone()[0]
    assert srs == 4326  # two UTM zones: footprints in WGS 84
    blob = con.execute("SELECT geom FROM patches WHERE source=?", (ba.BEN_PATCHES[0][0],)).fetchone()[0]
    con.close()
    xs = struct.unpack_from("<10d", blob, 8 + 32 + 13)[0::2]
    ys = struct.unpack_from("<10d", blob, 8 + 32 + 13)[1::2]
    # UTM 33 (500000, 5000000) lies on its central meridian 15 E, at 45.1535 N
    assert abs(xs[0] - 15.0) < 1e-6 and abs(ys[0] - 45.1535) < 1e-3 and xs[1] > xs[0] and ys[2] < ys[0]
    man = json.load(open(os.path.join(out, "manifest.json")))
    assert man["bands"] == ["B02", "B8A", "B01"]


def test_import_bigearthnet_19_classes(archive, tmp_path):
    root, truth = archive
    out = str(tmp_path / "ds19")
    assert main(["import", "bigearthnet", root, "--out", out, "--nomenclature", "19"]) == 0
    man = json.load(open(os.path.join(out, "manifest.json")))
    names = [c["name"] for c in man["classes"]]
    assert len(names) == 19
    fp = _footprints(out)
    # "Bare rock" has no BigEarthNet-19 class: that patch keeps arable land and marine waters only
    split, shard, index, text, _crs = fp["S2B_MSIL2A_20180525T94030_10_4"]
    _img, target = _patch(out, split, shard, index)
    assert [names[k] for k in np.nonzero(target)[0]] == ["Arable land", "Marine waters"]
    split, shard, index, text, _crs = fp["S2A_MSIL2A_20170613T101031_0_46"]
    _img, target = _patch(out, split, shard, index)
    assert [names[k] for k in np.nonzero(target)[0]] == ["Coniferous forest", "Inland wetlands"]


def _copy_archive(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return str(dst)


@pytest.mark.parametrize("fault", ["missing_band", "unknown_label", "other_size", "empty", "glacier"])
def test_bad_bigearthnet_input_names_the_patch_and_writes_nothing(archive, tmp_path, capsys, fault):
    root = _copy_archive(archive[0], tmp_path / "src")
    name = ba.BEN_PATCHES[2][0]
    folder = os.path.join(root, name)
    if fault == "missing_band":
        os.remove(os.path.join(folder, f"{name}_B8A.tif"))
        expect = f"error: patch '{name}': band file(s) {name}_B8A.tif missing"
    elif fault == "unknown_label":
        meta = os.path.join(folder, f"{name}_labels_metadata.json")
        m = json.load(open(meta))
        m["labels"] = ["Water bodies", "Peat bog lands"]
        json.dump(m, open(meta, "w"))
        expect = f"error: patch '{name}': unknown label 'Peat bog lands' (did you mean 'peat bogs'?)"
    elif fault == "other_size":
        ba.ben_patch(root, name, ["Water bodies"], 500000, 4999760, sizes={"B11": 61})
        expect = f"error: patch '{name}': band B11 is 61 x 61 pixels, expected 12 x 12"
    elif fault == "glacier":
        ba.ben_patch(root, name, ["Glaciers and perpetual snow"], 500000, 4999760)
        expect = f"error: patch '{name}': label 'Glaciers and perpetual snow' (CLC 335) is not one of the 43"
    else:
        root = str(tmp_path / "empty")
        os.makedirs(root)
        expect = f"error: '{root}' holds no BigEarthNet patch folder"
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["import", "bigearthnet", root, "--out", str(out)]) == 2
    assert _err(capsys).startswith(expect)
    assert sorted(os.listdir(out)) == ["keep.txt"]  # nothing half-written, no staging folder


def test_earlier_dataset_kept_on_failure(archive, tmp_path, capsys):
    root = _copy_archive(archive[0], tmp_path / "src")
    out = str(tmp_path / "ds")
    assert main(["import", "bigearthnet", root, "--out", out]) == 0
    before = {f: os.path.getmtime(os.path.join(out, f)) for f in os.listdir(out)}
    name = ba.BEN_PATCHES[5][0]  # the last patch: its bands are read after the others were written
    ba.ben_patch(root, name, ["Coniferous forest"], 400000, 5200000, crs=ba.UTM34, sizes={"B01": 3})
    assert main(["import", "bigearthnet", root, "--out", out, "--overwrite"]) == 2
    assert f"patch '{name}': band B01 is 3 x 3 pixels, expected 4 x 4" in _err(capsys)
    assert {f: os.path.getmtime(os.path.join(out, f)) for f in os.listdir(out)} == before


def test_six_patches_in_one_block_still_train(tmp_path, capsys):
    root = str(tmp_path / "one")
    pts = [
        (
            f"P_{i}",
            ["Water bodies"] if i % 2 else ["Coniferous forest"],
            500000 + 240 * (i % 3),
            5000000 - 240 * (i // 3),
            ba.UTM33,
        )
        for i in range(6)
    ]
    ba.bigearthnet_archive(root, patches=pts)
    out = str(tmp_path / "ds")
    assert main(["import", "bigearthnet", root, "--out", out]) == 0
    man = json.load(open(os.path.join(out, "manifest.json")))
    assert man["splits"]["train"]["patches"] == 6  # one block: it stays in train
    from training.data import DataInfo, open_dataset

    assert DataInfo(open_dataset(out)).check_split("train") == 6


# -- EuroSAT ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("descriptions", [False, True])
def test_import_eurosat_every_label_and_pixel(tmp_path, capsys, descriptions):
    root = str(tmp_path / "EuroSAT")
    truth = ba.eurosat_archive(root, descriptions=descriptions)
    out = str(tmp_path / "ds")
    assert main(["import", "eurosat", root, "--out", out, "--bands", "B02,B03,B04,B08"]) == 0
    man = json.load(open(os.path.join(out, "manifest.json")))
    assert man["task"] == "singlelabel" and man["bands"] == ["B02", "B03", "B04", "B08"] and man["patch_size"] == 16
    assert [(c["value"], c["code"], c["name"]) for c in man["classes"]] == [
        (1, "Forest", "Forest"),
        (2, "Residential", "Residential"),
        (3, "SeaLake", "Sea or lake"),
    ]
    fp = _footprints(out)
    assert set(fp) == set(truth)
    idx = [ba.EUROSAT_BANDS.index(b) for b in man["bands"]]
    for name, (cls, arr) in truth.items():
        split, shard, index, text, _crs = fp[name]
        img, target = _patch(out, split, shard, index)
        assert target.tolist() == [int(c["code"] == cls) for c in man["classes"]]
        assert text == man["classes"][target.argmax()]["name"]
        np.testing.assert_array_equal(img, arr[idx])
    assert sum(man["splits"][s]["patches"] for s in ("train", "val", "test")) == 9


@pytest.mark.parametrize("fault", ["size", "bands", "empty_class", "empty"])
def test_bad_eurosat_input(tmp_path, capsys, fault):
    root = str(tmp_path / "EuroSAT")
    ba.eurosat_archive(root)
    if fault == "size":
        ba._write(os.path.join(root, "Forest", "Forest_2.tif"), np.ones((13, 20, 20), np.uint16), ba.UTM33, 0, 0, 10)
        expect = "error: patch 'Forest/Forest_2' is 20 x 20 pixels, the others 16 x 16"
    elif fault == "bands":
        ba._write(os.path.join(root, "SeaLake", "SeaLake_1.tif"), np.ones((12, 16, 16), np.uint16), ba.UTM33, 0, 0, 10)
        expect = "error: patch 'SeaLake/SeaLake_1' has 12 bands, expected the 13 bands"
    elif fault == "empty_class":
        os.makedirs(os.path.join(root, "Pasture"))
        expect = "error: class folder 'Pasture' of"
    else:
        root = str(tmp_path / "nothing")
        os.makedirs(root)
        expect = f"error: '{root}' holds no class folder"
    out = tmp_path / "ds"
    assert main(["import", "eurosat", root, "--out", str(out)]) == 2
    assert _err(capsys).startswith(expect)
    assert not out.exists() or os.listdir(out) == []


def test_workers_give_the_same_dataset_and_errors(archive, tmp_path, capsys):
    root = _copy_archive(archive[0], tmp_path / "src")
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    assert main(["import", "bigearthnet", root, "--out", one, "--shard-size", "2"]) == 0
    assert main(["import", "bigearthnet", root, "--out", two, "--shard-size", "2", "--workers", "2"]) == 0
    shards = sorted(f for f in os.listdir(one) if f.endswith(".npy"))
    assert shards == sorted(f for f in os.listdir(two) if f.endswith(".npy")) and len(shards) == 8
    for f in shards:
        assert open(os.path.join(one, f), "rb").read() == open(os.path.join(two, f), "rb").read(), f
    name = ba.BEN_PATCHES[4][0]
    ba.ben_patch(root, name, ["Sea and ocean"], 600240, 5100000, sizes={"B05": 7})
    capsys.readouterr()
    assert main(["import", "bigearthnet", root, "--out", str(tmp_path / "three"), "--workers", "2"]) == 2
    assert _err(capsys).startswith(f"error: patch '{name}': band B05 is 7 x 7 pixels, expected 12 x 12")
    assert not os.path.exists(tmp_path / "three") or os.listdir(tmp_path / "three") == []


def test_footprint_from_the_geotiff_without_metadata_coordinates(archive, tmp_path, capsys):
    root = _copy_archive(archive[0], tmp_path / "src")
    name = ba.BEN_PATCHES[5][0]
    meta = os.path.join(root, name, f"{name}_labels_metadata.json")
    m = json.load(open(meta))
    del m["coordinates"], m["projection"]
    json.dump(m, open(meta, "w"))
    out = str(tmp_path / "ds")
    assert main(["import", "bigearthnet", root, "--out", out, "--bands", "B8A,B01"]) == 0
    assert _footprints(out)[name][4] == "EPSG:32634"  # the CRS of the band GeoTIFF
    open(os.path.join(root, name, f"{name}_B01.tif"), "wb").write(b"not a tiff")
    assert main(["import", "bigearthnet", root, "--out", str(tmp_path / "x"), "--bands", "B01"]) == 2
    assert _err(capsys).startswith(f"error: patch '{name}': cannot read")


def test_eurosat_ms_band_order_is_the_published_one(tmp_path):
    """EuroSAT MS GeoTIFFs have no band descriptions; their 13 bands are B01..B12 then B8A (the published archive,
    as torchgeo reads it). Each band of the file written here holds its own band number: the dataset's B8A must be
    file band 13 and B09 file band 9 (the importer took B8A from band 9 before)."""
    root = tmp_path / "EuroSAT"
    os.makedirs(root / "Forest")
    a = np.stack([np.full((8, 8), 100 * (i + 1), np.uint16) for i in range(13)])
    ba._write(str(root / "Forest" / "Forest_1.tif"), a, ba.UTM33, 300000, 5500000, 10)
    out = str(tmp_path / "ds")
    assert (
        main(
            [
                "import",
                "eurosat",
                str(root),
                "--out",
                out,
                "--bands",
                "B08,B8A,B09,B12",
                "--val-fraction",
                "0",
                "--test-fraction",
                "0",
            ]
        )
        == 0
    )
    img, _ = _patch(out, "train", 0, 0)
    assert [int(img[i, 0, 0]) for i in range(4)] == [800, 1300, 900, 1200]


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_import_eurosat_rgb_every_label_and_pixel(tmp_path, ext):
    """RGB layout: 8-bit B04 B03 B02 -> DN = max(1, round(v * 2750 / 255)); the manifest records the source scaling
    and the clip that training copies into the model card."""
    from training.importers.eurosat import dn_to_rgb

    root = str(tmp_path / "EuroSAT_RGB")
    truth = ba.eurosat_rgb_archive(root, ext=ext)
    out = str(tmp_path / "ds")
    assert main(["import", "eurosat", root, "--out", out]) == 0
    man = json.load(open(os.path.join(out, "manifest.json")))
    assert man["bands"] == ["B04", "B03", "B02"] and man["patch_size"] == 16 and man["task"] == "singlelabel"
    assert man["input_clip"] == {"B04": [0, 2750], "B03": [0, 2750], "B02": [0, 2750]}
    assert man["source"]["format"] == "EuroSAT RGB" and man["resolution_m"] == 10.0
    fp = _footprints(out)
    assert set(fp) == set(truth)
    for name, (cls, arr) in truth.items():
        split, shard, index, text, _crs = fp[name]
        img, target = _patch(out, split, shard, index)
        assert target.tolist() == [int(c["code"] == cls) for c in man["classes"]]
        expect = np.maximum(np.rint(arr.astype(np.float64) * 2750 / 255), 1).astype(np.uint16)
        np.testing.assert_array_equal(img, expect)
        np.testing.assert_array_equal(dn_to_rgb(img)[:, 1:], arr[:, 1:])  # the round trip back to 8 bits
        if ext == ".png":  # lossless: the extremes written into pixel (0, 0) survive
            assert img[:, 0, 0].tolist() == [1, 1380, 2750]
    # a band subset keeps the chosen bands in the given order
    out2 = str(tmp_path / "ds2")
    assert main(["import", "eurosat", root, "--out", out2, "--bands", "B02,B04"]) == 0
    name, (_c, arr) = next(iter(truth.items()))
    split, shard, index, _t, _crs = _footprints(out2)[name]
    img, _ = _patch(out2, split, shard, index)
    want = np.maximum(np.rint(arr[2].astype(np.float64) * 2750 / 255), 1).astype(np.uint16)
    np.testing.assert_array_equal(img[0], want)


@pytest.mark.parametrize("fault", ["mixed", "grey", "broken", "bands"])
def test_bad_eurosat_rgb_input(tmp_path, capsys, fault):
    from PIL import Image

    root = str(tmp_path / "EuroSAT_RGB")
    ba.eurosat_rgb_archive(root)
    args = []
    if fault == "mixed":
        ba._write(os.path.join(root, "Forest", "Forest_9.tif"), np.ones((13, 16, 16), np.uint16), ba.UTM33, 0, 0, 10)
        expect = "error: class folder 'Forest' of"
    elif fault == "grey":
        Image.fromarray(np.zeros((16, 16), np.uint8), "L").save(os.path.join(root, "SeaLake", "SeaLake_2.png"))
        expect = "error: patch 'SeaLake/SeaLake_2' is a L image"
    elif fault == "broken":
        with open(os.path.join(root, "SeaLake", "SeaLake_3.png"), "wb") as f:
            f.write(b"not an image")
        expect = "error: patch 'SeaLake/SeaLake_3': cannot read"
    else:
        args = ["--bands", "B08"]
        expect = "error: --bands B08: EuroSAT RGB images hold the bands B04, B03, B02"
    out = tmp_path / "ds"
    assert main(["import", "eurosat", root, "--out", str(out), *args]) == 2
    assert _err(capsys).startswith(expect)
    assert not out.exists() or os.listdir(out) == []
