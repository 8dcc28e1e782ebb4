"""Maps from class rasters: legends of the classes present (area in ha and %), generalisation to a minimum
mapping unit (sieve) and polygons (GDAL)."""
