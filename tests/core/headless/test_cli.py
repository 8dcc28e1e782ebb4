"""The satclassify command line itself: help of every subcommand, the Processing names as options, extents and
enumerations as qgis_process takes them, the export-openeo dispatcher."""

import pytest

from satclassify_plugin.core.contract.errors import SatClassifyError
from satclassify_plugin.headless import batch, cli


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["classify", "--help"],
        ["classifypatches", "--help"],
        ["rasterizeclc", "--help"],
        ["assess", "--help"],
        ["assessaccuracy", "--help"],
    ],
)
def test_help_of_every_subcommand(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 0
    assert "usage: satclassify" in capsys.readouterr().out


def test_batch_help(capsys):
    with pytest.raises(SystemExit) as e:
        batch.main(["classify", "--help"])
    text = capsys.readouterr().out
    assert e.value.code == 0 and "--scheduler" in text and "--tile-size" in text


def test_options_are_the_processing_names():
    a = cli.build_parser().parse_args(
        [
            "classify",
            "--input",
            "a.tif",
            "--model",
            "m.onnx",
            "--output",
            "o.tif",
            "--tile-size",
            "64",
            "--output-2",
            "b.tif",
            "--no-write-all-heads",
        ]
    )
    assert (a.INPUT, a.TILE_SIZE, a.OUTPUT_2, a.WRITE_ALL_HEADS, a.BATCH_SIZE, a.DEVICE, a.RESAMPLE) == (
        "a.tif",
        64,
        "b.tif",
        False,
        0,
        "0",
        False,
    )
    assert cli.flag("OUTPUT_METRICS") == "--output-metrics"


def test_extent_in_qgis_process_order():
    assert cli.parse_extent("1,3,2,4") == ((1.0, 2.0, 3.0, 4.0), None)
    assert cli.parse_extent(" 1.5, 3 ,2,4 [EPSG:32632]") == ((1.5, 2.0, 3.0, 4.0), "EPSG:32632")
    with pytest.raises(SatClassifyError, match="give xmin,xmax,ymin,ymax"):
        cli.parse_extent("1,2,3")


def test_enumerations_by_index_or_name():
    opts = ["Auto", "CPU", "CUDA"]
    assert cli.enum_index("1", opts, "DEVICE") == 1 and cli.enum_index("cuda", opts, "DEVICE") == 2
    assert cli.enum_index("level1", cli.LEVEL_OPTIONS, "LEVEL", cli.LEVEL_ALIASES) == 0
    with pytest.raises(SatClassifyError, match="DEVICE '7' is not one of the choices: 0 = Auto"):
        cli.enum_index("7", opts, "DEVICE")


def test_export_openeo_dispatches_to_the_module(monkeypatch, tmp_path, capsys):
    import sys
    import types

    got = []
    fake = types.ModuleType(cli.OPENEO_MODULE)
    fake.main = lambda argv: got.append(argv) or 0
    monkeypatch.setitem(sys.modules, cli.OPENEO_MODULE, fake)
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: object())
    assert cli.main(["export-openeo", "--model", "m.onnx", "--out", "d"]) == 0
    assert got == [["--model", "m.onnx", "--out", "d"]]
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None)
    assert cli.main(["export-openeo"]) == 2
    assert "no openEO exporter" in capsys.readouterr().err
