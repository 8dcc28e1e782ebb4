"""Labels from CLC: rasterization (GDAL/OGR) and training patches."""
