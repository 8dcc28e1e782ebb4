"""Sentinel-2: product conventions, search sources, HTTP, stacks (GDAL)."""
