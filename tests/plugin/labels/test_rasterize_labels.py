"""satclassify:rasterizelabels (own labels) in real QGIS processing: crop parcels with text and integer codes, a
given or derived class table (legend, codes in the metadata), unknown codes and NULLs reported with counts, points
-> a patch-label dataset through buildpatches, and rasterizeclc's MIXED raster plugged into buildpatches."""

import json

import numpy as np
import pytest
from osgeo import gdal, ogr
from qgis.core import QgsFeature, QgsField, QgsProcessingException, QgsVectorLayer

from satclassify_plugin import compat
from satclassify_plugin.core import raster
from satclassify_plugin.core.contract.dataset import Dataset
from satclassify_plugin.core.labels.classtable import class_color
from tests.rasters import UTM32N, make_polygons, make_raster, read_raster

from ..sentinel_helpers import LogFeedback

X0, Y0, PIX = 600000.0, 5100000.0, 10.0
BANDS = ["B02", "B03", "B04", "B08"]


def parcel_layer(path, codes, kind, cols=6, rows=4, size=16):
    """rows x cols rectangular parcels of size x size pixels, row-major, with ``codes`` (None = NULL) in field
    'crop' of OGR type ``kind``; returns (path, truth raster of the codes' order index + 1, 0 for NULL)."""
    feats = []
    for i, code in enumerate(codes):
        r, c = divmod(i, cols)
        a, b = X0 + c * size * PIX, Y0 - r * size * PIX
        wkt_ = f"POLYGON(({a} {b},{a + size * PIX} {b},{a + size * PIX} {b - size * PIX},{a} {b - size * PIX},{a} {b}))"
        feats.append((wkt_, {} if code is None else {"crop": code}))
    return make_polygons(path, feats, epsg=UTM32N, fields={"crop": kind}, layer="parcels")


def image(path, truth, seed=0, signatures=None):
    """A 4-band uint16 stack: each class value its own signature, plus noise."""
    rng = np.random.default_rng(seed)
    sig = (
        signatures
        if signatures is not None
        else np.array(
            [
                [300, 300, 300, 300],
                [500, 800, 400, 3500],
                [900, 1100, 1300, 2500],
                [400, 500, 300, 4200],
                [1200, 1300, 1500, 2000],
                [700, 600, 500, 1500],
                [300, 400, 200, 100],
                [1500, 1400, 1300, 1700],
            ],
            float,
        )
    )
    img = sig[truth].transpose(2, 0, 1) + rng.normal(0, 60, (4,) + truth.shape)
    return make_raster(path, np.clip(img, 1, 10000).astype(np.uint16), origin=(X0, Y0), pixel=PIX, band_names=BANDS)


TEXT_CODES = [
    "WWH",
    "MAI",
    "GRA",
    "RAP",
    "MAI",
    "WWH",
    "GRA",
    "XYZ",
    "WWH",
    None,
    "RAP",
    "MAI",
    "MAI",
    "GRA",
    "RAP",
    "WWH",
    "XYZ",
    "GRA",
    "RAP",
    "WWH",
    "MAI",
    "GRA",
    "WWH",
    "MAI",
]


def _grid_truth(codes, values, cols=6, size=16):
    rows = len(codes) // cols
    t = np.zeros((rows * size, cols * size), np.uint8)
    for i, code in enumerate(codes):
        r, c = divmod(i, cols)
        t[r * size : (r + 1) * size, c * size : (c + 1) * size] = values.get(code, 0)
    return t


def test_text_codes_with_a_class_table_csv(run_alg, tmp_path):
    src = parcel_layer(tmp_path / "lpis.gpkg", TEXT_CODES, ogr.OFTString)
    ref = make_raster(tmp_path / "ref.tif", np.zeros((64, 96), np.uint16), origin=(X0, Y0), pixel=PIX)
    table = tmp_path / "crops.csv"
    table.write_text(
        "code,value,name,colour\nWWH,1,Winter wheat,#f5deb3\nMAI,2,Maize,#ffd700\n"
        "GRA,3,Grassland,#7cfc00\nRAP,4,Rapeseed,#ffff00\n",
        encoding="utf-8",
    )
    log = LogFeedback()
    res = run_alg(
        "satclassify:rasterizelabels",
        {
            "INPUT": src,
            "FIELD": "crop",
            "CLASS_TABLE": str(table),
            "REFERENCE": ref,
            "RULE": 2,
            "OUTPUT": str(tmp_path / "l.tif"),
        },
        feedback=log,
    )
    got = read_raster(res["OUTPUT"])
    want = _grid_truth(TEXT_CODES, {"WWH": 1, "MAI": 2, "GRA": 3, "RAP": 4})
    np.testing.assert_array_equal(got, want)
    # unknown codes and NULLs: left as no label, never silently: counted in the outputs and the log
    assert (res["UNKNOWN_FEATURES"], res["NULL_FEATURES"], res["CLASS_COUNT"]) == (2, 1, 4)
    text = "\n".join(log.messages)
    assert (
        "WARNING: 2 features have codes that are not codes of the class table and are left as no label (0): "
        "'XYZ' (2)" in text
    ), text
    assert "1 features have no code (empty, NULL): no label" in text
    ds = gdal.Open(res["OUTPUT"])
    names = raster.category_names(ds)
    assert names[:5] == ["no label", "Winter wheat", "Maize", "Grassland", "Rapeseed"]
    assert ds.GetRasterBand(1).GetColorTable().GetColorEntry(2)[:3] == (255, 215, 0)
    assert [c.code for c in raster.classes_from_raster(ds)] == ["WWH", "MAI", "GRA", "RAP"]
    assert json.loads(ds.GetMetadataItem("SATCLASSIFY_CLASS_TABLE"))["derived"] is False


def test_integer_codes_with_a_derived_table(run_alg, tmp_path):
    codes = [
        3110
        if c == "WWH"
        else 1100
        if c == "MAI"
        else 41
        if c == "GRA"
        else 450
        if c == "RAP"
        else None
        if c is None
        else 999
        for c in TEXT_CODES
    ]
    src = parcel_layer(tmp_path / "lpis_int.gpkg", codes, ogr.OFTInteger)
    ref = make_raster(tmp_path / "ref.tif", np.zeros((64, 96), np.uint16), origin=(X0, Y0), pixel=PIX)
    res = run_alg(
        "satclassify:rasterizelabels",
        {"INPUT": src, "FIELD": "crop", "REFERENCE": ref, "OUTPUT": str(tmp_path / "l.tif")},
    )
    # derived: the distinct codes sorted as numbers, values 1..N; 999 is a code like any other here
    order = [41, 450, 999, 1100, 3110]
    values = {c: order.index(c) + 1 for c in order}
    np.testing.assert_array_equal(read_raster(res["OUTPUT"]), _grid_truth(codes, values))
    assert (res["UNKNOWN_FEATURES"], res["NULL_FEATURES"], res["CLASS_COUNT"]) == (0, 1, 5)
    ds = gdal.Open(res["OUTPUT"])
    classes = raster.classes_from_raster(ds)
    assert [(c.value, c.code, c.name, c.color) for c in classes] == [
        (v, str(c), str(c), class_color(v)) for c, v in values.items()
    ]


def test_class_table_layer_maps_codes_and_reports_codes_it_lacks(run_alg, tmp_path):
    src = parcel_layer(tmp_path / "lpis.gpkg", TEXT_CODES, ogr.OFTString)
    table = QgsVectorLayer("None", "crops", "memory")
    pr = table.dataProvider()
    pr.addAttributes(
        [
            QgsField("code", compat.FIELD_STRING),
            QgsField("value", compat.FIELD_INT),
            QgsField("name", compat.FIELD_STRING),
        ]
    )
    table.updateFields()
    for code, value, name in (("WWH", 5, "Cereals"), ("RAP", 5, "Cereals"), ("MAI", 6, "Maize")):
        f = QgsFeature(table.fields())
        f.setAttributes([code, value, name])
        pr.addFeature(f)
    ref = make_raster(tmp_path / "ref.tif", np.zeros((64, 96), np.uint16), origin=(X0, Y0), pixel=PIX)
    res = run_alg(
        "satclassify:rasterizelabels",
        {"INPUT": src, "FIELD": "crop", "CLASS_TABLE": table, "REFERENCE": ref, "OUTPUT": str(tmp_path / "l.tif")},
    )
    np.testing.assert_array_equal(read_raster(res["OUTPUT"]), _grid_truth(TEXT_CODES, {"WWH": 5, "RAP": 5, "MAI": 6}))
    assert res["UNKNOWN_FEATURES"] == 7  # GRA (5) and XYZ (2): not in the table
    ds = gdal.Open(res["OUTPUT"])
    assert [(c.value, c.code, c.name) for c in raster.classes_from_raster(ds)] == [
        (5, "WWH;RAP", "Cereals"),
        (6, "MAI", "Maize"),
    ]


def test_selected_features_only(run_alg, tmp_path):
    from qgis.core import QgsProcessingContext, QgsProcessingFeatureSourceDefinition, QgsProject

    src = parcel_layer(tmp_path / "lpis.gpkg", TEXT_CODES, ogr.OFTString)
    layer = QgsVectorLayer(src, "lpis", "ogr")
    QgsProject.instance().addMapLayer(layer)
    try:
        layer.selectByIds([f.id() for f in layer.getFeatures() if f["crop"] == "MAI"])
        ref = make_raster(tmp_path / "ref.tif", np.zeros((64, 96), np.uint16), origin=(X0, Y0), pixel=PIX)
        ctx = QgsProcessingContext()
        ctx.setProject(QgsProject.instance())
        res = run_alg(
            "satclassify:rasterizelabels",
            {
                "INPUT": QgsProcessingFeatureSourceDefinition(layer.id(), True),
                "FIELD": "crop",
                "REFERENCE": ref,
                "OUTPUT": str(tmp_path / "sel.tif"),
            },
            context=ctx,
        )
        np.testing.assert_array_equal(read_raster(res["OUTPUT"]), _grid_truth(TEXT_CODES, {"MAI": 1}))
        assert res["CLASS_COUNT"] == 1
    finally:
        QgsProject.instance().removeMapLayer(layer.id())


def test_bad_inputs_are_refused_with_the_fix(run_alg, tmp_path):
    src = parcel_layer(tmp_path / "lpis.gpkg", TEXT_CODES, ogr.OFTString)
    ref = make_raster(tmp_path / "ref.tif", np.zeros((64, 96), np.uint16), origin=(X0, Y0), pixel=PIX)
    table = tmp_path / "t.csv"
    table.write_text("code,value\nOAT,1\n", encoding="utf-8")
    with pytest.raises(QgsProcessingException, match="has a known code of the class table in field 'crop'"):
        run_alg(
            "satclassify:rasterizelabels",
            {
                "INPUT": src,
                "FIELD": "crop",
                "CLASS_TABLE": str(table),
                "REFERENCE": ref,
                "OUTPUT": str(tmp_path / "o.tif"),
            },
        )
    table.write_text("code,value\nWWH,1\nWWH,2\n", encoding="utf-8")
    with pytest.raises(QgsProcessingException, match="rows 1 and 2 both hold code WWH"):
        run_alg(
            "satclassify:rasterizelabels",
            {
                "INPUT": src,
                "FIELD": "crop",
                "CLASS_TABLE": str(table),
                "REFERENCE": ref,
                "OUTPUT": str(tmp_path / "o.tif"),
            },
        )
    with pytest.raises(QgsProcessingException, match="field 'kultur' is not in layer 'parcels'.*the class field"):
        run_alg(
            "satclassify:rasterizelabels",
            {"INPUT": src, "FIELD": "kultur", "REFERENCE": ref, "OUTPUT": str(tmp_path / "o.tif")},
        )
    pts = make_points(tmp_path / "p.gpkg", [(f"POINT({X0 + 5} {Y0 - 5})", {"crop": "MAI"})])
    with pytest.raises(QgsProcessingException, match="MIXED.*applies to polygons, not to points"):
        run_alg(
            "satclassify:rasterizelabels",
            {
                "INPUT": pts,
                "FIELD": "crop",
                "REFERENCE": ref,
                "RULE": 2,
                "OUTPUT": str(tmp_path / "o.tif"),
                "MIXED": str(tmp_path / "m.tif"),
            },
        )
    with pytest.raises(QgsProcessingException, match="CORINE Land Cover needs polygons"):  # CLC stays polygons only
        run_alg(
            "satclassify:rasterizeclc",
            {"INPUT": pts, "FIELD": "crop", "REFERENCE": ref, "OUTPUT": str(tmp_path / "o.tif")},
        )
    assert not (tmp_path / "o.tif").exists() and not (tmp_path / "m.tif").exists()


def make_points(path, feats):
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("pts", raster.srs_from_epsg(UTM32N), ogr.wkbPoint)
    lyr.CreateField(ogr.FieldDefn("crop", ogr.OFTString))
    for geom, attrs in feats:
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetGeometry(ogr.CreateGeometryFromWkt(geom))
        for k, v in attrs.items():
            f.SetField(k, v)
        lyr.CreateFeature(f)
    ds = None
    return str(path)


POINTS = [  # (column, row) of the pixel, code
    (20, 20, "MAI"),
    (60, 20, "WWH"),
    (100, 20, "GRA"),
    (20, 60, "WWH"),
    (60, 60, "MAI"),
    (100, 60, "GRA"),
    (20, 100, "GRA"),
    (60, 100, "WWH"),
    (100, 100, "MAI"),
    (3, 3, "WWH"),  # too close to the edge for a whole 16-pixel patch
    (40, 40, None),  # NULL: no label
    (80, 80, "MAI"),
    (80, 80, "GRA"),  # two classes in one pixel: no label
]


def test_points_give_a_patch_label_dataset(run_alg, tmp_path):
    feats = [
        (f"POINT({X0 + (c + 0.3) * PIX} {Y0 - (r + 0.6) * PIX})", {} if code is None else {"crop": code})
        for c, r, code in POINTS
    ]
    src = make_points(tmp_path / "pts.gpkg", feats)
    truth = np.zeros((120, 120), np.int64)
    img = image(tmp_path / "s2.tif", truth)
    log = LogFeedback()
    res = run_alg(
        "satclassify:rasterizelabels",
        {"INPUT": src, "FIELD": "crop", "REFERENCE": img, "OUTPUT": str(tmp_path / "pts.tif")},
        feedback=log,
    )
    lab = read_raster(res["OUTPUT"])
    values = {"GRA": 1, "MAI": 2, "WWH": 3}  # derived, sorted
    want = np.zeros_like(lab)
    for c, r, code in POINTS[:10]:
        want[r, c] = values[code]
    # the conflicting pixel (80, 80) and the NULL point left unlabelled
    assert np.argwhere(lab != want).tolist() == [], lab[lab != want]
    assert res["NULL_FEATURES"] == 1 and res["LABELLED_POINTS"] == 10
    assert "WARNING: 1 pixels hold points of different classes: left as no label (0)" in "\n".join(log.messages)
    assert gdal.Open(res["OUTPUT"]).GetMetadataItem("SATCLASSIFY_LABELS") == "points"
    out = run_alg(
        "satclassify:buildpatches",
        {
            "IMAGE": img,
            "LABELS": res["OUTPUT"],
            "PATCH_SIZE": 16,
            "BLOCK_SIZE": 1,
            "VAL_FRACTION": 0.2,
            "TEST_FRACTION": 0.0,
            "SEED": 2,
            "OUTPUT_FOLDER": str(tmp_path / "ds"),
        },
    )
    d = Dataset(out["OUTPUT_FOLDER"])
    assert d.task == "singlelabel" and not d.has_labels
    assert d.manifest["patch_rule"]["type"] == "centred_on_points"
    assert [c["code"] for c in d.classes] == ["GRA", "MAI", "WWH"]
    seen = {}
    for split in d.splits:
        if not d.manifest["splits"][split]["patches"]:
            continue
        targets = d.load_targets(split)
        for (r0, c0), t in zip(d.manifest["positions"][split], targets):
            seen[(r0 + 8, c0 + 8)] = [c["code"] for c, x in zip(d.classes, t) if x]
    # every point with a whole patch around it, centred on its pixel, its class the target; the edge point dropped
    assert seen == {(r, c): [code] for c, r, code in POINTS[:9]}


def test_buildpatches_takes_rasterizeclc_mixed_raster_directly(run_alg, tmp_path):
    """The MIXED raster as rasterizeclc writes it (1 = partly covered, 2 = claimed twice) goes straight into
    buildpatches' MASK with MASK_IS_NOISE: both kinds of noisy pixel are dropped (mask 0, label 0), pure ones kept."""
    size = 48
    feats = [
        (f"POLYGON(({X0} {Y0},{X0 + 245} {Y0},{X0 + 245} {Y0 - 480},{X0} {Y0 - 480},{X0} {Y0}))", {"code_18": "211"}),
        (
            f"POLYGON(({X0 + 245} {Y0},{X0 + 480} {Y0},{X0 + 480} {Y0 - 480},{X0 + 245} {Y0 - 480},{X0 + 245} {Y0}))",
            {"code_18": "311"},
        ),
        # a forest polygon over the arable one (rows 10-19, columns 10-19): claimed twice
        (
            f"POLYGON(({X0 + 100} {Y0 - 100},{X0 + 200} {Y0 - 100},{X0 + 200} {Y0 - 200},{X0 + 100} {Y0 - 200},"
            f"{X0 + 100} {Y0 - 100}))",
            {"code_18": "312"},
        ),
    ]
    src = make_polygons(tmp_path / "clc.gpkg", feats, epsg=UTM32N, fields={"code_18": ogr.OFTString})
    img = image(tmp_path / "s2.tif", np.zeros((size, size), np.int64))
    res = run_alg(
        "satclassify:rasterizeclc",
        {
            "INPUT": src,
            "REFERENCE": img,
            "LEVEL": 2,
            "RULE": 2,
            "OUTPUT": str(tmp_path / "l.tif"),
            "MIXED": str(tmp_path / "m.tif"),
        },
    )
    mixed = read_raster(res["MIXED"])
    assert set(np.unique(mixed)) == {0, 1, 2}
    assert (mixed[:, 24] == 1).all() and (mixed[10:20, 10:20] == 2).all()  # x = 245 m splits column 24 in half
    out = run_alg(
        "satclassify:buildpatches",
        {
            "IMAGE": img,
            "LABELS": res["OUTPUT"],
            "MASK": res["MIXED"],
            "MASK_IS_NOISE": True,
            "PATCH_SIZE": 16,
            "BLOCK_SIZE": 1,
            "MAX_MASKED": 1.0,
            "MIN_LABELLED": 0.0,
            "VAL_FRACTION": 0.0,
            "TEST_FRACTION": 0.0,
            "OUTPUT_FOLDER": str(tmp_path / "ds"),
        },
    )
    d = Dataset(out["OUTPUT_FOLDER"])
    _i, labs, masks = d.load("train")
    lab_full, mask_full = np.zeros((size, size), np.uint8), np.zeros((size, size), np.uint8)
    for (r0, c0), lb, mk in zip(d.manifest["positions"]["train"], labs, masks):
        lab_full[r0 : r0 + 16, c0 : c0 + 16], mask_full[r0 : r0 + 16, c0 : c0 + 16] = lb, mk
    assert len(labs) == 9
    np.testing.assert_array_equal(mask_full, (mixed == 0).astype(np.uint8))
    assert (lab_full[mixed > 0] == 0).all() and (lab_full[mixed == 0] > 0).all()
