"""Issue 25 items 10 and 12 for satclassify:rasterizeclc in real QGIS: fractional codes are unknown codes (never
truncated: 211.7 gave class 211 with 0 unknown features), a MAPPING giving a code twice is refused naming both
lines, CLC codes a mapping table leaves out are not called "not CLC level-3", a damaged .prj is named as the CRS
problem (it was blamed on the code field), and a 244-character output name gets a message naming the user's path
(not GDAL's words about a hidden temporary name)."""

import os

import numpy as np
import pytest
from osgeo import gdal, ogr
from qgis.core import QgsProcessingException

from satclassify_plugin.core.contract import clc
from tests.rasters import UTM32N, make_polygons, make_raster, read_raster

from ..sentinel_helpers import LogFeedback

ALG = "satclassify:rasterizeclc"
X0, Y0 = 500000.0, 5000000.0


def box(i):
    a, b = X0 + 10 * i, Y0
    return f"POLYGON(({a} {b},{a + 10} {b},{a + 10} {b - 10},{a} {b - 10},{a} {b}))"


def ref(tmp_path, w):
    return make_raster(tmp_path / "ref.tif", np.zeros((1, w), np.uint16), origin=(X0, Y0), pixel=10.0)


def test_fractional_codes_are_unknown_never_truncated(run_alg, tmp_path):
    codes = [211.7, 311.0, 211.0, 312.5]
    src = make_polygons(
        tmp_path / "real.gpkg",
        [(box(i), {"code_18": c}) for i, c in enumerate(codes)],
        epsg=UTM32N,
        fields={"code_18": ogr.OFTReal},
    )
    fb = LogFeedback()
    res = run_alg(
        ALG, {"INPUT": src, "REFERENCE": ref(tmp_path, 4), "LEVEL": 2, "OUTPUT": str(tmp_path / "o.tif")}, feedback=fb
    )
    v = clc.code_to_value(3)
    assert read_raster(res["OUTPUT"])[0].tolist() == [0, v[311], v[211], 0]
    assert res["UNKNOWN_FEATURES"] == 2
    text = "\n".join(fb.messages)
    assert "WARNING: 2 features have codes that are not CLC level-3 codes and are left as no label (0): " in text
    assert "'211.7' (1)" in text and "'312.5' (1)" in text
    # the same as text
    src = make_polygons(
        tmp_path / "text.gpkg",
        [(box(i), {"code_18": str(c)}) for i, c in enumerate(codes)],
        epsg=UTM32N,
        fields={"code_18": ogr.OFTString},
    )
    res = run_alg(ALG, {"INPUT": src, "REFERENCE": ref(tmp_path, 4), "LEVEL": 2, "OUTPUT": str(tmp_path / "t.tif")})
    assert read_raster(res["OUTPUT"])[0].tolist() == [0, v[311], v[211], 0] and res["UNKNOWN_FEATURES"] == 2


def test_fractional_values_of_a_float_clc_raster_are_unknown(run_alg, tmp_path):
    a = np.array([[211.7, 311.0, 211.0, 523.0]], np.float32)
    src = make_raster(tmp_path / "clc.tif", a, origin=(X0, Y0), pixel=10.0)
    fb = LogFeedback()
    res = run_alg(
        ALG, {"INPUT": src, "REFERENCE": ref(tmp_path, 4), "LEVEL": 2, "OUTPUT": str(tmp_path / "o.tif")}, feedback=fb
    )
    v = clc.code_to_value(3)
    assert read_raster(res["OUTPUT"])[0].tolist() == [0, v[311], v[211], v[523]]
    assert res["UNKNOWN_FEATURES"] == 1
    assert (
        "WARNING: 1 pixels hold values that are not CLC level-3 codes and are left as no label (0): 211.7 (1)"
        in "\n".join(fb.messages)
    )


def test_codes_a_mapping_leaves_out_are_named_as_such(run_alg, tmp_path):
    polys = [(box(0), {"code_18": "211"}), (box(1), {"code_18": "311"}), (box(2), {"code_18": "abc"})]
    src = make_polygons(tmp_path / "m.gpkg", polys, epsg=UTM32N, fields={"code_18": ogr.OFTString})
    csv = tmp_path / "map.csv"
    csv.write_text("code,value,name\n2,1,Farmland\n", encoding="utf-8")
    fb = LogFeedback()
    res = run_alg(
        ALG,
        {
            "INPUT": src,
            "REFERENCE": ref(tmp_path, 3),
            "LEVEL": 3,
            "MAPPING": str(csv),
            "OUTPUT": str(tmp_path / "o.tif"),
        },
        feedback=fb,
    )
    assert read_raster(res["OUTPUT"])[0].tolist() == [1, 0, 0]
    text = "\n".join(fb.messages)
    assert (
        "WARNING: 1 features have CLC codes that the mapping table does not map and are left as no label (0): "
        "'311' (1)" in text
    )
    assert (
        "WARNING: 1 features have codes that are not CLC level-3 codes and are left as no label (0): 'abc' (1)" in text
    )
    assert "'311' (1)" not in text.split("not CLC level-3 codes")[1].splitlines()[0]


def test_a_code_given_twice_in_the_mapping_is_refused(run_alg, tmp_path):
    src = make_polygons(
        tmp_path / "m.gpkg", [(box(0), {"code_18": "211"})], epsg=UTM32N, fields={"code_18": ogr.OFTString}
    )
    csv = tmp_path / "map.csv"
    csv.write_text("code,value,name\n211,1,Arable\n3,2,Forest\n211,3,Rice\n", encoding="utf-8")
    with pytest.raises(
        QgsProcessingException,
        match=r"mapping table lines 2 and 4 both map code 211 \(to value 1 "
        r"and 3\): each code may appear once",
    ):
        run_alg(
            ALG,
            {
                "INPUT": src,
                "REFERENCE": ref(tmp_path, 1),
                "LEVEL": 3,
                "MAPPING": str(csv),
                "OUTPUT": str(tmp_path / "o.tif"),
            },
        )
    assert not (tmp_path / "o.tif").exists()


@pytest.mark.parametrize(
    "prj",
    [
        'PROJCS["UTM",GEOGCS[',
        "garbage, not a CRS",
        'GEOGCS["x",DATUM["y",SPHEROID["z",0,0]],PRIMEM["G",0],UNIT["d",0]]',
    ],
)
def test_a_damaged_prj_is_named_as_the_crs_problem(run_alg, tmp_path, prj):
    shp = make_polygons(
        tmp_path / "clc.shp",
        [(box(0), {"code_18": "211"})],
        epsg=UTM32N,
        driver="ESRI Shapefile",
        fields={"code_18": ogr.OFTString},
    )
    (tmp_path / "clc.prj").write_text(prj, encoding="utf-8")
    with pytest.raises(QgsProcessingException) as e:
        run_alg(ALG, {"INPUT": shp, "REFERENCE": ref(tmp_path, 1), "LEVEL": 2, "OUTPUT": str(tmp_path / "o.tif")})
    msg = str(e.value)
    assert f"the CRS of CLC layer 'clc' (its CRS file '{tmp_path / 'clc.prj'}') is not valid" in msg, msg
    assert "code_18" not in msg and "fix or replace the CRS definition" in msg
    assert not (tmp_path / "o.tif").exists()


@pytest.mark.parametrize("n", [208, 244, 250])
def test_a_too_long_output_name_names_the_users_path(run_alg, tmp_path, n):
    src = make_polygons(
        tmp_path / "m.gpkg", [(box(0), {"code_18": "211"})], epsg=UTM32N, fields={"code_18": ogr.OFTString}
    )
    out = str(tmp_path / ("x" * (n - 4) + ".tif"))
    with pytest.raises(QgsProcessingException) as e:
        run_alg(ALG, {"INPUT": src, "REFERENCE": ref(tmp_path, 1), "LEVEL": 2, "OUTPUT": out})
    msg = str(e.value)
    assert f"OUTPUT '{out}'" in msg and f"its file name is {n} characters (bytes) long" in msg, msg
    assert "choose a file name of at most 207 characters" in msg and ".part" not in msg
    assert sorted(os.listdir(tmp_path)) == ["m.gpkg", "ref.tif"]
    # the longest name that fits is written
    ok = str(tmp_path / ("y" * 203 + ".tif"))
    run_alg(ALG, {"INPUT": src, "REFERENCE": ref(tmp_path, 1), "LEVEL": 2, "OUTPUT": ok})
    assert gdal.Open(ok) is not None
