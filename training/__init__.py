"""SatClassify training package: datasets, models (U-Net, CNN-dual, CNN-class), training,
evaluation and ONNX export with the SatClassify model card.

Run ``python -m training --help``. Never imported by the QGIS plugin.
"""

__version__ = "0.1.0"
