"""GDAL raster I/O shared by the plugin tools (QGIS env only: the training env has no osgeo).

* :func:`open_raster` opens with a clear error; :func:`band_names` reads band descriptions.
* :class:`AtomicOutput` writes to a temporary name beside the target and renames on success, so a
  cancelled or failed run never leaves a partial file under the final name.
* :func:`create_geotiff` makes a tiled, compressed GeoTIFF with all its metadata set before any pixel (GDAL
  >= 3.10 rule); its ``classes`` give a class band its colour table and category names (the legend).
* :func:`warp_to_grid` aligns another raster to a reference grid (a VRT, nothing written to disk).
* :func:`iter_windows` walks a raster in blocks.
"""

from __future__ import annotations

import errno
import os
import shutil
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from osgeo import gdal, osr

from .contract.classes import as_dict
from .contract.errors import SatClassifyError, gdal_error_code, io_error_message, is_gdal_error
from .contract.paths import check_regular_target, remove_stale, split_layer, temp_pattern, temp_tag

gdal.UseExceptions()

GTIFF_OPTIONS = (
    "TILED=YES",
    "BLOCKXSIZE=256",
    "BLOCKYSIZE=256",
    "COMPRESS=DEFLATE",
    "BIGTIFF=IF_SAFER",
    "NUM_THREADS=ALL_CPUS",
)
Window = Tuple[int, int, int, int]  # xoff, yoff, xsize, ysize


def open_raster(path: str, what: str = "raster", update: bool = False) -> gdal.Dataset:
    if not path:
        raise SatClassifyError(f"no {what} given")
    try:
        ds = gdal.Open(path, gdal.GA_Update if update else gdal.GA_ReadOnly)
    except RuntimeError as e:
        raise SatClassifyError(f"cannot open {what} '{path}': {e}")
    if ds is None:
        raise SatClassifyError(f"cannot open {what} '{path}'")
    if ds.RasterCount == 0:
        raise SatClassifyError(f"{what} '{path}' has no raster bands")
    return ds


def band_names(ds: gdal.Dataset) -> List[str]:
    """GDAL band descriptions (e.g. "B04"); empty strings where a band has none."""
    return [ds.GetRasterBand(i + 1).GetDescription() or "" for i in range(ds.RasterCount)]


def category_names(ds: gdal.Dataset, band: int = 1) -> List[str]:
    """A band's category names. (GDAL 3.6's Python ``GetCategoryNames`` returns None for names kept in
    the .aux.xml of a GeoTIFF, although gdalinfo and QGIS read them; ``gdal.Info`` does not.)"""
    names = ds.GetRasterBand(band).GetCategoryNames()
    if names:
        return list(names)
    info = gdal.Info(ds, format="json")
    return list(info["bands"][band - 1].get("categories") or [])


def srs_from_wkt(wkt: str) -> Optional[osr.SpatialReference]:
    """An SRS in x/y (lon/lat) axis order from WKT; None for an empty string."""
    if not wkt:
        return None
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def categories(ds: gdal.Dataset, band: int = 1) -> Dict[int, Tuple[str, Optional[str]]]:
    """{value: (name, colour or None)} of a class raster's named categories; the colour comes from the colour
    table (None where it has no entry or a transparent one)."""
    names = category_names(ds, band)
    ct = ds.GetRasterBand(band).GetRasterColorTable()
    out = {}
    for v in range(max(len(names), ct.GetCount() if ct else 0)):
        name = names[v].strip() if v < len(names) and names[v] else ""
        color = None
        if ct is not None and v < ct.GetCount():
            r, g, b, a = ct.GetColorEntry(v)
            if a > 0:
                color = f"#{r:02x}{g:02x}{b:02x}"
        if name:
            out[v] = (name, color)
    return out


def srs_from_epsg(epsg: int) -> osr.SpatialReference:
    """An SRS in x/y (lon/lat) axis order from an EPSG code."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(int(epsg))
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def srs_of(ds: gdal.Dataset) -> Optional[osr.SpatialReference]:
    return srs_from_wkt(ds.GetProjection())


def grid_of(ds: gdal.Dataset):
    """(width, height, geotransform, WKT) describing a raster's grid."""
    return ds.RasterXSize, ds.RasterYSize, tuple(ds.GetGeoTransform()), ds.GetProjection()


def same_grid(a: gdal.Dataset, b: gdal.Dataset, tol: float = 1e-6) -> bool:
    wa, ha, ga, pa = grid_of(a)
    wb, hb, gb, pb = grid_of(b)
    if (wa, ha) != (wb, hb):
        return False
    scale = max(abs(ga[1]), abs(ga[5]), 1e-12)
    if any(abs(x - y) > tol * scale for x, y in zip(ga, gb)):
        return False
    sa, sb = srs_of(a), srs_of(b)
    if sa is None or sb is None:
        return sa is None and sb is None
    return bool(sa.IsSame(sb))


class AtomicOutput:
    """Context manager: ``with AtomicOutput(final) as tmp: write tmp`` -> renamed to final on success.

    On an exception (failure or cancel) the temporary file is removed and the final path is untouched.

    * ``final`` must be absent or a regular file (``contract.paths.check_regular_target``): renaming onto a device,
      a FIFO or a socket would replace it; refused before anything is written, and again before the rename.
    * ``final`` may name one layer of a GeoPackage, ``file.gpkg|layername=name``: the writer writes a new
      GeoPackage at ``tmp`` (its one layer under any name); on success that layer is copied into ``file.gpkg`` as
      ``name`` in one SQLite transaction, replacing a layer of that name and keeping the file's other layers (a
      new file when there is none).
    * The temporary name carries this process's id (``contract.paths.temp_tag``): leftovers of an interrupted
      run of the same output (SIGTERM, a crash) whose process is gone are removed here.
    """

    def __init__(self, final_path: str):
        if not final_path:
            raise SatClassifyError("no output file given")
        path, self.layer = split_layer(final_path)
        self.final = os.path.abspath(path)
        check_regular_target(self.final)
        d = os.path.dirname(self.final)
        if not os.path.isdir(d):
            try:
                os.makedirs(d, exist_ok=True)
            except OSError as e:
                raise SatClassifyError(f"cannot create the output folder '{d}': {e}")
        if self.layer is not None:
            _check_gpkg_target(self.final, self.layer)
        base, ext = os.path.splitext(os.path.basename(self.final))
        remove_stale(d, temp_pattern(base, r"\.part.*"))
        self.tmp = os.path.join(d, f".{base}.{temp_tag()}.part{ext or '.tif'}")

    def __enter__(self) -> str:
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                check_regular_target(self.final)  # it may have appeared while the tool ran
                if self.layer is not None:
                    _put_layer(self.tmp, self.final, self.layer)
                else:
                    for p in _sidecars(self.final):
                        if os.path.exists(p):
                            os.remove(p)
                    os.replace(self.tmp, self.final)
                    for p in _sidecars(self.tmp):
                        if os.path.exists(p):
                            os.replace(p, self.final + p[len(self.tmp) :])
            finally:
                self._remove_tmp()  # what is left of it: a layer copied into the final file, or a failure
        else:
            self._remove_tmp()
            if self._about_this_output(exc):
                if (
                    getattr(exc, "errno", None) is None
                    and gdal_error_code(str(exc)) is None
                    and _nearly_full(os.path.dirname(self.final))
                ):
                    # GDAL >= 3.10 says only "TIFFAppendToStrip:Write error": the free space tells why
                    exc = OSError(errno.ENOSPC, "No space left on device")
                raise SatClassifyError(io_error_message(exc, self.final)) from None
        return False

    def _remove_tmp(self) -> None:
        for p in [self.tmp] + _sidecars(self.tmp) + [self.tmp + s for s in _SQLITE_SIDECARS]:
            if os.path.lexists(p):
                try:
                    os.remove(p)
                except OSError:
                    pass

    def _about_this_output(self, exc) -> bool:
        """An OSError / GDAL error that concerns this output (its temporary file, or a write error that names
        no file: full disk, quota), as opposed to e.g. a damaged input read inside the ``with`` block."""
        if not (isinstance(exc, OSError) or is_gdal_error(exc)):
            return False
        if getattr(exc, "filename", None) == self.tmp or self.tmp in str(exc):
            return True
        low = str(exc).lower()
        return getattr(exc, "filename", None) is None and (
            "no space left" in low
            or "quota" in low
            or getattr(exc, "errno", None) in (errno.ENOSPC,)
            or "write error" in low
            or "tiffwrite" in low
            or "tiffappend" in low
        )


def _nearly_full(folder: str, margin: int = 256 << 10) -> bool:
    try:
        return shutil.disk_usage(folder).free < margin
    except OSError:
        return False


def _sidecars(path: str) -> List[str]:
    return [path + ".aux.xml", path + ".ovr"]


_SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


def _check_gpkg_target(path: str, layer: str) -> None:
    """A layer can be written into ``path`` (``file.gpkg|layername=layer``): a .gpkg name, and an existing file
    must be a GeoPackage (its other layers are kept)."""
    if os.path.splitext(path)[1].lower() != ".gpkg":
        raise SatClassifyError(
            f"output '{path}|layername={layer}': a layer can be written into a GeoPackage only: name the file .gpkg"
        )
    if not os.path.exists(path):
        return
    try:
        ds = gdal.OpenEx(path, gdal.OF_VECTOR | gdal.OF_UPDATE, allowed_drivers=["GPKG"])
    except RuntimeError:
        ds = None
    if ds is None:
        raise SatClassifyError(
            f"cannot add the layer '{layer}' to '{path}': the file exists and is not a GeoPackage "
            "that can be updated: choose another file, or give the file name alone (without "
            "'|layername=') to replace the file"
        )
    ds = None


def _put_layer(src_path: str, dst_path: str, name: str) -> None:
    """Copy the one layer of the GeoPackage ``src_path`` into ``dst_path`` as ``name`` (fields, features, layer
    metadata): in one transaction that first deletes a layer of that name, so the other layers of ``dst_path``
    stay and a failure leaves it as it was. Without a ``dst_path`` a new GeoPackage is made beside it and renamed."""
    from osgeo import ogr

    src = ogr.Open(src_path)
    if src is None or src.GetLayerCount() != 1:
        raise SatClassifyError(f"internal: '{src_path}' should hold one layer")
    if not os.path.exists(dst_path):
        d, base = os.path.split(dst_path)
        tmp = os.path.join(d, f".{os.path.splitext(base)[0]}.{temp_tag()}.part-layer.gpkg")
        try:
            dst = ogr.GetDriverByName("GPKG").CreateDataSource(tmp)
            _copy_layer(src.GetLayer(0), dst, name)
            dst = src = None
            check_regular_target(dst_path)
            os.replace(tmp, dst_path)
        finally:
            dst = src = None
            for p in [tmp] + [tmp + s for s in _SQLITE_SIDECARS]:
                if os.path.exists(p):
                    os.remove(p)
        return
    dst = gdal.OpenEx(dst_path, gdal.OF_VECTOR | gdal.OF_UPDATE, allowed_drivers=["GPKG"])
    if dst is None:
        raise SatClassifyError(f"cannot open the GeoPackage '{dst_path}' to write the layer '{name}'")
    dst.StartTransaction()
    try:
        for i in range(dst.GetLayerCount()):
            if dst.GetLayer(i).GetName().lower() == name.lower():
                dst.DeleteLayer(i)
                break
        _copy_layer(src.GetLayer(0), dst, name)
        dst.CommitTransaction()
    except BaseException as e:
        dst.RollbackTransaction()
        if isinstance(e, RuntimeError):
            raise SatClassifyError(f"cannot write the layer '{name}' into '{dst_path}': {e}") from None
        raise
    finally:
        dst = src = None


def _copy_layer(sl, dst, name: str) -> None:
    from osgeo import ogr

    nl = dst.CreateLayer(name, sl.GetSpatialRef(), sl.GetGeomType(), ["SPATIAL_INDEX=YES"])
    defn = sl.GetLayerDefn()
    for i in range(defn.GetFieldCount()):
        nl.CreateField(defn.GetFieldDefn(i))
    meta = sl.GetMetadata()
    if meta:
        nl.SetMetadata(meta)
    nd = nl.GetLayerDefn()
    sl.ResetReading()
    for f in sl:
        o = ogr.Feature(nd)
        o.SetFrom(f)
        nl.CreateFeature(o)
    nl = nd = None


def create_geotiff(
    path: str,
    width: int,
    height: int,
    bands: int,
    data_type: int,
    geotransform: Sequence[float],
    projection: str,
    nodata: Optional[float] = None,
    options: Iterable[str] = GTIFF_OPTIONS,
    *,
    descriptions: Optional[Sequence[str]] = None,
    classes: Optional[Sequence] = None,
    nodata_name: str = "no label",
    metadata: Optional[dict] = None,
) -> gdal.Dataset:
    """A new GeoTIFF with everything but its pixels: georeferencing, nodata, band descriptions, dataset
    ``metadata`` and, for a class raster, the colour table + category names of band 1 (``classes``).

    All of it is set here, before the caller writes a pixel: from GDAL 3.10 on the GTiff driver refuses a colour
    table after pixels were written ("Cannot modify tag PhotometricInterpretation while writing"), and nodata /
    metadata set late may only reach the .aux.xml. Callers never set these afterwards."""
    drv = gdal.GetDriverByName("GTiff")
    opts = list(options)
    if width < 256 or height < 256:  # small rasters: strips are fine, tiles would be mostly padding
        opts = [o for o in opts if not o.startswith(("TILED", "BLOCKXSIZE", "BLOCKYSIZE"))]
    try:
        ds = drv.Create(path, int(width), int(height), int(bands), data_type, options=opts)
    except RuntimeError as e:
        raise SatClassifyError(f"cannot create '{path}': {e}") if not is_gdal_error(e) else e
    if ds is None:
        raise SatClassifyError(f"cannot create '{path}': {gdal.GetLastErrorMsg() or 'GDAL returned nothing'}")
    ds.SetGeoTransform(list(geotransform))
    if projection:
        ds.SetProjection(projection)
    if metadata:
        ds.SetMetadata({str(k): str(v) for k, v in metadata.items()})
    for i in range(bands):
        band = ds.GetRasterBand(i + 1)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        if descriptions is not None and i < len(descriptions) and descriptions[i]:
            band.SetDescription(str(descriptions[i]))
    if classes is not None:
        write_class_metadata(ds.GetRasterBand(1), classes, nodata_name=nodata_name)
    return ds


def write_class_metadata(band: gdal.Band, classes: Sequence, nodata_name: str = "no label") -> None:
    """Colour table + category names for a uint8 class band. ``classes``: objects/dicts with value, name, color.

    Only on a band with no pixels written yet (GDAL >= 3.10): use ``create_geotiff(..., classes=...)``."""
    ct = gdal.ColorTable()
    ct.SetColorEntry(0, (0, 0, 0, 0))
    names = [""] * 256
    names[0] = nodata_name
    top = 0
    for c in classes:
        d = as_dict(c)
        v = int(d["value"])
        col = d["color"].lstrip("#")
        ct.SetColorEntry(v, (int(col[0:2], 16), int(col[2:4], 16), int(col[4:6], 16), 255))
        names[v] = str(d["name"])
        top = max(top, v)
    band.SetRasterColorTable(ct)
    band.SetRasterColorInterpretation(gdal.GCI_PaletteIndex)
    band.SetRasterCategoryNames(names[: top + 1])


def warp_to_grid(
    src: gdal.Dataset,
    ref: gdal.Dataset,
    resample: str = "near",
    src_nodata: Optional[float] = None,
    dst_alpha: bool = False,
) -> gdal.Dataset:
    """``src`` reprojected/resampled onto ``ref``'s grid, as an in-memory VRT (lazy, nothing read yet).

    ``dst_alpha``: add a last band that is 255 where ``src`` covers the pixel (and is not nodata), else 0."""
    w, h, gt, wkt = grid_of(ref)
    bounds = (gt[0], gt[3] + gt[5] * h, gt[0] + gt[1] * w, gt[3])
    if abs(gt[2]) > 0 or abs(gt[4]) > 0:
        raise SatClassifyError("rotated rasters are not supported: warp the reference to a north-up grid first")
    kw = dict(
        format="VRT", outputBounds=bounds, width=w, height=h, dstSRS=wkt or None, resampleAlg=resample, multithread=True
    )
    if src_nodata is not None:
        kw["srcNodata"] = src_nodata
    if dst_alpha:
        kw["dstAlpha"] = True
    try:
        out = gdal.Warp("", src, **kw)
    except RuntimeError as e:
        raise SatClassifyError(f"cannot warp '{src.GetDescription()}' to the reference grid: {e}")
    if out is None:
        raise SatClassifyError(f"cannot warp '{src.GetDescription()}' to the reference grid")
    return out


def iter_windows(width: int, height: int, block: int = 1024) -> Iterator[Window]:
    """Row-major windows of at most ``block`` x ``block`` pixels covering the raster exactly."""
    for y in range(0, height, block):
        for x in range(0, width, block):
            yield x, y, min(block, width - x), min(block, height - y)


def classes_from_raster(ds: gdal.Dataset, band: int = 1) -> list:
    """The class table of a class raster (what :func:`write_class_metadata` wrote): one
    :class:`~satclassify_plugin.core.contract.classes.ClassRecord` per named value > 0, colour from the colour
    table; CLC codes when every name matches a CLC level (a raster of rasterizeclc), else the value as code."""
    from .contract import clc

    out = [
        clc.ClassInfo(v, str(v), name, color or clc.default_palette(v))
        for v, (name, color) in sorted(categories(ds, band).items())
        if v > 0
    ]
    coded = _recorded_codes(ds)
    if out and coded and set(coded) == {c.value for c in out}:  # own labels (rasterizelabels): their codes
        return [clc.ClassInfo(c.value, coded[c.value], c.name, c.color) for c in out]
    for level in (3, 2, 1):
        by_value = {c.value: c for c in clc.classes(level)}
        if out and all(c.value in by_value and by_value[c.value].name == c.name for c in out):
            return [clc.ClassInfo(c.value, by_value[c.value].code, c.name, c.color) for c in out]
    return out


def _recorded_codes(ds: gdal.Dataset) -> Dict[int, str]:
    """{value: code} from the class table a class raster of own labels records (``SATCLASSIFY_CLASSES``, JSON,
    written by rasterizelabels); {} when absent or unreadable."""
    import json

    text = ds.GetMetadataItem("SATCLASSIFY_CLASSES")
    if not text:
        return {}
    try:
        return {int(c["value"]): str(c["code"]) for c in json.loads(text)}
    except (ValueError, TypeError, KeyError):
        return {}


def write_squares(
    path: str,
    layer_name: str,
    wkt: str,
    gt,
    size: int,
    fields: Sequence[Tuple[str, int]],
    class_prefix: str,
    classes,
    features,
) -> None:
    """A GeoPackage layer of square polygons of ``size`` x ``size`` pixels of the grid ``gt``: one per item of
    ``features`` = (top row, left column, {field: value}, per-class values). ``fields`` are (name, OGR type);
    each class adds a real field ``<class_prefix><value>`` whose alias is the class name."""
    from osgeo import ogr

    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    lyr = ds.CreateLayer(layer_name, srs_from_wkt(wkt) if wkt else None, ogr.wkbPolygon)
    for name, kind in fields:
        lyr.CreateField(ogr.FieldDefn(name, kind))
    for c in classes:
        fd = ogr.FieldDefn(f"{class_prefix}{c.value}", ogr.OFTReal)
        fd.SetAlternativeName(c.name)
        lyr.CreateField(fd)
    defn = lyr.GetLayerDefn()
    lyr.StartTransaction()
    for row, col, values, per_class in features:
        x0, y0 = gt[0] + col * gt[1], gt[3] + row * gt[5]
        x1, y1 = x0 + size * gt[1], y0 + size * gt[5]
        f = ogr.Feature(defn)
        f.SetGeometryDirectly(
            ogr.CreateGeometryFromWkt(
                f"POLYGON (({x0!r} {y0!r},{x1!r} {y0!r},{x1!r} {y1!r},{x0!r} {y1!r},{x0!r} {y0!r}))"
            )
        )
        for k, v in values.items():
            f.SetField(k, v)
        for c, v in zip(classes, per_class):
            f.SetField(f"{class_prefix}{c.value}", float(v))
        lyr.CreateFeature(f)
    lyr.CommitTransaction()
    lyr = defn = None
    ds = None
