"""Helpers that make small georeferenced test rasters and vectors with GDAL/OGR (QGIS env)."""

import numpy as np
from osgeo import gdal, ogr, osr

gdal.UseExceptions()

UTM32N = 32632
LAEA = 3035  # CLC's CRS


def wkt(epsg):
    s = osr.SpatialReference()
    s.ImportFromEPSG(epsg)
    return s.ExportToWkt()


def make_raster(
    path, array, origin=(500000.0, 5000000.0), pixel=10.0, epsg=UTM32N, nodata=None, band_names=None, driver="GTiff"
):
    """Write ``array`` (bands, rows, cols) or (rows, cols) with a north-up geotransform; returns path."""
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[None]
    gdt = gdal.GetDataTypeByName(
        {
            "uint8": "Byte",
            "uint16": "UInt16",
            "int16": "Int16",
            "int32": "Int32",
            "float32": "Float32",
            "float64": "Float64",
            "uint32": "UInt32",
        }[a.dtype.name]
    )
    ds = gdal.GetDriverByName(driver).Create(str(path), a.shape[2], a.shape[1], a.shape[0], gdt)
    ds.SetGeoTransform((origin[0], pixel, 0, origin[1], 0, -pixel))
    if epsg:
        ds.SetProjection(wkt(epsg))
    for i in range(a.shape[0]):  # nodata and names before the pixels (GDAL >= 3.10)
        b = ds.GetRasterBand(i + 1)
        if nodata is not None:
            b.SetNoDataValue(nodata)
        if band_names:
            b.SetDescription(band_names[i])
        b.WriteArray(a[i])
    b = None
    ds.FlushCache()
    ds = None
    return str(path)


def read_raster(path):
    ds = gdal.Open(str(path))
    return ds.ReadAsArray()


def make_polygons(path, polygons, epsg=LAEA, fields=None, layer="clc", driver="GPKG"):
    """Write polygons (WKT strings) with attribute dicts; ``fields`` maps name -> ogr type."""
    drv = ogr.GetDriverByName(driver)
    ds = drv.CreateDataSource(str(path))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    lyr = ds.CreateLayer(layer, srs, ogr.wkbMultiPolygon if driver != "ESRI Shapefile" else ogr.wkbPolygon)
    fields = fields or {}
    for name, t in fields.items():
        lyr.CreateField(ogr.FieldDefn(name, t))
    for geom_wkt, attrs in polygons:
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetGeometry(ogr.CreateGeometryFromWkt(geom_wkt))
        for k, v in (attrs or {}).items():
            f.SetField(k, v)
        lyr.CreateFeature(f)
    ds = None
    return str(path)


def make_class_raster(path, array, classes, pixel=10.0, origin=(500000.0, 5000000.0), epsg=UTM32N, nodata=255):
    """A Byte class raster written like the tools write one: colour table and category names of ``classes``
    (dicts with value, name, color) and nodata set before the pixels (core.raster.create_geotiff)."""
    from satclassify_plugin.core import raster

    a = np.asarray(array)
    ds = raster.create_geotiff(
        str(path),
        a.shape[1],
        a.shape[0],
        1,
        gdal.GDT_Byte,
        (origin[0], pixel, 0, origin[1], 0, -pixel),
        wkt(epsg) if epsg else "",
        nodata=nodata,
        classes=classes,
    )
    ds.GetRasterBand(1).WriteArray(a)
    ds = None
    return str(path)
