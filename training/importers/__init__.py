"""Importers of public patch datasets into the SatClassify dataset folder (``python -m training import ...``).

* :mod:`.bigearthnet`: BigEarthNet-S2 v1 patch folders -> a multi-label dataset (43 CLC level-3 labels, or the
  19-class nomenclature of Sumbul et al. 2021);
* :mod:`.eurosat`: EuroSAT MS (13-band GeoTIFFs, one folder per class) -> a single-label dataset.

Both write through ``core.contract.dataset.DatasetWriter`` (staging folder: a failure leaves nothing) and the
footprints with ``core.contract.gpkg`` (see docs/training.md "Public datasets").
"""
