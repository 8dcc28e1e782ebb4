"""core.s2.style: the 2-98 % cumulative-count stretch, band combinations, the QML text and the style sidecar
rules of the output guard (no QGIS)."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from osgeo import gdal

from satclassify_plugin.core.contract.errors import SatClassifyError
from satclassify_plugin.core.contract.paths import STYLE_MARKER, check_style_sidecar, is_own_style, style_sidecar
from satclassify_plugin.core.s2 import style

gdal.UseExceptions()


def reference_cut(v, lower=2, upper=98):
    v = np.asarray(v, np.float64)
    return float(np.percentile(v, lower, method="inverted_cdf")), float(np.percentile(v, upper, method="inverted_cdf"))


def mem_stack(a, names):
    ds = gdal.GetDriverByName("MEM").Create("", a.shape[2], a.shape[1], a.shape[0], gdal.GDT_UInt16)
    for i, n in enumerate(names):
        ds.GetRasterBand(i + 1).SetDescription(n)
        ds.GetRasterBand(i + 1).SetNoDataValue(0)
        ds.GetRasterBand(i + 1).WriteArray(a[i])
    return ds


def test_percentiles_from_counts_is_the_inverse_cdf():
    # 100 pixels: values 0..99 once each -> 2 % is value 1 (the 2nd pixel), 98 % is 97
    assert style.percentiles_from_counts(np.ones(100)) == (1.0, 97.0)
    counts = np.zeros(10)
    counts[[3, 7]] = [1, 99]  # one dark pixel among 100: below the 2 % cut
    assert style.percentiles_from_counts(counts) == (7.0, 7.0)
    assert style.percentiles_from_counts(np.zeros(5)) is None
    assert style.percentiles_from_counts(np.ones(100), offset=1000) == (1001.0, 1097.0)


def test_array_cut_leaves_nodata_out_and_matches_numpy():
    rng = np.random.default_rng(1)
    a = rng.integers(1, 6000, (300, 200)).astype(np.uint16)
    a[:50] = 0  # a nodata swath edge must not pull the minimum to 0
    assert style.array_cut(a) == reference_cut(a[a != 0])
    f = a.astype(np.float32)
    f[0, 0] = np.nan
    lo, hi = style.array_cut(f)
    assert (lo, hi) == pytest.approx(tuple(np.percentile(a[a != 0], [2, 98])))
    assert style.array_cut(np.zeros((4, 4), np.uint16)) is None


def test_band_percentiles_blockwise_exact_and_subsampled():
    rng = np.random.default_rng(2)
    a = rng.integers(100, 3000, (1, 700, 900)).astype(np.uint16)
    a[0, :, :100] = 0
    ds = mem_stack(a, ["B04"])
    exact = reference_cut(a[0][a[0] != 0])
    assert style.band_percentiles(ds, 1, block=256) == exact  # windows smaller than the raster: same result
    lo, hi = style.band_percentiles(ds, 1, max_pixels=20000, block=64)  # every 5th pixel
    assert abs(lo - exact[0]) < 40 and abs(hi - exact[1]) < 40


def test_combination_bands_by_description():
    assert style.combination_bands(["B02", "B03", "B04", "B08"]) == [3, 2, 1]
    assert style.combination_bands(["B02", "B03", "B04", "B08"], "colour infrared") == [4, 3, 2]
    assert style.combination_bands(["B04", "B03", "B02", "B8A"], "colour infrared") == [4, 1, 2]
    assert style.combination_bands(["b04", "b03", "b02"]) == [1, 2, 3]
    assert style.combination_bands(["B08", "B11", "B12"]) is None
    assert style.combination_bands(["", "", ""]) is None


def test_qml_text():
    qml = style.multiband_qml([(3, 250.0, 2100.0), (2, 300.5, 1900.0), (1, 200.0, 1500.0)])
    root = ET.fromstring(qml.split("\n", 1)[1])  # after the DOCTYPE line
    r = root.find("pipe/rasterrenderer")
    assert (r.get("type"), r.get("redBand"), r.get("greenBand"), r.get("blueBand")) == ("multibandcolor", "3", "2", "1")
    assert [
        (r.find(f"{c}ContrastEnhancement/minValue").text, r.find(f"{c}ContrastEnhancement/maxValue").text)
        for c in ("red", "green", "blue")
    ] == [("250", "2100"), ("300.5", "1900"), ("200", "1500")]
    assert r.find("minMaxOrigin/limits").text == "CumulativeCut"
    assert (r.find("minMaxOrigin/cumulativeCutLower").text, r.find("minMaxOrigin/cumulativeCutUpper").text) == (
        "0.02",
        "0.98",
    )
    marker = root.find("customproperties/Option/Option")
    assert marker.get("name") == STYLE_MARKER and marker.get("value") == "natural colour"


def test_stack_styles_one_per_combination_and_the_sidecar(tmp_path):
    rng = np.random.default_rng(4)
    a = rng.integers(1, 5000, (4, 60, 70)).astype(np.uint16)
    path = str(tmp_path / "s.tif")
    gdal.GetDriverByName("GTiff").CreateCopy(path, mem_stack(a, ["B02", "B03", "B04", "B08"]))
    styles = style.write_stack_style(path)
    assert list(styles) == ["natural colour", "colour infrared"]
    assert style_sidecar(path) == str(tmp_path / "s.qml")
    text = (tmp_path / "s.qml").read_text()
    assert text == styles["natural colour"] and is_own_style(str(tmp_path / "s.qml"))
    lo, hi = reference_cut(a[3])
    assert f"<minValue>{lo:g}</minValue>" in styles["colour infrared"]
    assert f"<maxValue>{hi:g}</maxValue>" in styles["colour infrared"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    three = str(tmp_path / "n.tif")
    gdal.GetDriverByName("GTiff").CreateCopy(three, mem_stack(a[3:], ["B08"]))
    assert style.write_stack_style(three) is None and not (tmp_path / "n.qml").exists()


def test_colour_interpretation_on_the_natural_colour_bands(tmp_path):
    ds = gdal.GetDriverByName("GTiff").Create(str(tmp_path / "c.tif"), 8, 8, 4, gdal.GDT_UInt16)
    assert style.set_colour_interpretation(ds, ["B02", "B03", "B04", "B08"]) == [3, 2, 1]
    ds = None
    ds = gdal.Open(str(tmp_path / "c.tif"))
    assert [ds.GetRasterBand(i + 1).GetColorInterpretation() for i in range(4)] == [
        gdal.GCI_BlueBand,
        gdal.GCI_GreenBand,
        gdal.GCI_RedBand,
        gdal.GCI_GrayIndex,
    ]


def test_guard_refuses_a_style_the_user_wrote(tmp_path):
    out = str(tmp_path / "x.tif")
    check_style_sidecar("OUTPUT", out)  # no style there: fine
    (tmp_path / "x.qml").write_text("<qgis><pipe/></qgis>")
    with pytest.raises(SatClassifyError, match=r"would replace the QGIS style .*x\.qml.*SatClassify did not write"):
        check_style_sidecar("OUTPUT", out)
    (tmp_path / "x.qml").write_text(style.multiband_qml([(1, 0, 1), (1, 0, 1), (1, 0, 1)]))
    check_style_sidecar("OUTPUT", out)  # its own: replaced like the raster


def test_drop_own_style_never_a_users(tmp_path):
    out = str(tmp_path / "ts.tif")
    (tmp_path / "ts.qml").write_text(style.multiband_qml([(3, 0, 1), (2, 0, 1), (1, 0, 1)]))
    assert style.drop_own_style(out) and not (tmp_path / "ts.qml").exists()
    (tmp_path / "ts.qml").write_text("<qgis><pipe/></qgis>")
    assert not style.drop_own_style(out) and (tmp_path / "ts.qml").exists()
    assert not style.drop_own_style(str(tmp_path / "none.tif"))
