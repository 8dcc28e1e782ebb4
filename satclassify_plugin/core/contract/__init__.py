"""Shared with the training package: pure Python + numpy (no qgis, no osgeo)."""
