"""Pure logic of SatClassify.

Rules (enforced by tests/test_core_guardrail.py): no module here imports qgis, PyQt or torch.
Modules used by the training package (clc, modelcard, metrics, dataset, errors) import no osgeo
either; GDAL-based I/O lives in modules whose names start with ``gdal_``.
"""
