"""Issue 25 item 12: an output name too long for the writer's temporary name (GDAL failed with "File name too long"
about a hidden '.<name>.<pid>.part.tif') is refused before anything is written, naming the user's path."""

import os

import pytest

from satclassify_plugin.core.contract.errors import SatClassifyError
from satclassify_plugin.core.contract.paths import (
    TEMP_NAME_ROOM,
    check_outputs,
    check_regular_target,
    name_length_error,
    name_max,
    temp_tag,
)


def test_the_limit_leaves_room_for_the_longest_temporary_name(tmp_path):
    limit = name_max(str(tmp_path)) - TEMP_NAME_ROOM
    stem = "x" * (limit - 5)
    tmp = f".{stem}.{temp_tag()}.part-layer.gpkg-journal"  # the longest temporary name a writer makes
    assert len(tmp) <= name_max(str(tmp_path))
    (tmp_path / tmp).write_text("")  # the file system takes it
    assert name_length_error(str(tmp_path / (stem + ".gpkg"))) is None


@pytest.mark.parametrize("n", [208, 244, 250, 255])
def test_long_names_are_refused_naming_the_path(tmp_path, n):
    out = str(tmp_path / ("a" * (n - 4) + ".tif"))
    with pytest.raises(SatClassifyError) as e:
        check_outputs({"INPUT": []}, {"OUTPUT": out})
    assert str(e.value) == (
        f"cannot write OUTPUT '{out}': its file name is {n} characters (bytes) long, but the tools write each output "
        f"under a temporary name up to {TEMP_NAME_ROOM} bytes longer and this file system allows 255: choose a file "
        "name of at most 207 characters"
    )
    with pytest.raises(SatClassifyError, match=f"cannot write '{out}': its file name is {n} characters"):
        check_regular_target(out)  # the writers (AtomicOutput, contract.gpkg, training.files) check it too
    assert os.listdir(tmp_path) == []


def test_layer_targets_and_multibyte_names():
    assert name_length_error("/tmp/" + "b" * 200 + ".gpkg|layername=" + "l" * 300) is None
    name = "é" * 104 + ".tif"  # 212 bytes in UTF-8
    assert "is 212 characters (bytes) long" in name_length_error("/tmp/" + name)
