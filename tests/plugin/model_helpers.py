"""Helpers for tests that run Processing models."""


def model_dest(alg, output):
    """The model's destination parameter for its output ``output``.

    QGIS 3.22 names it ``<child id>:<output>`` (``fetch:stack``), QGIS 3.40+ plain ``output`` (``stack``):
    match on the part after the last colon, and insist on exactly one."""
    names = [d.name() for d in alg.destinationParameterDefinitions() if d.name().split(":")[-1] == output]
    assert len(names) == 1, [d.name() for d in alg.destinationParameterDefinitions()]
    return names[0]


def check_model_steps(registry, alg):
    """Every step of model ``alg`` refers to a tool the provider really has, with parameters that tool declares;
    returns the steps' algorithm ids, sorted."""
    ids = []
    for child in alg.childAlgorithms().values():
        tool = registry.algorithmById(child.algorithmId())
        assert tool is not None, child.algorithmId()
        declared = {d.name() for d in tool.parameterDefinitions()}
        assert set(child.parameterSources()) <= declared, (child.algorithmId(), set(child.parameterSources()))
        ids.append(child.algorithmId())
    return sorted(ids)
