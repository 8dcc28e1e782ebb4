"""Sentinel-2 stacks open in natural colour (B04/B03/B02, 2-98 % cumulative-count stretch) in QGIS: the .qml
sidecar QGIS loads as the default style, GDAL colour interpretation, the named styles the tool adds on load
(colour infrared), and the output guard around the sidecar."""

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (
    QgsContrastEnhancement,
    QgsMultiBandColorRenderer,
    QgsProcessingException,
    QgsProject,
    QgsRasterLayer,
    QgsRasterMinMaxOrigin,
)
from qgis.PyQt.QtXml import QDomDocument

from satclassify_plugin.core.s2 import style
from tests.rasters import make_raster

from .. import fake_servers as fs
from ..sentinel_helpers import A0, LogFeedback

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
def safe_arrays():
    return fs.tile_arrays(17, 120)


def cut(a, nodata=0):
    """The 2 % / 98 % points as numpy defines the inverse empirical CDF (an independent reference)."""
    v = a[a != nodata].astype(np.float64)
    return float(np.percentile(v, 2, method="inverted_cdf")), float(np.percentile(v, 98, method="inverted_cdf"))


def renderer_state(layer):
    r = layer.renderer()
    assert isinstance(r, QgsMultiBandColorRenderer), type(r)
    ces = (r.redContrastEnhancement(), r.greenContrastEnhancement(), r.blueContrastEnhancement())
    return (
        (r.redBand(), r.greenBand(), r.blueBand()),
        [(ce.minimumValue(), ce.maximumValue()) for ce in ces],
        [QgsContrastEnhancement.contrastEnhancementAlgorithmString(ce.contrastEnhancementAlgorithm()) for ce in ces],
        r.minMaxOrigin(),
    )


def import_stack(run_alg, tmp_path, safe_arrays, bands="B02,B03,B04,B08", name="s.tif", feedback=None):
    z = tmp_path / "p.zip"
    if not z.exists():
        fs.make_safe_zip(z, safe_arrays, A0, baseline="05.09")
    return run_alg(
        "satclassify:importsafe", {"INPUT": str(z), "BANDS": bands, "OUTPUT": str(tmp_path / name)}, feedback=feedback
    )


def test_importsafe_stack_opens_in_natural_colour_with_the_2_98_cut(run_alg, tmp_path, safe_arrays):
    fb = LogFeedback()
    import_stack(run_alg, tmp_path, safe_arrays, bands="B02,B03,B04,B08,B11", feedback=fb)
    assert (tmp_path / "s.qml").is_file() and "s.qml written beside the stack" in fb.text
    ds = gdal.Open(str(tmp_path / "s.tif"))
    a = ds.ReadAsArray()
    interp = [ds.GetRasterBand(i + 1).GetColorInterpretation() for i in range(5)]
    assert interp == [gdal.GCI_BlueBand, gdal.GCI_GreenBand, gdal.GCI_RedBand, gdal.GCI_GrayIndex, gdal.GCI_GrayIndex]
    ds = None
    layer = QgsRasterLayer(str(tmp_path / "s.tif"), "stack")  # as QGIS opens a file: default style = s.qml
    assert layer.isValid()
    bands, minmax, algos, origin = renderer_state(layer)
    assert bands == (3, 2, 1)  # B04, B03, B02
    assert minmax == [cut(a[2]), cut(a[1]), cut(a[0])]
    # enum names through QGIS's own string helpers (the enums moved to Qgis in 3.38: same test on every version)
    assert algos == ["StretchToMinimumMaximum"] * 3
    assert QgsRasterMinMaxOrigin.limitsString(origin.limits()) == "CumulativeCut"
    assert (origin.cumulativeCutLower(), origin.cumulativeCutUpper()) == (pytest.approx(0.02), pytest.approx(0.98))
    assert QgsRasterMinMaxOrigin.extentString(origin.extent()) == "WholeRaster"


def test_loaded_stack_has_natural_colour_and_colour_infrared_styles(plugin, tmp_path, safe_arrays):
    import processing

    z = fs.make_safe_zip(tmp_path / "p.zip", safe_arrays, A0, baseline="05.09")
    out = str(tmp_path / "stack.tif")
    res = processing.runAndLoadResults(
        "satclassify:importsafe", {"INPUT": z, "BANDS": "B02,B03,B04,B08", "OUTPUT": out}
    )
    layers = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.source() == res["OUTPUT"]]
    assert len(layers) == 1
    layer = layers[0]
    try:
        a = gdal.Open(out).ReadAsArray()
        manager = layer.styleManager()
        assert manager.styles() == ["colour infrared", "natural colour"]
        assert manager.currentStyle() == "natural colour"
        bands, minmax, _, _ = renderer_state(layer)
        assert bands == (3, 2, 1) and minmax == [cut(a[2]), cut(a[1]), cut(a[0])]
        assert manager.setCurrentStyle("colour infrared")
        bands, minmax, _, _ = renderer_state(layer)
        assert bands == (4, 3, 2)  # B08, B04, B03
        assert minmax == [cut(a[3]), cut(a[2]), cut(a[1])]
    finally:
        QgsProject.instance().removeMapLayer(layer.id())


def test_qml_matches_what_qgis_itself_writes(qgis_app, tmp_path):
    """The renderer element of the core's QML equals the one QGIS writes for the same renderer (3.22 API)."""
    a = np.random.default_rng(3).integers(1, 4000, (4, 40, 50)).astype(np.uint16)
    path = make_raster(tmp_path / "x.tif", a, band_names=["B02", "B03", "B04", "B08"], nodata=0)
    layer = QgsRasterLayer(path, "x")
    r = QgsMultiBandColorRenderer(layer.dataProvider(), 3, 2, 1)
    rgb = [(3, 100.0, 2000.5), (2, 120.0, 1900.0), (1, 90.0, 1800.0)]
    for (band, lo, hi), setter in zip(
        rgb, (r.setRedContrastEnhancement, r.setGreenContrastEnhancement, r.setBlueContrastEnhancement)
    ):
        ce = QgsContrastEnhancement(layer.dataProvider().dataType(band))
        ce.setContrastEnhancementAlgorithm(
            QgsContrastEnhancement.contrastEnhancementAlgorithmFromString("StretchToMinimumMaximum")
        )
        ce.setMinimumValue(lo)
        ce.setMaximumValue(hi)
        setter(ce)
    origin = QgsRasterMinMaxOrigin()
    origin.setLimits(QgsRasterMinMaxOrigin.limitsFromString("CumulativeCut"))
    origin.setExtent(QgsRasterMinMaxOrigin.extentFromString("WholeRaster"))
    origin.setStatAccuracy(QgsRasterMinMaxOrigin.statAccuracyFromString("Exact"))
    origin.setCumulativeCutLower(0.02)
    origin.setCumulativeCutUpper(0.98)
    r.setMinMaxOrigin(origin)
    layer.setRenderer(r)
    theirs = QDomDocument()
    layer.exportNamedStyle(theirs)
    ours = QDomDocument()
    assert ours.setContent(style.multiband_qml(rgb))[0]

    def renderer_xml(doc):
        el = doc.documentElement().firstChildElement("pipe").firstChildElement("rasterrenderer")
        attrs = {k: el.attribute(k) for k in ("type", "redBand", "greenBand", "blueBand", "alphaBand", "opacity")}
        parts = {}
        for tag in ("redContrastEnhancement", "greenContrastEnhancement", "blueContrastEnhancement"):
            ce = el.firstChildElement(tag)
            parts[tag] = tuple(ce.firstChildElement(t).text() for t in ("minValue", "maxValue", "algorithm"))
        mm = el.firstChildElement("minMaxOrigin")
        parts["minMaxOrigin"] = tuple(
            mm.firstChildElement(t).text()
            for t in ("limits", "extent", "statAccuracy", "cumulativeCutLower", "cumulativeCutUpper")
        )
        return attrs, parts

    assert renderer_xml(ours) == renderer_xml(theirs)
    # and it loads back into a layer as that renderer
    other = QgsRasterLayer(path, "y")
    assert other.importNamedStyle(ours)[0]
    bands, minmax, _, _ = renderer_state(other)
    assert bands == (3, 2, 1) and minmax == [(lo, hi) for _, lo, hi in rgb]


def test_foreign_style_is_never_replaced_own_style_is(run_alg, tmp_path, safe_arrays):
    user_style = "<!DOCTYPE qgis><qgis><pipe/></qgis>\n"
    (tmp_path / "s.qml").write_text(user_style)
    with pytest.raises(QgsProcessingException) as e:
        import_stack(run_alg, tmp_path, safe_arrays)
    assert "would replace the QGIS style" in str(e.value) and "SatClassify did not write" in str(e.value)
    assert (tmp_path / "s.qml").read_text() == user_style and not (tmp_path / "s.tif").exists()
    # its own style of an earlier run is replaced with the new stack's
    (tmp_path / "s.qml").unlink()
    import_stack(run_alg, tmp_path, safe_arrays, bands="B02,B03,B04")
    first = (tmp_path / "s.qml").read_text()
    import_stack(run_alg, tmp_path, safe_arrays, bands="B04,B03,B02")
    second = (tmp_path / "s.qml").read_text()
    assert first != second and 'redBand="1"' in second and 'blueBand="3"' in second
    # a stack without natural-colour bands: no style, and SatClassify's earlier one is removed
    fb = LogFeedback()
    import_stack(run_alg, tmp_path, safe_arrays, bands="B08,B11", feedback=fb)
    assert not (tmp_path / "s.qml").exists() and "lacks one of B04, B03, B02" in fb.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.zip", "s.tif"]  # no temporary file left


def test_failed_stack_leaves_no_style(run_alg, tmp_path, safe_arrays):
    fb = LogFeedback()
    fb.progressChanged.connect(lambda p: fb.cancel())
    with pytest.raises(QgsProcessingException, match="cancelled"):
        import_stack(run_alg, tmp_path, safe_arrays, feedback=fb)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.zip"]


def test_sample_stack_opens_in_natural_colour(qgis_app, tmp_path):
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "scripts"))
    from make_sample import make_sample

    img, _ = make_sample(str(tmp_path), size=128)
    layer = QgsRasterLayer(img, "sample")
    a = gdal.Open(img).ReadAsArray()
    bands, minmax, _, _ = renderer_state(layer)
    assert bands == (3, 2, 1) and minmax == [cut(a[2]), cut(a[1]), cut(a[0])]
    # an older sample without the style gets it on the next call
    os.remove(os.path.splitext(img)[0] + ".qml")
    make_sample(str(tmp_path), size=128)
    assert os.path.isfile(os.path.splitext(img)[0] + ".qml")


def test_one_click_styles_for_a_stack_opened_from_disk(plugin, tmp_path):
    """Right-click a raster > SatClassify > Sentinel-2 colour infrared / natural colour (the plugin's layer actions)."""
    a = np.random.default_rng(5).integers(1, 5000, (4, 30, 40)).astype(np.uint16)
    path = make_raster(tmp_path / "any.tif", a, band_names=["B02", "B03", "B04", "B08"], nodata=0)
    layer = QgsRasterLayer(path, "stack from disk")  # no .qml: QGIS draws bands 1-2-3
    assert renderer_state(layer)[0] == (1, 2, 3)
    QgsProject.instance().addMapLayer(layer)
    try:
        actions = {c: act for act, c in plugin.style_actions}
        plugin.iface.setActiveLayer(layer)
        actions["colour infrared"].trigger()
        bands, minmax, _, _ = renderer_state(layer)
        assert bands == (4, 3, 2) and minmax == [cut(a[3]), cut(a[2]), cut(a[1])]
        assert plugin.style_active_layer("natural colour", layer)
        bands, minmax, _, _ = renderer_state(layer)
        assert bands == (3, 2, 1) and minmax == [cut(a[2]), cut(a[1]), cut(a[0])]
        assert {"natural colour", "colour infrared"} <= set(layer.styleManager().styles())
        # a raster without B08: a message naming the bands, the style unchanged
        three = QgsRasterLayer(make_raster(tmp_path / "rgb.tif", a[:3], band_names=["B02", "B03", "B04"]), "rgb")
        assert not plugin.style_active_layer("colour infrared", three)
        title, text, _ = plugin.iface.bar.messages[-1]
        assert title == "SatClassify" and "colour infrared needs bands named B08 or B8A/B04/B03" in text
    finally:
        QgsProject.instance().removeMapLayer(layer.id())
