"""satclassify:assessaccuracy with a reference sample of points (REFERENCE_POINTS / REFERENCE_FIELD): the
stratified estimator's numbers, the points left out (and why), reprojected points, and the fault cases."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from satclassify_plugin.core import raster
from satclassify_plugin.core.accuracy import estimator
from tests.rasters import LAEA, UTM32N, make_class_raster, make_raster, wkt

ALG = "satclassify:assessaccuracy"
CLASSES = [
    {"value": 1, "name": "Water", "color": "#0000ff"},
    {"value": 2, "name": "Forest", "color": "#00a000"},
    {"value": 3, "name": "Urban", "color": "#e6004d"},
]


def class_map(path):
    a = np.zeros((20, 20), np.uint8)
    a[:, :10] = 1
    a[:10, 10:] = 2
    a[10:, 10:] = 3
    a[0, 0] = 0  # ignored (IGNORE = 0)
    a[19, 0] = 255  # nodata
    return make_class_raster(path, a, CLASSES)


def centre(row, col):
    return 500000 + 10 * col + 5.0, 5000000 - 10 * row - 5.0


def write_points(path, pts, epsg=LAEA, ref_type=ogr.OFTString):
    """pts: (x, y in UTM 32N, reference, stratum); written in ``epsg`` (so the tool has to reproject them)."""
    src, dst = osr.SpatialReference(), osr.SpatialReference()
    src.ImportFromEPSG(UTM32N)
    dst.ImportFromEPSG(epsg)
    for s in (src, dst):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ct = osr.CoordinateTransformation(src, dst)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("points", dst, ogr.wkbPoint)
    for name, t in (("point_id", ogr.OFTInteger), ("stratum", ogr.OFTInteger), ("reference", ref_type)):
        lyr.CreateField(ogr.FieldDefn(name, t))
    for i, (x, y, ref, stratum) in enumerate(pts, start=1):
        f = ogr.Feature(lyr.GetLayerDefn())
        tx, ty, _ = ct.TransformPoint(x, y)
        g = ogr.Geometry(ogr.wkbPoint)
        g.AddPoint_2D(tx, ty)
        f.SetGeometry(g)
        f.SetField("point_id", i)
        if stratum is not None:
            f.SetField("stratum", stratum)
        if ref is None:
            f.SetFieldNull("reference")
        else:
            f.SetField("reference", ref)
        lyr.CreateFeature(f)
    ds = None
    return str(path)


#: (row, col, reference, stratum attribute) of the usable points; map: 1 = cols 0-9, 2 = rows 0-9 / cols 10-19,
#: 3 = rows 10-19 / cols 10-19
GOOD = [
    (2, 2, "1", 1),
    (5, 5, "1", 1),
    (8, 1, "1", 1),
    (12, 3, "1", 3),  # the last one: stratum attribute 3, map 1
    (15, 6, "2", 1),
    (17, 8, "3", 1),
    (1, 12, "2", 2),
    (4, 15, "2", 2),
    (7, 18, "2", 2),
    (9, 11, "1", 2),
    (11, 12, "3", 3),
    (14, 15, "3", 3),
    (16, 18, "2", 3),
    (18, 11, "3", 3),
]
#: expected sample counts n_ij (rows = map stratum, columns = reference)
COUNTS = [[4, 1, 1], [1, 3, 0], [0, 1, 3]]
PIXELS = [198, 100, 100]  # class 1 loses the ignored 0 and the nodata pixel


def sample(tmp_path, extra=True, **kw):
    pts = [(*centre(r, c), ref, s) for r, c, ref, s in GOOD]
    if extra:
        pts += [
            (600000.0, 5000000.0, "1", 1),  # outside the map
            (*centre(19, 0), "1", 1),  # on nodata
            (*centre(0, 0), "1", 1),  # on an ignored map value (0)
            (*centre(3, 3), None, 1),  # empty reference
            (*centre(3, 4), "abc", 1),  # not a class value
            (*centre(3, 6), "9", 1),
        ]  # a class the map does not know
    return write_points(tmp_path / "points.gpkg", pts, **kw)


def outputs(tmp_path, name="acc"):
    return {
        "OUTPUT_MATRIX": str(tmp_path / f"{name}.csv"),
        "OUTPUT_METRICS": str(tmp_path / f"{name}.json"),
        "OUTPUT_REPORT": str(tmp_path / f"{name}.html"),
    }


def run(run_alg, tmp_path, **params):
    res = run_alg(ALG, {**params, **outputs(tmp_path)})
    with open(res["OUTPUT_METRICS"], encoding="utf-8") as f:
        return res, json.load(f)


def test_stratified_estimates_from_reference_points(run_alg, tmp_path):
    res, m = run(
        run_alg,
        tmp_path,
        CLASSIFIED=class_map(tmp_path / "map.tif"),
        REFERENCE_POINTS=sample(tmp_path),
        REFERENCE_FIELD="reference",
    )
    s = m["sample"]
    assert (
        s["points"],
        s["used"],
        s["outside_map"],
        s["on_map_nodata"],
        s["masked_out"],
        s["empty_reference"],
        s["unknown_reference"],
        s["ignored_reference"],
        s["stratum_mismatch"],
    ) == (20, 14, 1, 2, 0, 1, 2, 0, 1)
    assert s["examples"]["stratum_mismatch"] == ["4 (stratum 3, map 1)"]
    assert s["examples"]["unknown_reference"] == ["19 ('abc')", "20 (9)"]
    # the error matrix of counts (the JSON keeps the tool's orientation: rows = reference, columns = classified)
    assert m["confusion_matrix"] == np.asarray(COUNTS).T.tolist() and m["pixels"] == 14
    # OA by hand: sum of W_i n_ii / n_i.
    w = np.array(PIXELS) / 398
    oa = w[0] * 4 / 6 + w[1] * 3 / 4 + w[2] * 3 / 4
    assert m["overall_accuracy"] == pytest.approx(oa) and res["OA"] == pytest.approx(oa)
    ref = estimator.stratified_estimates(COUNTS, PIXELS, [1, 2, 3], pixel_area_ha=0.01)
    assert m["overall_accuracy_ci95"] == pytest.approx(ref["overall_accuracy_ci95"])
    assert np.ravel(m["area_proportion_matrix"]) == pytest.approx(np.ravel(ref["area_proportion_matrix"]))
    for a, r, name in zip(m["area_estimates"], ref["classes"], ("Water", "Forest", "Urban")):
        assert (a["value"], a["name"]) == (r["value"], name)
        for key in (
            "mapped_area_ha",
            "estimated_area_ha",
            "ci95_ha",
            "users_accuracy",
            "users_accuracy_ci95",
            "producers_accuracy",
            "producers_accuracy_ci95",
        ):
            assert a[key] == pytest.approx(r[key]), key
    assert [a["mapped_area_ha"] for a in m["area_estimates"]] == pytest.approx([1.98, 1.0, 1.0])
    # error-adjusted area of water by hand: A * sum_i W_i n_i1 / n_i.
    assert m["area_estimates"][0]["estimated_area_ha"] == pytest.approx(3.98 * (w[0] * 4 / 6 + w[1] * 1 / 4))
    # per-class scores are the population estimates: precision = user's, recall = producer's accuracy
    for c, a in zip(m["classes"], m["area_estimates"]):
        assert c["precision"] == pytest.approx(a["users_accuracy"])
        assert c["recall"] == pytest.approx(a["producers_accuracy"])
    assert [c["support"] for c in m["classes"]] == [5, 5, 4] and [c["predicted"] for c in m["classes"]] == [6, 4, 4]
    assert m["estimator"].startswith("stratified (Olofsson et al. 2014")
    assert m["inputs"]["reference_field"] == "reference" and m["inputs"]["pixel_area_ha"] == 0.01
    page = Path(res["OUTPUT_REPORT"]).read_text(encoding="utf-8")
    assert "<h2>Area estimates</h2>" in page and "Error matrix in estimated area proportions" in page
    assert f"{ref['classes'][0]['estimated_area_ha']:,.2f}" in page and "&plusmn;" in page
    assert "<th>mapped area (ha)</th><th>mapped area (%)</th>" in page and ">1.98<" in page and ">49.75<" in page
    csv = Path(res["OUTPUT_MATRIX"]).read_text(encoding="utf-8").splitlines()
    assert csv[1] == "1,Water,4,1,0,5" and csv[-1] == "total,,6,4,4,14"


def test_integer_reference_field_and_points_in_the_raster_crs(run_alg, tmp_path):
    pts = [(*centre(r, c), int(ref), s) for r, c, ref, s in GOOD]
    path = write_points(tmp_path / "int.gpkg", pts, epsg=UTM32N, ref_type=ogr.OFTInteger)
    _, m = run(
        run_alg,
        tmp_path,
        CLASSIFIED=class_map(tmp_path / "map.tif"),
        REFERENCE_POINTS=path,
        REFERENCE_FIELD="reference",
    )
    assert m["sample"]["used"] == 14 and m["confusion_matrix"] == np.asarray(COUNTS).T.tolist()


def test_masked_points_and_ignored_reference_values(run_alg, tmp_path):
    mask = np.ones((20, 20), np.uint8)
    mask[2, 2] = 0
    pts = [(*centre(r, c), ref, s) for r, c, ref, s in GOOD] + [(*centre(6, 6), "0", 1)]
    _, m = run(
        run_alg,
        tmp_path,
        CLASSIFIED=class_map(tmp_path / "map.tif"),
        REFERENCE_POINTS=write_points(tmp_path / "p.gpkg", pts),
        REFERENCE_FIELD="reference",
        MASK=make_raster(tmp_path / "mask.tif", mask),
    )
    assert (m["sample"]["masked_out"], m["sample"]["ignored_reference"], m["sample"]["used"]) == (1, 1, 13)
    assert m["area_estimates"][0]["mapped_area_ha"] == pytest.approx(1.97)  # the masked pixel is no map area


def run_error(run_alg, tmp_path, **params):
    from qgis.core import QgsProcessingException

    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException) as e:
        run_alg(ALG, {**params, **outputs(out)})
    assert not out.exists() or os.listdir(out) == []
    return str(e.value)


def test_fault_cases(run_alg, tmp_path):
    cmap = class_map(tmp_path / "map.tif")
    pts = sample(tmp_path)
    assert run_error(run_alg, tmp_path, CLASSIFIED=cmap) == (
        "no reference given: set REFERENCE (a reference class raster) or REFERENCE_POINTS with REFERENCE_FIELD (a "
        "reference sample, e.g. from satclassify:samplingdesign)"
    )
    assert run_error(
        run_alg, tmp_path, CLASSIFIED=cmap, REFERENCE=cmap, REFERENCE_POINTS=pts, REFERENCE_FIELD="reference"
    ).startswith("both a reference raster (REFERENCE) and reference points (REFERENCE_POINTS) are given: choose one")
    assert run_error(
        run_alg, tmp_path, CLASSIFIED=cmap, REFERENCE_POINTS=pts, REFERENCE_FIELD="reference", SCALE=3
    ).startswith("SCALE compares maps block by block; with REFERENCE_POINTS")
    # only strata 1 and 2 sampled: urban covers a quarter of the map but has no point
    partial = write_points(tmp_path / "partial.gpkg", [(*centre(r, c), ref, s) for r, c, ref, s in GOOD[:10]])
    assert run_error(
        run_alg, tmp_path, CLASSIFIED=cmap, REFERENCE_POINTS=partial, REFERENCE_FIELD="reference"
    ).startswith("map class(es) 3 cover part of the map but hold no usable sample point")
    assert run_error(run_alg, tmp_path, CLASSIFIED=cmap, REFERENCE_POINTS=pts, REFERENCE_FIELD="label") == (
        "the reference points have no field 'label' (fields: fid, point_id, stratum, reference)"
    )
    empty = write_points(tmp_path / "empty.gpkg", [(*centre(2, 2), None, 1), (600000.0, 5000000.0, "1", 1)])
    msg = run_error(run_alg, tmp_path, CLASSIFIED=cmap, REFERENCE_POINTS=empty, REFERENCE_FIELD="reference")
    assert msg.startswith(
        "no usable reference point: of 2 points 1 outside map, 1 empty reference. Fill in the "
        "reference field 'reference'"
    )


def test_reference_field_defaults_to_reference(run_alg, tmp_path):
    _, m = run(run_alg, tmp_path, CLASSIFIED=class_map(tmp_path / "map.tif"), REFERENCE_POINTS=sample(tmp_path))
    assert m["sample"]["used"] == 14 and m["inputs"]["reference_field"] == "reference"


def test_report_legend_lists_the_classes_present_with_mapped_area(run_alg, tmp_path):
    """Raster comparison: the legend shows only classes found in either map, with the compared area classified as
    the class in ha and %; a class of the colour table that no map holds is not listed."""
    c = np.array([[1, 1, 2, 2], [1, 2, 2, 1], [1, 1, 1, 1], [2, 2, 2, 2]], np.uint8)
    r = np.array([[1, 1, 2, 2], [1, 2, 2, 1], [4, 4, 1, 1], [2, 2, 2, 2]], np.uint8)
    cls = tmp_path / "c.tif"
    ds = raster.create_geotiff(
        str(cls), 4, 4, 1, gdal.GDT_Byte, (500000, 10, 0, 5000000, 0, -10), wkt(UTM32N), classes=CLASSES
    )
    ds.GetRasterBand(1).WriteArray(c)
    ds = None
    res, m = run(run_alg, tmp_path, CLASSIFIED=str(cls), REFERENCE=make_raster(tmp_path / "r.tif", r))
    assert m["inputs"]["pixel_area_ha"] == 0.01
    page = Path(res["OUTPUT_REPORT"]).read_text(encoding="utf-8")
    legend = page[page.index("<h2>Legend</h2>") : page.index("<h2>Per-class accuracy</h2>")]
    # water: 8 pixels classified (0.08 ha, 50 %), forest 8; class 4 only in the reference (0 ha); urban absent
    assert "<td>Water</td><td class='n'>0.08</td><td class='n'>50.00</td>" in legend
    assert "<td>Forest</td><td class='n'>0.08</td><td class='n'>50.00</td>" in legend
    assert "<td>class 4</td><td class='n'>0.00</td><td class='n'>0.00</td>" in legend
    assert "Urban" not in legend


def test_cancel_leaves_no_output(run_alg, tmp_path):
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    fb = QgsProcessingFeedback()
    fb.cancel()
    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException, match="cancelled by the user: no output was written"):
        run_alg(
            ALG,
            {"CLASSIFIED": class_map(tmp_path / "map.tif"), "REFERENCE_POINTS": sample(tmp_path), **outputs(out)},
            feedback=fb,
        )
    assert not out.exists() or os.listdir(out) == []


def test_olofsson_2014_worked_example_through_the_tool(run_alg, tmp_path):
    """The paper's example end to end (Olofsson et al. 2014, RSE 148, section 5, Table 8): a 30 m map whose strata
    hold 200,000 / 150,000 / 3,200,000 / 6,450,000 pixels and 640 labelled points; the published estimates
    (p. 54) come out of processing.run."""
    rows = [100, 75, 1600, 3225]  # x 2000 columns = the strata sizes
    counts = [[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]]
    names = [
        {"value": 1, "name": "Deforestation", "color": "#ff0000"},
        {"value": 2, "name": "Forest gain", "color": "#0000ff"},
        {"value": 3, "name": "Stable forest", "color": "#00a000"},
        {"value": 4, "name": "Stable non-forest", "color": "#dddd00"},
    ]
    path = tmp_path / "map30.tif"
    ds = raster.create_geotiff(
        str(path),
        2000,
        sum(rows),
        1,
        gdal.GDT_Byte,
        (500000, 30, 0, 5000000, 0, -30),
        wkt(UTM32N),
        nodata=0,
        classes=names,
    )
    band = ds.GetRasterBand(1)
    top = 0
    for v, r in enumerate(rows, start=1):
        band.WriteArray(np.full((r, 2000), v, np.uint8), 0, top)
        top += r
    band = ds = None
    pts, top = [], 0
    for i, r in enumerate(rows):
        k = 0
        for j, n in enumerate(counts[i]):
            for _ in range(n):
                row, col = top + (k // 1000) * 2, (k % 1000) * 2  # distinct pixels inside the stratum
                pts.append((500000 + 30 * col + 15.0, 5000000 - 30 * row - 15.0, j + 1, i + 1))
                k += 1
        top += r
    sample_path = write_points(tmp_path / "table8.gpkg", pts, epsg=UTM32N, ref_type=ogr.OFTInteger)
    res, m = run(run_alg, tmp_path, CLASSIFIED=str(path), REFERENCE_POINTS=sample_path, REFERENCE_FIELD="reference")
    assert m["sample"]["used"] == 640 and m["sample"]["stratum_mismatch"] == 0
    a = {e["value"]: e for e in m["area_estimates"]}
    for v, area, ci in ((1, 21158, 6158), (2, 11686, 3756), (3, 285770, 15510), (4, 581386, 16282)):
        assert (round(a[v]["estimated_area_ha"]), round(a[v]["ci95_ha"])) == (area, ci)
    assert [round(a[v]["mapped_area_ha"]) for v in (1, 2, 3, 4)] == [18000, 13500, 288000, 580500]
    assert round(res["OA"], 2) == 0.95 and round(m["overall_accuracy_ci95"], 2) == 0.02
    assert [(round(a[v]["users_accuracy"], 2), round(a[v]["producers_accuracy"], 2)) for v in (1, 2, 3, 4)] == [
        (0.88, 0.75),
        (0.73, 0.85),
        (0.93, 0.93),
        (0.96, 0.96),
    ]
