"""The Processing tools take their parameter defaults (and limits) from the core's option dataclasses, so a
dialog, qgis_process and a headless caller of the core run with the same settings."""

import pytest

from satclassify_plugin.core.accuracy.sampling import SamplingOptions
from satclassify_plugin.core.classify.options import DEVICES, MAX_BATCH_SIZE, MAX_TILE_SIZE, ClassifyOptions


def defaults(provider, alg_id):
    alg = provider.algorithm(alg_id)
    return {d.name(): d for d in alg.parameterDefinitions()}, alg


@pytest.mark.parametrize("alg_id", ["classify", "classifypatches"])
def test_classify_tools_defaults_are_classify_options(provider, alg_id):
    o = ClassifyOptions()
    p, alg = defaults(provider, alg_id)
    assert alg.DEVICE_OPTIONS == list(DEVICES) and p["DEVICE"].defaultValue() == DEVICES.index(o.device)
    assert p["BATCH_SIZE"].defaultValue() == o.batch_size and p["BATCH_SIZE"].maximum() == MAX_BATCH_SIZE
    if alg_id == "classify":
        assert p["TILE_SIZE"].defaultValue() == o.tile_size and p["TILE_SIZE"].maximum() == MAX_TILE_SIZE
        assert p["RESAMPLE"].defaultValue() is o.resample


def test_samplingdesign_defaults_are_sampling_options(provider):
    o = SamplingOptions()
    p, alg = defaults(provider, "samplingdesign")
    assert p["IGNORE"].defaultValue() == o.ignore
    assert alg.METHOD_KEYS[p["METHOD"].defaultValue()] == o.method
    assert alg.ALLOCATION_KEYS[p["ALLOCATION"].defaultValue()] == o.rule
    assert (
        p["TARGET_SE"].defaultValue(),
        p["EXPECTED_UA"].defaultValue(),
        p["TOTAL"].defaultValue(),
        p["MIN_PER_CLASS"].defaultValue(),
        p["SEED"].defaultValue(),
    ) == (o.target_se, o.expected_ua, o.total, o.minimum, o.seed)
