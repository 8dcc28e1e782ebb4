"""Accuracy assessment: tables and transforms (pure), the streamed comparison (GDAL)."""
