"""satclassify export-openeo (satclassify_plugin/headless/openeo_export.py): the UDF, run locally through the openeo
client's UDF tooling as apply_neighborhood would run it, gives the classes of the plugin's classify core; the
graph, job options and legend keep the card's bands, halo, classes and colours. Nothing here calls a service."""

import json
import os
import zipfile

import numpy as np
import pytest

from satclassify_plugin.core.contract.modelcard import parse_card, preprocess
from tests import onnx_models as om
from tests.rasters import make_raster, read_raster

openeo = pytest.importorskip("openeo", reason="the openeo client is not installed (requirements-qgis.txt)")
xr = pytest.importorskip("xarray", reason="xarray is not installed (it comes with the openeo client)")

from openeo.udf.run_code import extract_udf_dependencies, load_module_from_string  # noqa: E402

from satclassify_plugin.core.classify.pipeline import classify  # noqa: E402
from satclassify_plugin.headless import openeo_export as ox  # noqa: E402

PIXEL = 10.0
ORIGIN = (500000.0, 5000000.0)


def stack(tmp_path, h=150, w=130, seed=0, nodata_holes=True):
    """A 4-band uint16 Sentinel-2 DN stack (B02 B03 B04 B08) with fields, noise and a few no-data pixels."""
    rng = np.random.default_rng(seed)
    base = rng.integers(200, 3500, size=(4, 1, 1))
    yy, xx = np.mgrid[0:h, 0:w]
    fields = ((yy // 23 + xx // 17) % 5)[None] * rng.integers(100, 900, size=(4, 1, 1))
    a = (base + fields + rng.normal(0, 150, (4, h, w))).clip(1, 9000).astype(np.uint16)
    if nodata_holes:
        a[:, 40:43, 70:75] = 0  # a no-data hole inside the scene
        a[2, 100, 10] = 0  # one band at DN 0: no measurement
    path = make_raster(tmp_path / "stack.tif", a, origin=ORIGIN, pixel=PIXEL, band_names=om.S2_BANDS4)
    return path, a


def cube_of(a, bands=om.S2_BANDS4):
    """The stack as an openEO-style xarray cube (bands, y, x) with labels and pixel-centre coordinates."""
    _, h, w = a.shape
    return xr.DataArray(
        a.astype(np.float64),
        dims=("bands", "y", "x"),
        coords={
            "bands": list(bands),
            "y": ORIGIN[1] - PIXEL * (np.arange(h) + 0.5),
            "x": ORIGIN[0] + PIXEL * (np.arange(w) + 0.5),
        },
    )


def classify_core(tmp_path, stack_path, model, heads=1):
    outs = [str(tmp_path / f"classes_{i}.tif") for i in range(heads)]
    classify(stack_path, model, outs)
    return np.stack([read_raster(p) for p in outs])


def exported(tmp_path, model, **kw):
    files = ox.export_openeo(model, str(tmp_path / "openeo"), **kw)
    with open(files["udf"], encoding="utf-8") as f:
        code = f.read()
    with open(files["process_graph"], encoding="utf-8") as f:
        process = json.load(f)
    an = next(n for n in process["process_graph"].values() if n["process_id"] == "apply_neighborhood")
    size = {d["dimension"]: d["value"] for d in an["arguments"]["size"]}
    overlap = {d["dimension"]: d["value"] for d in an["arguments"]["overlap"]}
    assert size["x"] == size["y"] and overlap["x"] == overlap["y"]
    return files, code, process, size["x"], overlap["x"]


def test_udf_classes_equal_classify_across_chunks(tmp_path):
    """A 5x5-receptive-field model (halo 2) on a 150 x 130 px stack: the UDF over 60 px chunks with the card's halo
    as overlap (3 x 3 chunks, plus the cube's border) gives classify's classes on every pixel, no-data included."""
    model = om.conv_model(tmp_path / "conv.onnx", c_in=4, k=3, layers=(3, 3), seed=3)
    path, a = stack(tmp_path)
    want = classify_core(tmp_path, path, model)
    files, code, process, size, overlap = exported(tmp_path, model)
    assert overlap == 2 and size == 60  # card tile 64 - 2 x halo
    assert a.shape[1] > size and a.shape[2] > size  # more than one chunk each way
    got = ox.run_udf_locally(code, cube_of(a), size, overlap, context={"model_path": model})
    assert got.dims == ("bands", "y", "x") and list(got.coords["bands"].values) == ["class"]
    assert np.array_equal(got.coords["x"].values, cube_of(a).coords["x"].values)
    assert len(np.unique(want)) >= 3  # the stack gives several classes, not one
    assert (want[0, 40:43, 70:75] == 0).all() and want[0, 100, 10] == 0
    np.testing.assert_array_equal(got.values, want)


def test_without_the_halo_as_overlap_chunk_borders_differ(tmp_path):
    """The same run without overlap changes pixels at the chunk borders: the overlap is what makes them equal."""
    model = om.conv_model(tmp_path / "conv.onnx", c_in=4, k=3, layers=(3, 3), seed=3)
    path, a = stack(tmp_path, nodata_holes=False)
    want = classify_core(tmp_path, path, model)
    _, code, _, size, _ = exported(tmp_path, model)
    got = ox.run_udf_locally(code, cube_of(a), size, 0, context={"model_path": model}).values
    diff = np.argwhere(got[0] != want[0])
    assert len(diff), "no difference without overlap: the test model's context does not reach across chunks"
    pos = diff % size  # position inside its chunk
    to_border = np.minimum(pos, size - 1 - pos).min(axis=1)
    assert (to_border < 2).all()  # only within the halo (2 px) of a chunk border


def test_two_head_model_and_band_order_by_label(tmp_path):
    """A CNN-dual-style model (two heads, halo 2): one output band per head, equal to classify's class rasters;
    the UDF takes the bands by label whatever their order in the cube (SCL left over too)."""
    model = om.dual_model(tmp_path / "dual.onnx")
    path, a = stack(tmp_path, seed=5)
    want = classify_core(tmp_path, path, model, heads=2)
    _, code, process, size, overlap = exported(tmp_path, model)
    order = [3, 1, 0, 2]
    cube = cube_of(
        np.concatenate([a[order], np.full((1,) + a.shape[1:], 4)]), bands=[om.S2_BANDS4[i] for i in order] + ["SCL"]
    )
    got = ox.run_udf_locally(code, cube, size, overlap, context={"model_path": model})
    assert list(got.coords["bands"].values) == ["clc_level2", "clc_level1"]
    np.testing.assert_array_equal(got.values, want)
    rename = next(n for n in process["process_graph"].values() if n["process_id"] == "rename_labels")
    assert rename["arguments"]["target"] == ["clc_level2", "clc_level1"]


def test_udf_with_a_time_dimension_classifies_each_date(tmp_path):
    model = om.conv_model(tmp_path / "conv.onnx", c_in=4, k=3, layers=(3,), seed=1)
    _, a = stack(tmp_path, h=40, w=36, nodata_holes=False)
    _, code, _, _, _ = exported(tmp_path, model)
    udf = load_module_from_string(code)
    c1, c2 = cube_of(a), cube_of((a * 0.5).astype(np.uint16))
    both = xr.concat([c1, c2], dim="t").assign_coords(t=np.array(["2023-05-01", "2023-06-01"], "datetime64[ns]"))
    out = udf["apply_datacube"](both, {"model_path": model})
    assert out.dims == ("t", "bands", "y", "x") and out.sizes["t"] == 2
    np.testing.assert_array_equal(out.values[1], udf["apply_datacube"](c2, {"model_path": model}).values)


@pytest.mark.parametrize(
    "card_kw",
    [
        {},
        {"input_clip": [[0, 2750]] * 4},
        {"mean": [0.1, 0.12, 0.09, 0.3], "std": [0.03, 0.04, 0.05, 0.1]},
        {
            "input_scale": 1 / 255.0,
            "input_clip": [[0, 2750], [10, 3000], [0, 255], [5, 9000]],
            "mean": [0.5] * 4,
            "std": [0.25, 0.2, 0.3, 0.1],
        },
    ],
)
def test_udf_preprocessing_equals_modelcard_preprocess(card_kw):
    """The UDF embeds the card's scaling; on random data (negative, beyond the clip, fractional) its preprocess is
    bit for bit modelcard.preprocess, the one definition."""
    card = parse_card(om.card(**card_kw))
    config = ox.udf_config(card, "m.onnx", "0" * 64)
    udf = load_module_from_string(ox.udf_source(config))
    rng = np.random.default_rng(7)
    raw = rng.uniform(-500, 12000, size=(3, 4, 17, 19))
    got = udf["preprocess"](raw)
    assert got.dtype == np.float32
    assert np.array_equal(got, preprocess(card, raw))
    assert np.array_equal(udf["preprocess"](raw[0]), preprocess(card, raw[0]))


def test_export_files_keep_bands_halo_classes_colours(tmp_path):
    model = om.dual_model(tmp_path / "dual.onnx")
    url = "https://example.org/models/model.zip"
    files, code, process, size, overlap = exported(tmp_path, model, model_url=url, deps_url="https://example.org/d.zip")
    assert sorted(os.listdir(tmp_path / "openeo")) == sorted(ox.FILES.values())  # no temporary file left
    pg = process["process_graph"]
    load = pg["loadcollection1"]["arguments"]
    assert load["id"] == "SENTINEL2_L2A" and load["bands"] == om.S2_BANDS4 + ["SCL"]
    assert load["spatial_extent"] == {"from_parameter": "spatial_extent"}
    assert [p["name"] for p in process["parameters"]] == ["spatial_extent", "temporal_extent", "max_cloud_cover"]
    assert (size, overlap) == (60, 2)
    run = pg["applyneighborhood1"]["arguments"]["process"]["process_graph"]
    (udf_node,) = run.values()
    assert udf_node["process_id"] == "run_udf" and udf_node["arguments"]["udf"] == code
    assert udf_node["arguments"]["runtime"] == "Python"
    assert any(n["process_id"] == "reduce_dimension" and n["arguments"]["dimension"] == "t" for n in pg.values())
    save = next(n for n in pg.values() if n["process_id"] == "save_result")["arguments"]
    assert save["format"] == "GTiff"
    assert save["options"]["colormap"]["1"] == [round(0xE6 / 255, 6), 0.0, round(0x4D / 255, 6), 1.0]
    assert set(save["options"]["colormap"]) == {"1", "2", "3", "4"}
    assert "fine 1" in process["description"] and "#e6004d" in process["description"]
    with open(files["job_options"]) as f:
        opts = json.load(f)
    assert opts["udf-dependency-archives"] == [f"{url}#onnx_models", "https://example.org/d.zip#onnx_deps"]
    assert process["default_job_options"] == opts
    with open(files["legend"]) as f:
        leg = json.load(f)
    assert [h["name"] for h in leg["heads"]] == ["clc_level2", "clc_level1"] and leg["heads"][1]["band"] == 2
    assert leg["heads"][0]["classes"][0] == {"value": 1, "code": "1", "name": "fine 1", "color": "#e6004d"}
    with zipfile.ZipFile(files["model_archive"]) as z:
        assert z.namelist() == ["dual.onnx"]
        with open(model, "rb") as f:
            assert z.read("dual.onnx") == f.read()
    assert extract_udf_dependencies(code) == ["onnxruntime"]
    for banned in ("satclassify", "osgeo", "qgis", "torch"):
        assert f"import {banned}" not in code and f"from {banned}" not in code
    # the graph loads back with the client, parameters filled in
    from openeo.internal.graph_building import PGNode

    node = PGNode.from_flat_graph(
        pg,
        parameters={
            "spatial_extent": {"west": 5, "south": 51, "east": 5.1, "north": 51.1},
            "temporal_extent": ["2023-06-01", "2023-07-01"],
        },
    )
    assert node.process_id == "save_result"


def test_composite_none_keeps_dates_and_resolution_20m_resamples(tmp_path):
    model = om.conv_model(tmp_path / "conv.onnx", c_in=4, k=3, layers=(3,), card_kw={"resolution_m": 20.0})
    _, _, process, _, _ = exported(tmp_path, model, composite="none")
    ids = [n["process_id"] for n in process["process_graph"].values()]
    assert not any(
        n["process_id"] == "reduce_dimension" and n["arguments"].get("dimension") == "t"
        for n in process["process_graph"].values()
    )
    rs = next(n for n in process["process_graph"].values() if n["process_id"] == "resample_spatial")
    assert rs["arguments"]["resolution"] == 20.0 and rs["arguments"]["method"] == "average"
    assert ids.index("resample_spatial") < ids.index("apply_neighborhood")


def test_udf_refuses_another_model_file(tmp_path):
    model = om.conv_model(tmp_path / "conv.onnx", c_in=4, k=3, layers=(3,), seed=1)
    other = om.conv_model(tmp_path / "other.onnx", c_in=4, k=3, layers=(3,), seed=2)
    _, a = stack(tmp_path, h=40, w=36, nodata_holes=False)
    _, code, _, _, _ = exported(tmp_path, model)
    udf = load_module_from_string(code)
    with pytest.raises(ValueError, match="not the model this UDF was exported for"):
        udf["apply_datacube"](cube_of(a), {"model_path": other})
    with pytest.raises(FileNotFoundError, match="udf-dependency-archives"):
        udf["apply_datacube"](cube_of(a), {})  # no onnx_models/ here


def test_chunk_shape_rules():
    card = parse_card(om.card(tile_size=64, halo=2))
    assert ox.chunk_shape(card) == {"size": 60, "overlap": 2}
    assert ox.chunk_shape(card, chunk=100) == {"size": 100, "overlap": 2}
    assert ox.chunk_shape(parse_card(om.card(tile_size=16, halo=2))) == {"size": 32, "overlap": 2}
    assert ox.chunk_shape(parse_card(om.card(tile_size=256, halo=32)), size_multiple=32) == {"size": 192, "overlap": 32}
    assert ox.chunk_shape(card, size_multiple=32) == {"size": 60, "overlap": 2}  # 64 is a multiple
    assert ox.chunk_shape(card, chunk=50, size_multiple=32) == {"size": 60, "overlap": 2}
    assert ox.chunk_shape(parse_card(om.card(tile_size=64, halo=0)), fixed_hw=(64, 64)) == {"size": 64, "overlap": 0}
    with pytest.raises(ox.ExportError, match="at least 32"):
        ox.chunk_shape(card, chunk=8)
    with pytest.raises(ox.ExportError, match="fixed input of 16"):
        ox.chunk_shape(parse_card(om.card(tile_size=16, halo=0)), fixed_hw=(16, 16))


def test_main_writes_files_and_refuses_bad_input(tmp_path, capsys):
    model = om.conv_model(tmp_path / "conv.onnx", c_in=4, k=3, layers=(3,))
    out = tmp_path / "out"
    assert ox.main(["--model", model, "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert printed.out.split() == [str(out / n) for n in ox.FILES.values()]
    assert "REPLACE-WITH-THE-URL-OF" in printed.err and "--model-url" in printed.err
    before = {n: os.path.getmtime(out / n) for n in ox.FILES.values()}
    # a second export into the same folder is refused, files untouched
    assert ox.main(["--model", model, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "already in" in err and "--overwrite" in err
    assert {n: os.path.getmtime(out / n) for n in ox.FILES.values()} == before
    assert ox.main(["--model", model, "--out", str(out), "--overwrite", "--model-url", "https://x.org/m.zip"]) == 0
    assert json.loads((out / "job_options.json").read_text())["udf-dependency-archives"] == [
        "https://x.org/m.zip#onnx_models"
    ]
    capsys.readouterr()
    deep = om.deepness_model(tmp_path / "deep.onnx", np.eye(3, 3))
    cases = [
        (["--model", deep, "--out", str(tmp_path / "d")], "not Sentinel-2 band names"),
        (["--model", str(tmp_path / "missing.onnx"), "--out", str(tmp_path / "m")], "does not exist"),
        (["--model", model, "--out", str(tmp_path / "u"), "--model-url", "model.zip"], "http(s) or s3 URL"),
        (["--model", model, "--out", str(tmp_path / "c"), "--chunk", "10"], "at least 32"),
        (["--model", model, "--out", model], "is a file"),
    ]
    for argv, msg in cases:
        assert ox.main(argv) == 1, argv
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "d").exists() and not (tmp_path / "u").exists()


def test_failed_write_leaves_the_folder_as_it_was(tmp_path, monkeypatch):
    model = om.conv_model(tmp_path / "conv.onnx", c_in=4, k=3, layers=(3,))
    out = tmp_path / "out"
    ox.export_openeo(model, str(out))
    before = {n: (out / n).read_bytes() for n in ox.FILES.values()}

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "write", full_disk)
    with pytest.raises(ox.ExportError, match="No space left"):
        ox.export_openeo(model, str(out), overwrite=True, model_url="https://x.org/m.zip")
    assert sorted(os.listdir(out)) == sorted(ox.FILES.values())
    assert {n: (out / n).read_bytes() for n in ox.FILES.values()} == before


def test_missing_openeo_client_is_a_clear_error(tmp_path, monkeypatch, capsys):
    import sys

    model = om.conv_model(tmp_path / "conv.onnx", c_in=4, k=3, layers=(3,))
    monkeypatch.setitem(sys.modules, "openeo", None)  # import openeo -> ImportError
    assert ox.main(["--model", model, "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "openeo Python client is missing" in err and "pip install openeo" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
