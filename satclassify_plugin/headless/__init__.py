"""The ``satclassify`` command: the plugin's core without QGIS (docs/headless.md).

``satclassify classify|classifypatches|rasterizeclc|assess`` run the same core functions as the Processing tools
(``algorithms/``), with the same parameter names (``TILE_SIZE`` -> ``--tile-size``), defaults and messages, so a run
in QGIS and one on a server write identical files; ``satclassify batch classify`` sends one task per scene to a
Dask cluster (:mod:`.batch`). This package imports ``satclassify_plugin.core``, the model list
(``install.model_catalogue``, pure Python) and the standard library; dask only inside ``batch``. It never imports
qgis, PyQt or torch (tests/core/test_guardrail.py) and is not part of the plugin zip (scripts/build_zip.py).
"""
