"""No tool overwrites its own input, and no two outputs share a file (issue: outputs on inputs lost data).

Each case runs the real tool through processing.run and checks the message, that the input is byte-identical
afterwards and that nothing was written."""

import hashlib
import os

import numpy as np
import pytest
from osgeo import ogr
from qgis.core import QgsProcessingException

from satclassify_plugin.core.contract import paths
from satclassify_plugin.core.contract.errors import SatClassifyError
from tests import onnx_models as om
from tests.rasters import UTM32N, make_polygons, make_raster


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def data(tmp_path):
    raw = np.random.default_rng(0).integers(10, 4000, (4, 30, 40)).astype(np.uint16)
    classes = np.random.default_rng(1).integers(1, 4, (30, 40)).astype(np.uint8)
    poly = "POLYGON((500000 4999700,500400 4999700,500400 5000000,500000 5000000,500000 4999700))"
    return {
        "tmp": tmp_path,
        "s2": make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4),
        "model": om.linear_model(tmp_path / "lin.onnx", np.eye(3, 4), card_kw={"tile_size": 16}),
        "cls": make_raster(tmp_path / "cls.tif", classes, nodata=0),
        "ref": make_raster(tmp_path / "ref.tif", classes[::-1].copy(), nodata=0),
        "clc": make_polygons(
            tmp_path / "clc.gpkg", [(poly, {"code_18": "211"})], epsg=UTM32N, fields={"code_18": ogr.OFTString}
        ),
    }


def refused(run_alg, alg, params, must_keep, match):
    before = {p: digest(p) for p in must_keep}
    listing = sorted(os.listdir(os.path.dirname(must_keep[0])))
    with pytest.raises(QgsProcessingException, match=match):
        run_alg(alg, params)
    assert {p: digest(p) for p in must_keep} == before
    assert sorted(os.listdir(os.path.dirname(must_keep[0]))) == listing  # nothing written, no .part left


def test_classify_output_on_its_input(run_alg, data):
    refused(
        run_alg,
        "satclassify:classify",
        {"INPUT": data["s2"], "MODEL": data["model"], "OUTPUT": data["s2"]},
        [data["s2"], data["model"]],
        r"OUTPUT '.*s2\.tif' is the input INPUT: writing it would destroy",
    )


def test_classify_output_on_the_model(run_alg, data):
    refused(
        run_alg,
        "satclassify:classify",
        {"INPUT": data["s2"], "MODEL": data["model"], "OUTPUT": data["model"]},
        [data["s2"], data["model"]],
        r"OUTPUT '.*lin\.onnx' is the input MODEL",
    )


def test_classify_two_heads_on_one_file(run_alg, data):
    out = str(data["tmp"] / "same.tif")
    refused(
        run_alg,
        "satclassify:classify",
        {"INPUT": data["s2"], "MODEL": data["model"], "OUTPUT": out, "CONFIDENCE": out},
        [data["s2"]],
        r"CONFIDENCE and OUTPUT are the same file|OUTPUT and CONFIDENCE are the same file",
    )


def test_classify_output_naming_a_folder(run_alg, data):
    folder = data["tmp"] / "afolder"
    folder.mkdir()
    refused(
        run_alg,
        "satclassify:classify",
        {"INPUT": data["s2"], "MODEL": data["model"], "OUTPUT": str(folder)},
        [data["s2"]],
        r"OUTPUT '.*afolder' is a folder: give a file name",
    )
    assert os.listdir(folder) == []


def test_rasterize_output_on_reference_and_on_the_gpkg(run_alg, data):
    refused(
        run_alg,
        "satclassify:rasterizeclc",
        {"INPUT": data["clc"], "REFERENCE": data["ref"], "OUTPUT": data["ref"]},
        [data["ref"], data["clc"]],
        r"OUTPUT '.*ref\.tif' is the input REFERENCE",
    )
    refused(
        run_alg,
        "satclassify:rasterizeclc",
        {"INPUT": data["clc"], "REFERENCE": data["ref"], "OUTPUT": data["clc"]},
        [data["ref"], data["clc"]],
        r"OUTPUT '.*clc\.gpkg' is the input INPUT",
    )
    # a layer of the GeoPackage (path|layername=...) is the same file
    refused(
        run_alg,
        "satclassify:rasterizeclc",
        {"INPUT": data["clc"] + "|layername=clc", "REFERENCE": data["ref"], "OUTPUT": data["clc"]},
        [data["ref"], data["clc"]],
        r"is the input INPUT",
    )


def test_accuracy_outputs_on_inputs_and_on_each_other(run_alg, data):
    t = data["tmp"]
    base = {
        "CLASSIFIED": data["cls"],
        "REFERENCE": data["ref"],
        "OUTPUT_MATRIX": str(t / "m.csv"),
        "OUTPUT_METRICS": str(t / "m.json"),
        "OUTPUT_REPORT": str(t / "r.html"),
    }
    keep = [data["cls"], data["ref"]]
    refused(
        run_alg,
        "satclassify:assessaccuracy",
        {**base, "OUTPUT_REPORT": data["ref"]},
        keep,
        r"OUTPUT_REPORT '.*ref\.tif' is the input REFERENCE",
    )
    refused(
        run_alg,
        "satclassify:assessaccuracy",
        {**base, "OUTPUT_METRICS": data["cls"]},
        keep,
        r"OUTPUT_METRICS '.*cls\.tif' is the input CLASSIFIED",
    )
    same = str(data["tmp"] / "all.out")
    refused(
        run_alg,
        "satclassify:assessaccuracy",
        {**base, "OUTPUT_MATRIX": same, "OUTPUT_METRICS": same, "OUTPUT_REPORT": same},
        keep,
        r"are the same file",
    )


def test_buildpatches_overwrite_of_a_folder_holding_the_inputs(run_alg, data):
    img = data["s2"]
    refused(
        run_alg,
        "satclassify:buildpatches",
        {"IMAGE": img, "LABELS": data["cls"], "PATCH_SIZE": 8, "OVERWRITE": True, "OUTPUT_FOLDER": str(data["tmp"])},
        [img, data["cls"]],
        r"OUTPUT_FOLDER '.*' contains the input IMAGE .* emptied first",
    )


def test_paths_core_rules(tmp_path):
    a = tmp_path / "a.tif"
    a.write_bytes(b"x")
    link = tmp_path / "link.tif"
    os.symlink(a, link)
    hard = tmp_path / "hard.tif"
    os.link(a, hard)
    assert paths.same_file(str(a), str(link)) and paths.same_file(str(a), str(hard))
    assert paths.same_file(str(a), str(tmp_path / "sub" / ".." / "a.tif"))
    with pytest.raises(SatClassifyError, match="is the input IN"):
        paths.check_outputs({"IN": [str(a)]}, {"OUT": str(hard)})
    paths.check_outputs({"IN": [str(a)]}, {"OUT": str(tmp_path / "b.tif")})  # fine
    side = tmp_path / "out.tif.aux.xml"  # OUTPUT=out.tif makes GDAL (re)write out.tif.aux.xml
    side.write_text("<PAMDataset/>")
    with pytest.raises(SatClassifyError, match=r"would replace NAMES .*out\.tif\.aux\.xml"):
        paths.check_outputs({"NAMES": [str(side)]}, {"OUTPUT": str(tmp_path / "out.tif")})
    with pytest.raises(SatClassifyError, match="is a file, not a folder"):
        paths.check_outputs({}, {}, {"FOLDER": str(a)})


def test_raster_output_with_another_format_extension_is_refused(run_alg, data, provider):
    """A .png OUTPUT used to get GeoTIFF bytes under a .png name; the dialogs offer .tif only."""
    assert provider.supportedOutputRasterLayerExtensions() == ["tif", "tiff"]
    refused(
        run_alg,
        "satclassify:classify",
        {"INPUT": data["s2"], "MODEL": data["model"], "OUTPUT": str(data["tmp"] / "classes.png")},
        [data["s2"]],
        r"OUTPUT '.*classes\.png': the tool writes GeoTIFF, not \.png: name the file \.tif",
    )
    out = str(data["tmp"] / "classes.TIFF")
    run_alg("satclassify:classify", {"INPUT": data["s2"], "MODEL": data["model"], "OUTPUT": out})
    assert open(out, "rb").read(4) in (b"II*\x00", b"MM\x00*")


@pytest.mark.parametrize(
    "mask, match",
    [
        ("stack.tif", r"OUTPUT and MASK are the same file|MASK and OUTPUT are the same file"),
        ("mask.png", r"MASK '.*mask\.png': the tool writes GeoTIFF, not \.png: name the file \.tif"),
    ],
)
def test_sentinel2_stack_outputs_are_checked_by_the_base_class(run_alg, data, mask, match):
    """importsafe / fetchsentinel2 leave their OUTPUT and MASK checks to the base class's guard: refused
    before the product is opened, nothing written."""
    safe = data["tmp"] / "S2A_MSIL2A_20230512T103031_N0509_R108_T32TMT_20230512T163049.zip"
    safe.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip: never read, the guard comes first
    refused(
        run_alg,
        "satclassify:importsafe",
        {"INPUT": str(safe), "OUTPUT": str(data["tmp"] / "stack.tif"), "MASK": str(data["tmp"] / mask)},
        [str(safe)],
        match,
    )
