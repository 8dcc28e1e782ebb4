"""Generalise a class raster to a minimum mapping unit (MMU), optionally into polygons (GDAL sieve + polygonize).

A map people publish is generalised: CORINE Land Cover maps nothing smaller than 25 ha. :func:`generalize`

1. converts the MMU in hectares into pixels from the pixel size and the CRS's unit (:func:`mmu_pixels`; a raster
   in degrees is refused: its pixels differ in area);
2. sieves with ``gdal.SieveFilter`` in steps (2, 4, 8, ... pixels, then the MMU): one pass at the MMU leaves
   salt-and-pepper noise standing, because GDAL merges a small patch only into a *larger* neighbour and in noise
   every neighbour is small too; growing the threshold merges the specks first, then the small patches;
3. removes what is still smaller than the MMU: patches with no labelled neighbour at all (an island in nodata
   or cut by the raster edge), which become nodata (logged with their area);
4. keeps the colour table and category names, and nodata stays nodata (the sieve never fills nor spreads it);
5. optionally polygonizes (``gdal.Polygonize``, same connectivity as the sieve) into a GeoPackage with the
   fields value, code, name, area_ha: no polygon is smaller than the MMU.

Memory: ``gdal.SieveFilter`` and ``gdal.Polygonize`` work on whole bands (a patch may span the raster, so the
work cannot be tiled): besides GDAL's block cache they keep per-polygon tables, which grow with the number of
patches of the input (large for a noisy prediction). Generalise a very large raster by parts (EXTENT in
classify, or Raster > Extraction > Clip) when memory runs out.
"""

from __future__ import annotations

import math
import os
from typing import Dict, List, Optional

from osgeo import gdal, ogr

from .. import raster
from ..contract.errors import SatClassifyError
from ..contract.feedback import Canceled, Monitor
from ..contract.paths import split_layer
from . import legend

gdal.UseExceptions()
ogr.UseExceptions()

CONNECTIVITY = (4, 8)
FIELDS = (("value", ogr.OFTInteger), ("code", ogr.OFTString), ("name", ogr.OFTString), ("area_ha", ogr.OFTReal))


def mmu_pixels(mmu_ha: float, pixel_area_m2: float) -> int:
    """The smallest patch (in pixels) that reaches ``mmu_ha``: a patch of this many pixels covers at least the
    MMU, one pixel fewer does not."""
    if not mmu_ha or mmu_ha <= 0 or not math.isfinite(mmu_ha):
        raise SatClassifyError(
            f"MMU must be a positive area in hectares (e.g. 25 as in CORINE Land Cover), not {mmu_ha:g}"
        )
    return max(1, int(math.ceil(mmu_ha * 1e4 / pixel_area_m2 - 1e-9)))


def sieve_steps(threshold: int) -> List[int]:
    """2, 4, 8, ... below ``threshold``, then ``threshold`` (nothing for 1: every patch has a pixel)."""
    steps, t = [], 2
    while t < threshold:
        steps.append(t)
        t *= 2
    return steps + ([threshold] if threshold > 1 else [])


def _gdal_callback(mon: Monitor, start: float, end: float):
    def cb(complete, message=None, data=None):
        mon.progress(start + (end - start) * complete)
        return 0 if mon.canceled() else 1

    return cb


def _polygonize(band: gdal.Band, srs, connectivity: int, mon: Monitor, start: float, end: float):
    mem = ogr.GetDriverByName("Memory").CreateDataSource("patches")
    layer = mem.CreateLayer("patches", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("value", ogr.OFTInteger))
    opts = ["8CONNECTED=8"] if connectivity == 8 else []
    gdal.Polygonize(band, band.GetMaskBand(), layer, 0, opts, callback=_gdal_callback(mon, start, end))
    return mem, layer


def generalize(
    input_path: str,
    output: str,
    mmu_ha: float,
    connectivity: int = 4,
    polygons: Optional[str] = None,
    polygons_layer: Optional[str] = None,
    monitor: Optional[Monitor] = None,
) -> Dict[str, object]:
    """Sieve the class raster ``input_path`` (band 1) to ``mmu_ha`` into ``output`` (GeoTIFF); with ``polygons``,
    also write a GeoPackage of the generalised patches. Both appear only when complete.

    Returns a summary: threshold (pixels), pixel_area_m2, mmu_ha, islands (patches below the MMU without a
    labelled neighbour, set to nodata) and islands_ha, polygons (count or None), classes (legend entries of
    the output: only the classes present, with pixels, area_ha and percent)."""
    mon = monitor or Monitor()
    if connectivity not in CONNECTIVITY:
        raise SatClassifyError(f"connectivity must be 4 or 8, not {connectivity}")
    src = raster.open_raster(input_path, "class raster")
    sband = src.GetRasterBand(1)
    if sband.DataType not in (gdal.GDT_Byte, gdal.GDT_UInt16, gdal.GDT_Int16, gdal.GDT_UInt32, gdal.GDT_Int32):
        raise SatClassifyError(
            f"INPUT '{input_path}' is {gdal.GetDataTypeName(sband.DataType)}, not a class raster: generalise the "
            "class raster of classify or rasterizeclc (integer class values), not an image or probabilities"
        )
    px_area = legend.pixel_area_m2(src, "class raster")
    threshold = mmu_pixels(mmu_ha, px_area)
    nodata = sband.GetNoDataValue()
    nodata = 0 if nodata is None else nodata  # class rasters: 0 = no label
    classes = raster.classes_from_raster(src)
    w, h, gt, wkt = raster.grid_of(src)
    mon.info(
        f"MMU {mmu_ha:g} ha = {threshold} pixels of {px_area:g} m\u00b2 ({connectivity}-connected patches); "
        f"sieve steps {', '.join(map(str, sieve_steps(threshold))) or 'none'}"
    )
    # the source mask: nodata pixels never join a patch and are never changed
    if sband.GetNoDataValue() is None:
        mask_ds = gdal.GetDriverByName("MEM").Create("", w, h, 1, gdal.GDT_Byte)
        for x, y, bw, bh in raster.iter_windows(w, h):
            mask_ds.GetRasterBand(1).WriteArray((sband.ReadAsArray(x, y, bw, bh) != nodata).astype("uint8"), x, y)
        mask = mask_ds.GetRasterBand(1)
    else:
        mask_ds, mask = None, sband.GetMaskBand()
    islands, islands_px, n_polygons, present = 0, 0, None, []
    try:
        out = oband = mem = patches = burn = burn_ds = None
        with raster.AtomicOutput(output) as tmp:
            try:
                out = raster.create_geotiff(
                    tmp,
                    w,
                    h,
                    1,
                    sband.DataType,
                    gt,
                    wkt,
                    nodata=nodata,
                    descriptions=[sband.GetDescription() or "class"],
                    classes=classes or None,
                    metadata={
                        "SATCLASSIFY_MMU_HA": f"{mmu_ha:g}",
                        "SATCLASSIFY_MMU_PIXELS": str(threshold),
                        "SATCLASSIFY_CONNECTIVITY": str(connectivity),
                        "SATCLASSIFY_SOURCE": os.path.basename(input_path),
                    },
                )
                oband = out.GetRasterBand(1)
                steps = sieve_steps(threshold) or [1]
                for i, t in enumerate(steps):
                    mon.check()
                    gdal.SieveFilter(
                        sband if i == 0 else oband,
                        mask,
                        oband,
                        t,
                        connectivity,
                        callback=_gdal_callback(mon, 0.6 * i / len(steps), 0.6 * (i + 1) / len(steps)),
                    )
                oband.FlushCache()
                # what is still below the MMU has no labelled neighbour: nodata
                mem, patches = _polygonize(oband, raster.srs_of(out), connectivity, mon, 0.6, 0.8)
                unit2 = px_area / abs(gt[1] * gt[5] - gt[2] * gt[4])
                small = [
                    f.GetFID() for f in patches if f.GetGeometryRef().GetArea() * unit2 < threshold * px_area - 1e-6
                ]
                if small:
                    burn_ds = ogr.GetDriverByName("Memory").CreateDataSource("small")  # open while its layer is
                    burn = burn_ds.CreateLayer("small", raster.srs_of(out), ogr.wkbPolygon)
                    for fid in small:
                        f = patches.GetFeature(fid)
                        islands_px += int(round(f.GetGeometryRef().GetArea() * unit2 / px_area))
                        g = ogr.Feature(burn.GetLayerDefn())
                        g.SetGeometry(f.GetGeometryRef().Clone())
                        burn.CreateFeature(g)
                        patches.DeleteFeature(fid)
                    gdal.RasterizeLayer(out, [1], burn, burn_values=[nodata])
                    islands = len(small)
                    mon.info(
                        f"{islands} patch(es) below the MMU without a labelled neighbour (surrounded by nodata "
                        f"or the raster edge) set to nodata: {islands_px * px_area / 1e4:.2f} ha"
                    )
                oband.FlushCache()
                present = legend.present_classes(legend.class_counts(out), classes, px_area, nodata)
                mon.check()
                if polygons:
                    n_polygons = _write_polygons(patches, polygons, polygons_layer, classes, unit2, mon)
            finally:  # close every dataset before the output's temporary files are renamed or removed (a GDAL
                # dataset closed later would write its .aux.xml under the temporary name)
                del oband, out, patches, mem, burn, burn_ds
    except RuntimeError as e:
        if mon.canceled() or "user terminated" in str(e).lower() or "interrupt" in str(e).lower():
            raise Canceled() from None
        raise
    finally:
        mask = mask_ds = None
    mon.progress(1.0)
    return {
        "threshold": threshold,
        "pixel_area_m2": px_area,
        "mmu_ha": float(mmu_ha),
        "islands": islands,
        "islands_ha": islands_px * px_area / 1e4,
        "polygons": n_polygons,
        "classes": present,
        "connectivity": connectivity,
    }


def _write_polygons(patches, path: str, layer_name: Optional[str], classes, unit2: float, mon: Monitor) -> int:
    """The patches (field value) into a new GeoPackage with value, code, name, area_ha (atomic)."""
    name = layer_name or os.path.splitext(os.path.basename(split_layer(path)[0]))[0]  # the target's layer name
    # (file.gpkg|layername=name) is given by AtomicOutput, which copies this layer into that file
    ds = lyr = None
    with raster.AtomicOutput(path) as tmp:  # an earlier file of that name is replaced only on success
        try:
            ds = ogr.GetDriverByName("GPKG").CreateDataSource(tmp)
            lyr = ds.CreateLayer(name, patches.GetSpatialRef(), ogr.wkbMultiPolygon, ["SPATIAL_INDEX=YES"])
            n = _copy_patches(patches, lyr, {c.value: c for c in classes}, unit2, mon)
        finally:  # closed before the temporary file is renamed or removed
            del lyr, ds
    mon.progress(0.98)
    return n


def _copy_patches(patches, lyr, table, unit2: float, mon: Monitor) -> int:
    for fname, ftype in FIELDS:
        lyr.CreateField(ogr.FieldDefn(fname, ftype))
    defn = lyr.GetLayerDefn()
    n = 0
    lyr.StartTransaction()
    patches.ResetReading()
    for f in patches:
        v = int(f.GetField("value"))
        c = table.get(v)
        g = ogr.ForceToMultiPolygon(f.GetGeometryRef().Clone())
        o = ogr.Feature(defn)
        o.SetGeometry(g)
        o.SetField("value", v)
        o.SetField("code", c.code if c else str(v))
        o.SetField("name", c.name if c else f"class {v}")
        o.SetField("area_ha", g.GetArea() * unit2 / 1e4)
        lyr.CreateFeature(o)
        n += 1
        if n % 5000 == 0:
            mon.check()
    lyr.CommitTransaction()
    return n


__all__ = ["CONNECTIVITY", "generalize", "mmu_pixels", "sieve_steps"]
