"""Issue 25 (data loss): what an output path may point at.

* An output that is a device, a FIFO or a socket is refused (the temp-then-rename writer would replace it by a
  regular file: as root, ``OUTPUT=/dev/null`` replaced the system's /dev/null). A symbolic link to /dev/null
  stands in for the device, so a test that fails replaces only the link.
* ``file.gpkg|layername=name`` adds or replaces that one layer; the GeoPackage's other layers stay (generalize
  replaced the whole file; samplingdesign, classifypatches and landcoverchange refused the form).
* Temporary files an interrupted run left (a process that is gone) are removed by the next run of the same
  output; those of a live process, and of other outputs, are not.

Every case runs the real tool through processing.run."""

import hashlib
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from osgeo import ogr
from qgis.core import QgsProcessingException

from satclassify_plugin.core.contract.paths import HOST_ID
from tests import onnx_models as om
from tests.rasters import UTM32N, make_class_raster, make_polygons, make_raster


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def data(tmp_path):
    a = np.full((60, 80), 1, np.uint8)
    a[:, 40:] = 2
    a[10:20, 10:20] = 3
    b = a.copy()
    b[30:50, 50:70] = 1
    raw = np.random.default_rng(0).integers(200, 5000, (4, 40, 48)).astype(np.uint16)
    poly = "POLYGON((500000 4999700,500400 4999700,500400 5000000,500000 5000000,500000 4999700))"
    return {
        "tmp": tmp_path,
        "cls": make_raster(tmp_path / "cls.tif", a, nodata=0),
        "cls2": make_raster(tmp_path / "cls2.tif", b, nodata=0),
        "s2": make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4),
        "project": make_polygons(
            tmp_path / "project.gpkg", [(poly, {"code_18": "211"})], epsg=UTM32N, fields={"code_18": ogr.OFTString}
        ),
    }


def layers(path):
    """{layer name: feature count} of a GeoPackage."""
    ds = ogr.Open(str(path))
    out = {ds.GetLayer(i).GetName(): ds.GetLayer(i).GetFeatureCount() for i in range(ds.GetLayerCount())}
    ds = None
    return out


# --- 1. outputs that are not regular files ----------------------------------------------------------------------


@pytest.fixture
def specials(tmp_path):
    """A symlink to /dev/null (a character device), a FIFO and a socket, each with an output's name."""
    d = tmp_path / "special"
    d.mkdir()
    os.symlink("/dev/null", d / "null.json")
    os.mkfifo(d / "pipe.csv")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(d / "sock.html"))
    yield {"device": str(d / "null.json"), "fifo": str(d / "pipe.csv"), "socket": str(d / "sock.html")}
    sock.close()


def _kind(path):
    import stat

    m = os.stat(path).st_mode
    return "chr" if stat.S_ISCHR(m) else "fifo" if stat.S_ISFIFO(m) else "sock" if stat.S_ISSOCK(m) else "other"


@pytest.mark.parametrize(
    "which,param,what",
    [
        ("device", "OUTPUT_METRICS", "a character device"),
        ("fifo", "OUTPUT_MATRIX", r"a FIFO \(named pipe\)"),
        ("socket", "OUTPUT_REPORT", "a socket"),
    ],
)
def test_assessaccuracy_output_on_a_device_fifo_or_socket_is_refused(run_alg, data, specials, which, param, what):
    t = data["tmp"]
    params = {
        "CLASSIFIED": data["cls"],
        "REFERENCE": data["cls2"],
        "OUTPUT_MATRIX": str(t / "m.csv"),
        "OUTPUT_METRICS": str(t / "m.json"),
        "OUTPUT_REPORT": str(t / "r.html"),
        param: specials[which],
    }
    kinds = {k: _kind(p) for k, p in specials.items()}
    with pytest.raises(
        QgsProcessingException,
        match=rf"{param} '.*' is {what}, not a regular file: .* Choose an "
        "output file name",
    ):
        run_alg("satclassify:assessaccuracy", params)
    assert {k: _kind(p) for k, p in specials.items()} == kinds  # nothing replaced
    assert os.path.islink(specials["device"])
    assert not [f for f in os.listdir(t) if f.endswith((".csv", ".json", ".html"))]


def test_raster_and_vector_outputs_on_a_fifo_are_refused(run_alg, data, specials):
    with pytest.raises(QgsProcessingException, match=r"OUTPUT '.*pipe\.csv' is a FIFO"):
        run_alg("satclassify:generalize", {"INPUT": data["cls"], "MMU": 0.01, "OUTPUT": specials["fifo"]})
    with pytest.raises(QgsProcessingException, match=r"POLYGONS '.*null\.json' is a character device"):
        run_alg(
            "satclassify:generalize",
            {"INPUT": data["cls"], "MMU": 0.01, "OUTPUT": str(data["tmp"] / "g.tif"), "POLYGONS": specials["device"]},
        )
    assert _kind(specials["fifo"]) == "fifo" and os.path.islink(specials["device"])
    assert not (data["tmp"] / "g.tif").exists()


def test_the_writer_itself_refuses_a_device(tmp_path):
    """Core writers (AtomicOutput) refuse too, before writing and again right before the rename."""
    from satclassify_plugin.core import raster
    from satclassify_plugin.core.contract.errors import SatClassifyError

    dev = tmp_path / "dev.tif"
    os.symlink("/dev/null", dev)
    with pytest.raises(
        SatClassifyError,
        match=r"cannot write '.*dev\.tif': it is a character device, not a "
        r"regular file",
    ):
        raster.AtomicOutput(str(dev))
    late = tmp_path / "late.tif"
    with pytest.raises(SatClassifyError, match="it is a character device"):
        with raster.AtomicOutput(str(late)) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"x")
            os.symlink("/dev/null", late)  # appears while the tool runs
    assert os.path.islink(late) and sorted(os.listdir(tmp_path)) == ["dev.tif", "late.tif"]


# --- 2. one layer of a GeoPackage ------------------------------------------------------------------------------


def test_generalize_adds_and_replaces_only_its_layer(run_alg, data):
    project = data["project"]
    target = f"{project}|layername=gen"
    res = run_alg(
        "satclassify:generalize",
        {"INPUT": data["cls"], "MMU": 0.01, "OUTPUT": str(data["tmp"] / "g.tif"), "POLYGONS": target},
    )
    assert res["POLYGONS"] == target
    first = layers(project)
    assert first["clc"] == 1 and first["gen"] == res["POLYGON_COUNT"] > 0 and set(first) == {"clc", "gen"}
    res = run_alg(
        "satclassify:generalize",
        {"INPUT": data["cls2"], "MMU": 0.01, "OUTPUT": str(data["tmp"] / "g.tif"), "POLYGONS": target},
    )
    again = layers(project)
    assert set(again) == {"clc", "gen"} and again["clc"] == 1 and again["gen"] == res["POLYGON_COUNT"]
    ds = ogr.Open(project)
    lyr = ds.GetLayerByName("gen")
    assert [lyr.GetLayerDefn().GetFieldDefn(i).GetName() for i in range(lyr.GetLayerDefn().GetFieldCount())] == [
        "value",
        "code",
        "name",
        "area_ha",
    ]
    assert lyr.GetSpatialRef().GetAuthorityCode(None) == "32632"
    ds = None
    assert not [f for f in os.listdir(data["tmp"]) if f.startswith(".")]


def test_every_vector_tool_writes_into_an_existing_geopackage(run_alg, data):
    project, t = data["project"], data["tmp"]
    res = run_alg(
        "satclassify:samplingdesign",
        {
            "INPUT": data["cls"],
            "METHOD": 1,
            "TOTAL": 30,
            "MIN_PER_CLASS": 5,
            "OUTPUT": f"{project}|layername=points",
            "OUTPUT_STRATA": str(t / "strata.json"),
        },
    )
    assert res["OUTPUT"] == f"{project}|layername=points"
    ds = ogr.Open(project)
    assert ds.GetLayerByName("points").GetMetadataItem("SATCLASSIFY_STRATA")  # the layer metadata came along
    ds = None
    res = run_alg(
        "satclassify:landcoverchange",
        {
            "FIRST": data["cls"],
            "SECOND": data["cls2"],
            "MMU": 0.01,
            "OUTPUT": str(t / "ft.tif"),
            "OUTPUT_MATRIX": str(t / "c.csv"),
            "OUTPUT_JSON": str(t / "c.json"),
            "OUTPUT_POLYGONS": f"{project}|layername=change",
        },
    )
    assert res["OUTPUT_POLYGONS"] == f"{project}|layername=change"
    model = om.patch_model(t / "p.onnx", [[1.0, 0, 0, 0], [0, 1.0, 0, 0]], [0.0, 0.0])
    res = run_alg(
        "satclassify:classifypatches", {"INPUT": data["s2"], "MODEL": model, "OUTPUT": f"{project}|layername=cells"}
    )
    assert res["OUTPUT"] == f"{project}|layername=cells"
    got = layers(project)
    assert set(got) == {"clc", "points", "change", "cells"}
    assert got["clc"] == 1 and got["points"] == 30 and got["change"] >= 1 and got["cells"] == res["COUNT"] == 30


def test_two_layers_of_one_geopackage_in_one_run(run_alg, data):
    """Two vector outputs of one run may name two layers of the same GeoPackage (each is added, the file's other
    layers stay); the same layer twice, or the whole file beside one of its layers, is refused before writing."""
    project, t = data["project"], data["tmp"]
    conf = make_raster(t / "conf.tif", np.full((60, 80), 95, np.uint8), nodata=255)
    base = {
        "FIRST": data["cls"],
        "SECOND": data["cls2"],
        "CONFIDENCE": conf,
        "MMU": 0.01,
        "THRESHOLD": 80,
        "OUTPUT": str(t / "ft.tif"),
        "OUTPUT_MATRIX": str(t / "c.csv"),
        "OUTPUT_JSON": str(t / "c.json"),
    }
    res = run_alg(
        "satclassify:landcoverchange",
        {
            **base,
            "OUTPUT_POLYGONS": f"{project}|layername=change",
            "OUTPUT_CANDIDATES": f"{project}|layername=candidates",
        },
    )
    assert res["OUTPUT_POLYGONS"] == f"{project}|layername=change"
    assert res["OUTPUT_CANDIDATES"] == f"{project}|layername=candidates"
    got = layers(project)
    assert set(got) == {"clc", "change", "candidates"} and got["clc"] == 1
    assert got["change"] >= 1 and got["candidates"] >= 1
    before = digest(project)
    for polys, cands, why in (
        (f"{project}|layername=x", f"{project}|layername=X", "the same layer"),
        (str(project), f"{project}|layername=y", "the whole file"),
    ):
        with pytest.raises(
            QgsProcessingException,
            match=r"OUTPUT_(POLYGONS|CANDIDATES) and OUTPUT_(POLYGONS|"
            r"CANDIDATES) .*" + why,
        ):
            run_alg("satclassify:landcoverchange", {**base, "OUTPUT_POLYGONS": polys, "OUTPUT_CANDIDATES": cands})
        assert digest(project) == before


def test_layer_into_a_file_that_is_not_a_geopackage_is_refused(run_alg, data):
    notes = data["tmp"] / "notes.gpkg"
    notes.write_text("not a GeoPackage")
    with pytest.raises(
        QgsProcessingException,
        match=r"cannot add the layer 'gen' to '.*notes\.gpkg': the file "
        "exists and is not a GeoPackage",
    ):
        run_alg(
            "satclassify:generalize",
            {
                "INPUT": data["cls"],
                "MMU": 0.01,
                "OUTPUT": str(data["tmp"] / "g.tif"),
                "POLYGONS": f"{notes}|layername=gen",
            },
        )
    assert notes.read_text() == "not a GeoPackage"
    with pytest.raises(QgsProcessingException, match=r"only '\|layername=<name>' can follow"):
        run_alg(
            "satclassify:generalize",
            {
                "INPUT": data["cls"],
                "MMU": 0.01,
                "OUTPUT": str(data["tmp"] / "g.tif"),
                "POLYGONS": f"{data['project']}|layerid=0",
            },
        )
    assert layers(data["project"]) == {"clc": 1}


def test_a_new_geopackage_from_a_layer_target(run_alg, data):
    target = str(data["tmp"] / "new.gpkg") + "|layername=mine"
    run_alg(
        "satclassify:generalize",
        {"INPUT": data["cls"], "MMU": 0.01, "OUTPUT": str(data["tmp"] / "g.tif"), "POLYGONS": target},
    )
    assert list(layers(data["tmp"] / "new.gpkg")) == ["mine"]


# --- 13. leftovers of interrupted runs -------------------------------------------------------------------------


def dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_leftovers_of_a_dead_run_of_the_same_output_are_removed(run_alg, data):
    t = data["tmp"]
    dead = dead_pid()
    gone = [
        t / f".g.{dead}-{HOST_ID}abcd.part.tif",
        t / f".g.{dead}-{HOST_ID}abcd.part.tif.aux.xml",
        t / f".polys.{dead}-{HOST_ID}0123.part.gpkg",
        t / f".polys.{dead}-{HOST_ID}0123.part.gpkg-journal",
    ]
    kept = [
        t / f".g.1-{HOST_ID}abcd.part.tif",  # a live process (pid 1) still writes it
        t / f".g.{dead}-ffffabcd.part.tif",  # made on another computer (a shared disk)
        t / f".other.{dead}-{HOST_ID}abcd.part.tif",  # another output's
        t / ".g.1a2b3c4d.part.tif",
    ]  # an old name that says no owner
    for p in gone + kept:
        p.write_bytes(b"partial")
    run_alg(
        "satclassify:generalize",
        {"INPUT": data["cls"], "MMU": 0.01, "OUTPUT": str(t / "g.tif"), "POLYGONS": str(t / "polys.gpkg")},
    )
    assert [p.name for p in gone if p.exists()] == []
    assert [p.name for p in kept if not p.exists()] == []


def test_staging_folders_of_dead_runs_are_removed_by_the_next_build(run_alg, data):
    out = data["tmp"] / "ds"
    out.mkdir()
    dead = dead_pid()
    stale = out / f".staging-{dead}-{HOST_ID}abcd"
    stale.mkdir()
    (stale / "images-train-0.npy").write_bytes(b"x" * 1000)
    live = out / f".staging-1-{HOST_ID}abcd"
    live.mkdir()
    labels = make_class_raster(
        data["tmp"] / "lab.tif",
        np.random.default_rng(2).integers(1, 3, (40, 48)),
        [{"value": 1, "name": "Water", "color": "#0000ff"}, {"value": 2, "name": "Forest", "color": "#00a000"}],
    )
    run_alg(
        "satclassify:buildpatches",
        {
            "IMAGE": data["s2"],
            "LABELS": labels,
            "PATCH_SIZE": 8,
            "BLOCK_SIZE": 1,
            "VAL_FRACTION": 0.0,
            "TEST_FRACTION": 0.0,
            "OUTPUT_FOLDER": str(out),
        },
    )
    assert not stale.exists() and live.exists()
    assert (out / "manifest.json").exists()
