"""satclassify:buildpatches in real QGIS processing: counts, edges, spatial split, georeferencing, masks."""

import os
import subprocess

import numpy as np
import pytest
from osgeo import gdal, ogr
from qgis.core import QgsProcessingException, QgsVectorLayer

from satclassify_plugin.core import raster
from satclassify_plugin.core.contract import clc
from satclassify_plugin.core.contract.dataset import Dataset
from satclassify_plugin.core.contract.feedback import Monitor
from satclassify_plugin.core.labels.patches import build_patches
from tests.rasters import make_raster

from ..sentinel_helpers import LogFeedback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
X0, Y0, PIX = 600000.0, 5100000.0, 10.0
H, W = 96, 128
BANDS = ["B02", "B03", "B04", "B08"]


def image_array(h=H, w=W):
    r, c = np.mgrid[0:h, 0:w]
    return np.stack([(b * 15000 + r * w + c + 1) for b in range(4)]).astype(np.uint16)


def label_raster(path, arr, level=1, origin=(X0, Y0), pixel=PIX, named=True):
    make_raster(path, arr.astype(np.uint8), origin=origin, pixel=pixel)
    if named:
        ds = gdal.Open(str(path), gdal.GA_Update)
        raster.write_class_metadata(ds.GetRasterBand(1), clc.classes(level))
        ds = None
    return str(path)


@pytest.fixture
def data(tmp_path):
    img = make_raster(tmp_path / "s2.tif", image_array(), origin=(X0, Y0), pixel=PIX, band_names=BANDS)
    lab = np.ones((H, W), np.uint8) * 2
    lab[:, 64:] = 3
    lab[:10, :10] = 0  # one patch with few labels
    labels = label_raster(tmp_path / "labels.tif", lab)
    return {"img": img, "labels": labels, "lab": lab, "dir": tmp_path}


def run(run_alg, data, out="ds", context=None, **kw):
    params = {
        "IMAGE": data["img"],
        "LABELS": data["labels"],
        "PATCH_SIZE": 16,
        "BLOCK_SIZE": 2,
        "VAL_FRACTION": 0.25,
        "TEST_FRACTION": 0.25,
        "SEED": 1,
        "MIN_LABELLED": 0.5,
        "OUTPUT_FOLDER": str(data["dir"] / out),
    }
    params.update(kw)
    return run_alg("satclassify:buildpatches", params, context=context)


def footprints(res):
    layer = QgsVectorLayer(res["OUTPUT_FOOTPRINTS"], "patches", "ogr")
    assert layer.isValid()
    return layer, [f for f in layer.getFeatures()]


def test_counts_georef_and_content(run_alg, data):
    res = run(run_alg, data)
    ds = Dataset(res["OUTPUT_FOLDER"])
    counts = {s: ds.count(s) if s in ds.manifest["splits"] else 0 for s in ("train", "val", "test")}
    # 6 x 8 = 48 positions of 16 px; the top-left patch has 100/256 unlabelled pixels and is kept (>= 50 %)
    assert sum(counts.values()) == 48
    assert (res["TRAIN_COUNT"], res["VAL_COUNT"], res["TEST_COUNT"]) == (counts["train"], counts["val"], counts["test"])
    assert counts["val"] >= 12 and counts["test"] >= 12 and counts["train"] >= 12
    assert ds.bands == BANDS and ds.patch_size == 16 and ds.manifest["dtype"] == "uint16"
    assert [c["name"] for c in ds.classes] == [c.name for c in clc.classes(1)]
    assert ds.classes[1]["code"] == "2"
    img = image_array()
    layer, feats = footprints(res)
    assert layer.featureCount() == 48
    assert {f.name() for f in layer.fields()} >= {"split", "fold", "shard", "index", "frac_2", "frac_3"}
    shards = {s: ds.shards(s) for s in ds.splits}
    for f in feats:
        r0, c0 = f["row"], f["col"]
        assert 0 <= r0 and r0 + 16 <= H and 0 <= c0 and c0 + 16 <= W  # never across the edge
        bb = f.geometry().boundingBox()
        assert (bb.xMinimum(), bb.yMaximum()) == (X0 + c0 * PIX, Y0 - r0 * PIX)
        assert (bb.width(), bb.height()) == (160.0, 160.0)
        imgs, labs, _ = shards[f["split"]][f["shard"]]
        np.testing.assert_array_equal(imgs[f["index"]], img[:, r0 : r0 + 16, c0 : c0 + 16])
        np.testing.assert_array_equal(labs[f["index"]], data["lab"][r0 : r0 + 16, c0 : c0 + 16])
        expected3 = (data["lab"][r0 : r0 + 16, c0 : c0 + 16] == 3).mean()
        assert abs(f["frac_3"] - expected3) < 1e-6
    # the positions in the manifest follow the shard order
    pos = ds.manifest["positions"]["train"]
    first = next(iter(ds.iter_patches("train")))[0]
    np.testing.assert_array_equal(first, img[:, pos[0][0] : pos[0][0] + 16, pos[0][1] : pos[0][1] + 16])
    # class counts of the manifest = label pixels of the patches
    tl = ds.load("train")[1]
    assert ds.class_counts("train")[3] == int((tl == 3).sum()) and ds.class_counts("train")[1] == 0
    # memory-mapped reading with plain numpy
    m = np.load(os.path.join(res["OUTPUT_FOLDER"], ds.manifest["splits"]["val"]["shards"][0]["images"]), mmap_mode="r")
    assert isinstance(m, np.memmap) and m.dtype == np.uint16 and m.shape[1:] == (4, 16, 16)
    assert os.path.basename(res["MANIFEST"]) == "manifest.json" and res["OUTPUT_FOOTPRINTS"].endswith(
        "patches.gpkg|layername=patches"
    )


def _pixels(feats, splits, p=16):
    px = set()
    for f in feats:
        if f["split"] in splits:
            px |= {(r, c) for r in range(f["row"], f["row"] + p) for c in range(f["col"], f["col"] + p)}
    return px


@pytest.mark.parametrize("stride", [16, 8, 5])
def test_split_blocks_do_not_share_pixels(run_alg, data, stride):
    res = run(run_alg, data, out=f"s{stride}", STRIDE=stride)
    _, feats = footprints(res)
    train = _pixels(feats, {"train"})
    other = _pixels(feats, {"val", "test"})
    assert train and other and not (train & other)
    assert not (_pixels(feats, {"val"}) & _pixels(feats, {"test"}))
    # every spatial block of 32 px holds a single split
    blocks = {}
    for f in feats:
        blocks.setdefault((f["row"] // 32, f["col"] // 32), set()).add(f["split"])
    assert all(len(s) == 1 for s in blocks.values())
    assert Dataset(res["OUTPUT_FOLDER"]).manifest["stride"] == stride


def test_seed_changes_split_and_is_reproducible(run_alg, data):
    a, b, c = (
        Dataset(run(run_alg, data, out=o, SEED=s)["OUTPUT_FOLDER"]).manifest for o, s in (("a", 1), ("b", 1), ("c", 7))
    )
    assert a["positions"] == b["positions"] and a["positions"] != c["positions"]


def test_mask_nodata_and_warped_labels(run_alg, data):
    tmp = data["dir"]
    img = image_array()
    img[:, 40:48, :] = 0  # nodata rows
    src = make_raster(tmp / "nd.tif", img, origin=(X0, Y0), pixel=PIX, band_names=BANDS, nodata=0)
    mask = np.ones((H, W), np.uint8)
    mask[:16, 16:32] = 0  # one whole patch invalid
    mask[16:20, 0:16] = 0  # 4/16 of a patch invalid
    mpath = make_raster(tmp / "mask.tif", mask, origin=(X0, Y0), pixel=PIX)
    # labels at 20 m on the same extent: warped to the 10 m image grid
    lab20 = np.where(np.arange(W // 2)[None, :] < 32, 2, 3).repeat(H // 2, 0).astype(np.uint8)
    lpath = label_raster(tmp / "lab20.tif", lab20, pixel=20.0)
    res = run_alg(
        "satclassify:buildpatches",
        {
            "IMAGE": src,
            "LABELS": lpath,
            "MASK": mpath,
            "PATCH_SIZE": 16,
            "BLOCK_SIZE": 2,
            "VAL_FRACTION": 0.0,
            "TEST_FRACTION": 0.0,
            "MAX_MASKED": 0.3,
            "OUTPUT_FOLDER": str(tmp / "m"),
        },
    )
    ds = Dataset(res["OUTPUT_FOLDER"])
    _, feats = footprints(res)
    rc = {(f["row"], f["col"]): f for f in feats}
    assert (0, 16) not in rc  # fully masked
    assert (16, 0) in rc and abs(rc[(16, 0)]["masked"] - 0.25) < 1e-9
    assert (32, 0) not in rc and (32, 64) not in rc  # rows 40..47 at nodata: 50 % invalid > 30 %
    imgs, labs, masks = ds.load("train")
    f = rc[(16, 0)]
    i = f["shard"] * 256 + f["index"]
    assert masks is not None and masks[i][:4].sum() == 0 and masks[i][4:].min() == 1
    assert (labs[i][:4] == 0).all() and (labs[i][4:] == 2).all()
    # warped labels: columns < 64 are class 2, the rest class 3
    f2 = rc[(0, 64)]
    j = f2["shard"] * 256 + f2["index"]
    assert (labs[j] == 3).all()
    assert res["TRAIN_COUNT"] == ds.count("train") and res["VAL_COUNT"] == 0


def test_nodata_rows_drop_patches(tmp_path):
    img = image_array()
    img[:, 40:48, :] = 0
    src = make_raster(tmp_path / "nd.tif", img, origin=(X0, Y0), pixel=PIX, band_names=BANDS, nodata=0)
    lab = label_raster(tmp_path / "l.tif", np.full((H, W), 2, np.uint8))
    res = build_patches(
        src, lab, str(tmp_path / "o"), patch_size=16, block_size=2, val_fraction=0, test_fraction=0, max_masked=0.3
    )
    # the patch row 32..47 is half nodata (> 30 %): 8 patches dropped
    assert res.counts["train"] == 48 - 8
    assert all(r != 32 for r, _ in res.manifest["positions"]["train"])


def test_k_folds_and_class_aware_sampling(run_alg, data):
    tmp = data["dir"]
    lab = np.full((H, W), 1, np.uint8)
    rare = [(0, 0), (32, 96), (64, 48), (80, 112)]
    for r, c in rare:
        lab[r : r + 16, c : c + 16] = 4
    lpath = label_raster(tmp / "rare.tif", lab)
    res = run_alg(
        "satclassify:buildpatches",
        {
            "IMAGE": data["img"],
            "LABELS": lpath,
            "PATCH_SIZE": 16,
            "BLOCK_SIZE": 1,
            "VAL_FRACTION": 0.0,
            "TEST_FRACTION": 0.0,
            "K_FOLDS": 3,
            "MAX_PATCHES": 8,
            "CLASS_AWARE": True,
            "SEED": 2,
            "OUTPUT_FOLDER": str(tmp / "r"),
        },
    )
    ds = Dataset(res["OUTPUT_FOLDER"])
    assert ds.count("train") == 8
    assert ds.class_counts("train")[4] == 4 * 256
    _, feats = footprints(res)
    assert sorted({f["fold"] for f in feats}) == [0, 1, 2]
    assert ds.manifest["k_folds"] == 3 and len(ds.manifest["folds"]["train"]) == 8
    assert sorted(ds.manifest["folds"]["train"]) == sorted(f["fold"] for f in feats)


def test_log_reports_class_histograms_per_split(run_alg, data):
    fb = LogFeedback()
    lpath = label_raster(data["dir"] / "half.tif", np.where(np.arange(W)[None, :] < 32, 2, 3).repeat(H, 0))
    res = run_alg(
        "satclassify:buildpatches",
        {
            "IMAGE": data["img"],
            "LABELS": lpath,
            "PATCH_SIZE": 32,
            "BLOCK_SIZE": 1,
            "VAL_FRACTION": 0.0,
            "TEST_FRACTION": 0.0,
            "OUTPUT_FOLDER": str(data["dir"] / "h"),
        },
        feedback=fb,
    )
    assert res["TRAIN_COUNT"] == 12
    assert "train: 12 patches; classes: Agricultural areas 25.0%, Forest and semi natural areas 75.0%" in fb.messages
    assert "val: 0 patches" in fb.messages
    assert (
        "12 patch positions (32 px, stride 32): 12 kept, 0 below MIN_LABELLED 0.5 or above MAX_MASKED 0.05"
        in fb.messages
    )
    assert not [m for m in fb.messages if "single class" in m]
    # a one-class label raster still builds, with a warning that names the class and the fix
    one = label_raster(data["dir"] / "one.tif", np.full((H, W), 3, np.uint8))
    fb = LogFeedback()
    run_alg(
        "satclassify:buildpatches",
        {
            "IMAGE": data["img"],
            "LABELS": one,
            "PATCH_SIZE": 32,
            "BLOCK_SIZE": 1,
            "VAL_FRACTION": 0.0,
            "TEST_FRACTION": 0.0,
            "OUTPUT_FOLDER": str(data["dir"] / "one"),
        },
        feedback=fb,
    )
    assert [
        m
        for m in fb.messages
        if m.startswith(
            "WARNING: the patches hold a single class (3 Forest and semi natural areas): "
            "a model trained on them cannot learn"
        )
    ]


def test_clc_level_class_table_for_unnamed_labels(run_alg, data):
    tmp = data["dir"]
    lpath = label_raster(tmp / "plain.tif", np.full((H, W), 12, np.uint8), named=False)
    res = run_alg(
        "satclassify:buildpatches",
        {
            "IMAGE": data["img"],
            "LABELS": lpath,
            "CLASSES": 3,
            "PATCH_SIZE": 32,
            "BLOCK_SIZE": 1,
            "VAL_FRACTION": 0.2,
            "TEST_FRACTION": 0.2,
            "OUTPUT_FOLDER": str(tmp / "u"),
        },
    )
    ds = Dataset(res["OUTPUT_FOLDER"])
    assert len(ds.classes) == 44 and ds.classes[11] == {
        "value": 12,
        "code": "211",
        "name": "Non-irrigated arable land",
        "color": "#ffffa8",
    }
    assert res["TRAIN_COUNT"] + res["VAL_COUNT"] + res["TEST_COUNT"] == 12


def test_cancel_writes_no_dataset(data):
    out = data["dir"] / "cancel"
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 8

    with pytest.raises(Exception, match="cancelled by the user"):
        build_patches(
            data["img"], data["labels"], str(out), patch_size=16, block_size=2, monitor=Monitor(is_canceled=cancel)
        )
    assert not out.exists() or os.listdir(out) == []


def test_small_disk_is_refused_before_writing_and_keeps_the_earlier_dataset(run_alg, data):
    """On a (real, 256 KiB tmpfs) disk too small for the dataset: a message with the sizes, nothing written, an
    earlier dataset there unchanged (buildpatches used to die with SIGBUS and had already removed it)."""
    import subprocess

    small = data["dir"] / "small"
    small.mkdir()
    try:
        ok = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], capture_output=True
            ).returncode
            == 0
        )
    except FileNotFoundError:
        ok = False
    if not ok:
        pytest.skip("cannot mount a tmpfs here (not root, or no mount command)")
    try:
        (small / "ds").mkdir()
        (small / "ds" / "manifest.json").write_text('{"old": true}')
        with pytest.raises(
            QgsProcessingException,
            match=r"the dataset needs about \d+ MB \(\d+ patches\) but only "
            r"0 MB are free on the disk of '.*ds'",
        ):
            run(run_alg, data, out="small/ds", OVERWRITE=True, PATCH_SIZE=8, STRIDE=4)
        assert os.listdir(small / "ds") == ["manifest.json"]
        assert (small / "ds" / "manifest.json").read_text() == '{"old": true}'
    finally:
        subprocess.run(["umount", str(small)], check=False)


# -- bad inputs --------------------------------------------------------------------------------------------
def _bad(run_alg, data, msg, **kw):
    with pytest.raises(QgsProcessingException, match=msg):
        run(run_alg, data, out="bad", **kw)
    bad = data["dir"] / "bad"
    assert not (bad / "manifest.json").exists()


def test_bad_float_image(run_alg, data):
    f = make_raster(data["dir"] / "f.tif", image_array().astype(np.float32), origin=(X0, Y0), pixel=PIX)
    _bad(run_alg, data, "is Float32: datasets store uint16 digital numbers", IMAGE=f)


def test_bad_unnamed_labels(run_alg, data):
    lpath = label_raster(data["dir"] / "plain.tif", data["lab"], named=False)
    _bad(run_alg, data, r"has no class names \(category names / colour table\): choose a CLC level", LABELS=lpath)


def test_bad_label_value_not_in_table(run_alg, data):
    lab = data["lab"].copy()
    lab[50, 50] = 9
    lpath = label_raster(data["dir"] / "l9.tif", lab)
    _bad(run_alg, data, r"holds value 9 \(row 50\), which is not in its class table", LABELS=lpath)


def test_bad_patch_larger_than_image(run_alg, data):
    _bad(run_alg, data, "image is 128 x 96 pixels, smaller than one 128 x 128 patch", PATCH_SIZE=128)


def test_bad_fractions(run_alg, data):
    _bad(run_alg, data, r"val fraction 0.6 \+ test fraction 0.5 must be below 1", VAL_FRACTION=0.6, TEST_FRACTION=0.5)


def test_bad_one_fold(run_alg, data):
    _bad(run_alg, data, "K_FOLDS must be 0 \\(no folds\\) or at least 2, not 1", K_FOLDS=1)


def test_bad_too_few_blocks(run_alg, data):
    _bad(
        run_alg,
        data,
        r"only 1 spatial block\(s\) of 100 x 100 patches hold patches, none is left for training",
        BLOCK_SIZE=100,
    )


def test_bad_too_many_folds(run_alg, data):
    _bad(run_alg, data, "10 folds need at least 10 train blocks", K_FOLDS=10)


def test_bad_no_labelled_patch(run_alg, data):
    lpath = label_raster(data["dir"] / "zero.tif", np.zeros((H, W), np.uint8))
    _bad(run_alg, data, "no patch has at least 50% labelled pixels", LABELS=lpath)


def test_bad_existing_dataset(run_alg, data):
    run(run_alg, data, out="bad")
    with pytest.raises(QgsProcessingException, match="already holds a dataset.*allow overwriting"):
        run(run_alg, data, out="bad")
    res = run(run_alg, data, out="bad", OVERWRITE=True, SEED=5)
    assert Dataset(res["OUTPUT_FOLDER"]).manifest["split_rule"]["seed"] == 5


def test_bad_label_without_crs_on_other_grid(run_alg, data):
    lpath = make_raster(data["dir"] / "nocrs.tif", np.ones((10, 10), np.uint8), origin=(0, 0), epsg=None)
    _bad(run_alg, data, "has no CRS and is not on the image grid", LABELS=lpath)


def test_qgis_process_buildpatches(data):
    out = data["dir"] / "qp"
    env = dict(os.environ, SATCLASSIFY_QGIS_CONFIG=str(data["dir"] / "qgis-config"), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [
            os.path.join(ROOT, "scripts", "qgis_process.sh"),
            "run",
            "satclassify:buildpatches",
            "--",
            f"IMAGE={data['img']}",
            f"LABELS={data['labels']}",
            "PATCH_SIZE=32",
            "BLOCK_SIZE=1",
            "VAL_FRACTION=0.25",
            "TEST_FRACTION=0",
            f"OUTPUT_FOLDER={out}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "TRAIN_COUNT:\t9" in proc.stdout and "VAL_COUNT:\t3" in proc.stdout
    ds = Dataset(str(out))
    assert ds.count("train") == 9 and ds.count("val") == 3
    fp = ogr.Open(str(out / "patches.gpkg"))
    assert fp.GetLayer(0).GetFeatureCount() == 12


def test_footprints_are_loaded_on_completion(run_alg, data):
    from qgis.core import QgsProcessingContext, QgsProject

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    res = run(run_alg, data, out="load", context=context)
    assert context.willLoadLayerOnCompletion(res["OUTPUT_FOOTPRINTS"])
    assert context.layerToLoadOnCompletionDetails(res["OUTPUT_FOOTPRINTS"]).name == "patches"


def test_manifest_records_the_ground_resolution(run_alg, data, tmp_path):
    """Issue 25 item 6: the manifest carries the pixel size in ground metres (resolution_m), which training copies
    into the model card, so classify can check a raster's pixels against it."""
    res = run(run_alg, data)
    ds = Dataset(res["OUTPUT_FOLDER"])
    assert ds.manifest["resolution_m"] == 10.0 and ds.resolution_m == 10.0
    # Web Mercator at 60 N: 20 map units are 10 m on the ground
    import math

    y = 6378137.0 * math.log(math.tan(math.pi / 4 + math.radians(60.0) / 2))
    merc = {
        "img": make_raster(
            tmp_path / "m.tif", image_array(), origin=(1000000.0, y), pixel=20.0, epsg=3857, band_names=BANDS
        ),
        "labels": label_raster(tmp_path / "ml.tif", data["lab"], origin=(1000000.0, y), pixel=20.0),
        "dir": tmp_path,
    }
    ds = gdal.Open(merc["labels"], gdal.GA_Update)
    ds.SetProjection(gdal.Open(merc["img"]).GetProjection())
    ds = None
    res = run(run_alg, merc, out="merc")
    assert Dataset(res["OUTPUT_FOLDER"]).resolution_m == pytest.approx(10.0, rel=0.01)


def test_rasterizeclc_mixed_raster_as_a_noise_mask(run_alg, data, tmp_path):
    """buildpatches takes rasterizeclc's MIXED raster (1 = mixed, 0 = pure) directly as a noise mask
    (MASK_IS_NOISE): its mixed pixels become invalid (label 0, mask 0) and patches with too many are dropped; the
    same raster as a validity mask would keep only the mixed pixels."""
    mixed = np.zeros((H, W), np.uint8)
    mixed[:16, 16:32] = 1  # one whole patch mixed
    mixed[16:20, 0:16] = 1  # 4/16 of a patch mixed
    mpath = make_raster(tmp_path / "mixed.tif", mixed, origin=(X0, Y0), pixel=PIX, nodata=0)
    base = {
        "IMAGE": data["img"],
        "LABELS": data["labels"],
        "MASK": mpath,
        "PATCH_SIZE": 16,
        "BLOCK_SIZE": 2,
        "VAL_FRACTION": 0.0,
        "TEST_FRACTION": 0.0,
        "MAX_MASKED": 0.3,
    }
    res = run_alg("satclassify:buildpatches", {**base, "MASK_IS_NOISE": True, "OUTPUT_FOLDER": str(tmp_path / "n")})
    ds = Dataset(res["OUTPUT_FOLDER"])
    assert ds.manifest["mask_is_noise"] is True
    _, feats = footprints(res)
    rc = {(f["row"], f["col"]): f for f in feats}
    assert (0, 16) not in rc and (0, 0) in rc and rc[(0, 0)]["masked"] == 0
    assert abs(rc[(16, 0)]["masked"] - 0.25) < 1e-9
    _imgs, labs, masks = ds.load("train")
    f = rc[(16, 0)]
    i = f["shard"] * 256 + f["index"]
    assert masks[i][:4].sum() == 0 and masks[i][4:].min() == 1 and (labs[i][:4] == 0).all() and labs[i][4:].min() > 0
    # the same raster read as a validity mask (the default): only the mixed pixels would count as valid
    res = run_alg("satclassify:buildpatches", {**base, "OUTPUT_FOLDER": str(tmp_path / "v")})
    _, feats = footprints(res)
    assert {(f["row"], f["col"]) for f in feats} == {(0, 16)}
