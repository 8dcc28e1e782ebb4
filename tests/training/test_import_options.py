"""ImportOptions: the split and writing options of ``python -m training import``, checked when made (before any
patch is read), with the flag to fix in the message."""

import dataclasses

import pytest

from training.cli import build_parser
from training.errors import TrainingError
from training.importers.common import ImportOptions


def test_defaults_are_the_cli_defaults():
    args = build_parser().parse_args(["import", "eurosat", "src", "--out", "o"])
    o = ImportOptions()
    assert (o.val_fraction, o.test_fraction, o.seed, o.block_size, o.shard_size, o.overwrite, o.workers, o.k_folds) == (
        args.val_fraction,
        args.test_fraction,
        args.seed,
        args.block_size,
        args.shard_size,
        args.overwrite,
        args.workers,
        args.k_folds,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.seed = 3


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"block_size": 0}, "--block-size must be at least 1, not 0"),
        ({"shard_size": 0}, "--shard-size must be at least 1, not 0"),
        ({"k_folds": 1}, "--k-folds must be 0 (no folds) or at least 2, not 1"),
        ({"k_folds": -2}, "--k-folds must be 0 (no folds) or at least 2, not -2"),
        ({"val_fraction": 0.6, "test_fraction": 0.4}, "val fraction 0.6 + test fraction 0.4 must be below 1"),
        ({"val_fraction": -0.1}, "must be below 1 (the rest is train)"),
    ],
)
def test_bad_options_name_the_flag(kwargs, words):
    with pytest.raises(TrainingError) as e:
        ImportOptions(**kwargs)
    assert words in str(e.value)


def test_cli_refuses_a_bad_option_before_reading(tmp_path, capsys):
    from training.cli import main

    assert (
        main(["import", "eurosat", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--shard-size", "0"]) == 2
    )
    assert "--shard-size must be at least 1, not 0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
