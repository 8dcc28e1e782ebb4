"""``satclassify``: the Processing tools' core without QGIS.

Each subcommand takes the Processing tool's parameters under the same names, written as options: the name in
lower case with ``-`` for ``_`` (``TILE_SIZE`` -> ``--tile-size``, ``OUTPUT_2`` -> ``--output-2``), with the same
defaults. Enumerations take the index qgis_process takes (``--device 1``) or the option's name (``--device CPU``);
extents are ``xmin,xmax,ymin,ymax`` as in qgis_process, optionally followed by ``[EPSG:code]``. Messages go to
stderr as the tool's log lines; the outputs (the dict processing.run returns) are printed to stdout as JSON. A
user error prints the tool's message and exits with status 1 (2: a wrong command line). docs/headless.md has the
full mapping.
"""

import argparse
import importlib
import importlib.util
import json
import os
import re
import sys

from ..core.contract.errors import SatClassifyError, io_error_message, is_gdal_error
from ..core.contract.feedback import Monitor
from ..core.contract.paths import check_outputs, split_layer

PROG = "satclassify"
#: the Processing tools' display names and memory hints (algorithms/*.py), for the messages the base class adds
TOOLS = {
    "classify": ("Classify raster with ONNX model", "use a smaller EXTENT, TILE_SIZE or BATCH_SIZE"),
    "classifypatches": ("Classify raster patches with ONNX model", "use a smaller EXTENT or BATCH_SIZE"),
    "rasterizeclc": ("Rasterize CORINE Land Cover", "use a smaller extent, or close other programs"),
    "assess": ("Assess classification accuracy", "use a smaller SCALE, or compare a smaller area (crop both maps)"),
}
RASTER_EXTENSIONS = ("tif", "tiff")
OPENEO_MODULE = "satclassify_plugin.headless.openeo_export"


class Console:
    """The core's feedback on the console: log lines and qgis_process-style progress (0...10...20) on stderr."""

    def __init__(self, quiet: bool = False, stream=None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self._shown = -10

    def info(self, message: str) -> None:
        if not self.quiet:
            self._end_progress()
            print(message, file=self.stream, flush=True)

    def warn(self, message: str) -> None:
        self._end_progress()
        print(f"warning: {message}", file=self.stream, flush=True)

    def progress(self, fraction: float) -> None:
        step = int(fraction * 100) // 10 * 10
        if self.quiet or step <= self._shown:
            return
        while self._shown < step:
            self._shown += 10
            print(
                f"{self._shown}..." if self._shown < 100 else "100",
                end="" if self._shown < 100 else "\n",
                file=self.stream,
                flush=True,
            )

    def _end_progress(self):
        if 0 <= self._shown < 100:
            print(file=self.stream, flush=True)
            self._shown = 100

    def monitor(self) -> Monitor:
        return Monitor(progress=self.progress, info=self.info)


# ----------------------------------------------------------------------------------------------- parameters
def flag(name: str) -> str:
    """The option of a Processing parameter: ``TILE_SIZE`` -> ``--tile-size``."""
    return "--" + name.lower().replace("_", "-")


def param(parser, name, help, **kw):
    """Add the Processing parameter ``name`` as an option (dest = the parameter name)."""
    help = help.replace("%", "%%")  # argparse formats help texts with %
    if kw.get("action") is argparse.BooleanOptionalAction:
        parser.add_argument(flag(name), dest=name, help=f"{help} [{name}; default {kw.get('default')}]", **kw)
        return
    default = kw.get("default")
    shown = "" if default in (None, "") else f"; default {default}"
    parser.add_argument(flag(name), dest=name, help=f"{help} [{name}{shown}]", **kw)


def enum_index(value, options, name, aliases=None) -> int:
    """An enumeration parameter given as qgis_process gives it (the index) or by the option's text / an alias."""
    text = str(value).strip()
    if re.fullmatch(r"\d+", text) and int(text) < len(options):
        return int(text)
    for i, o in enumerate(options):
        if text.lower() == str(o).lower():
            return i
    for alias, i in (aliases or {}).items():
        if text.lower() == alias.lower():
            return i
    names = [f"{i} = {o}" for i, o in enumerate(options)]
    words = f" (or {', '.join(aliases)})" if aliases else ""
    raise SatClassifyError(f"{name} '{value}' is not one of the choices: {'; '.join(names)}{words}")


def parse_extent(value: str, name: str = "EXTENT"):
    """``'xmin,xmax,ymin,ymax [EPSG:code]'`` (qgis_process's order) -> ((xmin, ymin, xmax, ymax), crs or None)."""
    m = re.fullmatch(
        r"\s*([^,\s]+)\s*,\s*([^,\s]+)\s*,\s*([^,\s]+)\s*,\s*([^,\s\[]+)\s*(?:\[([^\]]+)\])?\s*", value or ""
    )
    try:
        xmin, xmax, ymin, ymax = (float(m.group(i)) for i in range(1, 5))
    except (AttributeError, ValueError):
        raise SatClassifyError(
            f"{name} '{value}': give xmin,xmax,ymin,ymax (the order of qgis_process), optionally "
            "followed by the CRS in brackets, e.g. 500000,501000,4999000,5000000 [EPSG:32632]"
        )
    return (xmin, ymin, xmax, ymax), (m.group(5).strip() if m.group(5) else None)


def srs_of(text: str, name: str):
    """An osr.SpatialReference for a CRS the user typed (EPSG:code, WKT, PROJ), axes in x/y order."""
    from osgeo import osr

    s = osr.SpatialReference()
    try:
        if s.SetFromUserInput(text) != 0:
            raise RuntimeError
    except RuntimeError:
        raise SatClassifyError(
            f"{name} '{text}' is not a coordinate reference system GDAL knows: check the code "
            "(e.g. EPSG:32632 for UTM zone 32N, EPSG:3035 for Europe) or leave it empty"
        )
    s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return s


def transform_bounds(bounds, src, dst):
    """``bounds`` (xmin, ymin, xmax, ymax) from ``src`` to ``dst`` (osr), the edges densified (as QGIS does)."""
    from osgeo import osr

    if src.IsSame(dst):
        return tuple(bounds)
    ct = osr.CoordinateTransformation(src, dst)
    xmin, ymin, xmax, ymax = bounds
    xs, ys = [], []
    n = 20
    for i in range(n + 1):
        fx, fy = xmin + (xmax - xmin) * i / n, ymin + (ymax - ymin) * i / n
        for x, y in ((fx, ymin), (fx, ymax), (xmin, fy), (xmax, fy)):
            tx, ty, _ = ct.TransformPoint(x, y)
            xs.append(tx)
            ys.append(ty)
    return min(xs), min(ys), max(xs), max(ys)


def raster_srs(path: str, what: str):
    from osgeo import osr

    from ..core import raster

    ds = raster.open_raster(path, what)
    wkt = ds.GetProjection()
    ds = None
    if not wkt:
        return None
    s = osr.SpatialReference(wkt=wkt)
    s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return s


def extent_in_raster_crs(value, path):
    """EXTENT of a classify tool as (xmin, ymin, xmax, ymax) in the raster's CRS; None when not given."""
    if value in (None, ""):
        return None
    from ..core.classify.pipeline import check_extent_area

    bounds, crs_text = parse_extent(value)
    if crs_text:
        dst = raster_srs(path, "input raster")
        if dst is not None:
            bounds = transform_bounds(bounds, srs_of(crs_text, "EXTENT's CRS"), dst)
    check_extent_area(bounds, value)
    return bounds


def absolute(path):
    """An output path as the tools get it (absolute; a GeoPackage ``|layername=`` kept); None when not given."""
    if path in (None, ""):
        return None
    plain, layer = split_layer(path)
    return os.path.abspath(plain) + (f"|layername={layer}" if layer else "")


def guard(inputs, outputs, rasters=()):
    """What the Processing base class checks before a tool writes (algorithms/base.py check_output_paths)."""
    ins = {k: [str(v).split("|")[0]] for k, v in inputs.items() if v}
    outs = {k: str(v).split("|")[0] for k, v in outputs.items() if v}
    check_outputs(ins, outs, {})
    for name in rasters:
        if name in outs:
            ext = os.path.splitext(outs[name])[1].lower().lstrip(".")
            if ext not in RASTER_EXTENSIONS:
                raise SatClassifyError(
                    f"{name} '{outs[name]}': the tool writes GeoTIFF, not .{ext or '(no extension)'}: name the "
                    "file .tif (convert it afterwards with gdal_translate if needed)"
                )


def gpkg_target(value, name, what="the tool writes a GeoPackage"):
    """A GeoPackage output (``file.gpkg`` or ``file.gpkg|layername=name``), as algorithms/base.py gpkg_output."""
    if value in (None, ""):
        return None
    path, _layer = split_layer(value)
    if os.path.splitext(path)[1].lower() != ".gpkg":
        raise SatClassifyError(
            f"{name} '{value}': {what}: name the file .gpkg (or 'file.gpkg|layername=name' to add "
            "the layer to an existing GeoPackage)"
        )
    return absolute(value)


# ----------------------------------------------------------------------------------------------- classify
def add_classify_params(p, outputs=True):
    """The classify tool's parameters; the run settings' defaults are core.classify.options.ClassifyOptions'."""
    from ..core.classify.options import DEVICES, ClassifyOptions

    d = ClassifyOptions()
    param(p, "BANDS", "raster bands in the model's order (numbers or names; empty = match band names)", default=d.bands)
    param(
        p,
        "DEVICE",
        f"device: {', '.join(f'{i} = {x}' for i, x in enumerate(DEVICES))}",
        default=str(DEVICES.index(d.device)),
    )
    param(p, "TILE_SIZE", "tile size in pixels (0 = model default)", type=int, default=d.tile_size)
    param(p, "BATCH_SIZE", "batch size in tiles (0 = default)", type=int, default=d.batch_size)
    param(
        p,
        "RESAMPLE",
        "resample the input to the model's resolution",
        action=argparse.BooleanOptionalAction,
        default=d.resample,
    )
    if outputs:
        param(p, "INPUT", "input raster (e.g. Sentinel-2 stack)", required=True)
        param(p, "MODEL", "ONNX model", required=True)
        param(p, "EXTENT", "extent xmin,xmax,ymin,ymax [EPSG:code] (default: the whole layer)")
        param(p, "OUTPUT", "classes (first head), GeoTIFF", required=True)
        param(p, "OUTPUT_2", "classes (second head, two-head models)")
        param(
            p,
            "WRITE_ALL_HEADS",
            "write every head next to OUTPUT (as <OUTPUT name>_<head>.tif)",
            action=argparse.BooleanOptionalAction,
            default=True,
        )
        param(p, "CONFIDENCE", "confidence (max probability, %)")
        param(p, "PROBABILITIES", "class probabilities (%, first head)")


def head_paths(output, output_2, heads, write_all, con):
    """The class raster of each head, as the tool decides it (algorithms/classify.py head_outputs)."""
    from ..core.classify.pipeline import head_output_path

    paths = [output, output_2] + [None] * max(0, len(heads) - 2)
    derived = {}
    for k in range(1, len(heads)):
        if paths[k]:
            continue
        if write_all:
            paths[k] = head_output_path(output, heads[k].name, k)
            derived[f"head {k + 1} '{heads[k].name}' ({os.path.basename(paths[k])})"] = paths[k]
        else:
            how = "give OUTPUT_2, or tick" if k == 1 else "tick"
            con.warn(
                f"the model has {len(heads)} heads: head '{heads[k].name}' ({heads[k].num_classes} classes) was "
                f"not written: {how} 'Write every head next to OUTPUT' (WRITE_ALL_HEADS)"
            )
    return paths, derived


def classify_options(a, extent=None, **kw):
    """The run settings of the classify options in ``a`` (core.classify.options.ClassifyOptions, checked)."""
    from ..core.classify.options import DEVICES, ClassifyOptions

    return ClassifyOptions(
        bands=a.BANDS or "",
        extent=extent,
        device=DEVICES[enum_index(a.DEVICE, DEVICES, "DEVICE")],
        tile_size=a.TILE_SIZE,
        batch_size=a.BATCH_SIZE,
        resample=a.RESAMPLE,
        **kw,
    )


def run_classify(a, con):
    from ..core.classify.pipeline import classify, open_model

    outs = {k: absolute(getattr(a, k)) for k in ("OUTPUT", "OUTPUT_2", "CONFIDENCE", "PROBABILITIES")}
    inputs = {"INPUT": a.INPUT, "MODEL": a.MODEL}
    guard(inputs, outs, rasters=list(outs))
    opts = classify_options(a, extent_in_raster_crs(a.EXTENT, a.INPUT))
    monitor = con.monitor()
    model = open_model(a.MODEL, opts, monitor)  # its heads decide which files are written (and checked)
    heads, derived = head_paths(outs["OUTPUT"], outs["OUTPUT_2"], model.card.heads, a.WRITE_ALL_HEADS, con)
    if derived:
        guard(inputs, dict(outs, **derived))
    result = classify(
        a.INPUT,
        model,
        heads,
        confidence=outs["CONFIDENCE"],
        probabilities=outs["PROBABILITIES"],
        options=opts,
        monitor=monitor,
    )
    for k, path in enumerate(heads[: len(result.heads)]):
        if path and path not in (outs["OUTPUT"], outs["OUTPUT_2"]):
            con.info(f"head '{result.heads[k].name}' written to {path}")
    return result.tool_results(outs, heads)


# ----------------------------------------------------------------------------------------------- classifypatches
def model_list():
    """The model list (install/model_catalogue.py): the shipped models and those in $SATCLASSIFY_MODELS_DIR (default
    ~/.satclassify/models; QGIS keeps its own in the profile)."""
    from ..install.model_catalogue import Catalogue, user_dir

    return Catalogue(user_dir())


def run_classifypatches(a, con):
    from ..core.classify.options import DEVICES, ClassifyOptions
    from ..core.classify.patches import classify_patches

    output = gpkg_target(a.OUTPUT, "OUTPUT")
    guard({"INPUT": a.INPUT, "MODEL": a.MODEL}, {"OUTPUT": output})
    if a.THRESHOLD is not None and not 0.0 <= a.THRESHOLD <= 1.0:
        raise SatClassifyError(f"THRESHOLD {a.THRESHOLD:g} is outside 0 .. 1 (a probability)")
    opts = ClassifyOptions(
        bands=a.BANDS or "",
        extent=extent_in_raster_crs(a.EXTENT, a.INPUT),
        device=DEVICES[enum_index(a.DEVICE, DEVICES, "DEVICE")],
        batch_size=a.BATCH_SIZE,
    )
    model = a.MODEL
    if not model:
        cat = model_list()
        model_id = a.MODEL_ID or cat.default_id()
        if not model_id:
            raise SatClassifyError("no model: choose one in the model list (MODEL_ID) or give an .onnx file (MODEL)")
        options = cat.ids()
        if model_id not in options:
            raise SatClassifyError(
                f"MODEL_ID '{model_id}': no such model in the model list (models: "
                f"{', '.join(options) or 'none'}). Add its .onnx file to $SATCLASSIFY_MODELS_DIR "
                "with the QGIS dialog Plugins > SatClassify > Manage models..., or give its .onnx "
                "file as MODEL"
            )
        entry = cat.get(model_id)
        con.info(f"model '{entry.id}' ({'shipped' if entry.shipped else 'added'}): {entry.path}")
        model = entry.path
    result = classify_patches(a.INPUT, model, output, threshold=a.THRESHOLD, options=opts, monitor=con.monitor())
    return {"OUTPUT": output, "COUNT": result.cells, "PROVIDER": result.provider}


# ----------------------------------------------------------------------------------------------- rasterizeclc
LEVEL_OPTIONS = [
    "CLC level 1 (5 classes)",
    "CLC level 2 (15 classes)",
    "CLC level 3 (44 classes)",
    "Mapping table (MAPPING)",
]
LEVEL_ALIASES = {"level1": 0, "level2": 1, "level3": 2, "mapping": 3}
RULE_OPTIONS = ["Pixel centre (GDAL default)", "All touched", "Majority coverage"]
RULES = ["centre", "all_touched", "majority"]


def clc_grid(a, con):
    """The output grid of rasterizeclc: REFERENCE's, or EXTENT + TARGET_CRS + PIXEL_SIZE (an extent in degrees with
    a pixel size in metres: the UTM zone of its centre, as the tool does)."""
    from ..core.labels.rasterize import Grid
    from ..core.s2.stack import utm_epsg

    if a.REFERENCE:
        return Grid.from_raster(a.REFERENCE)
    if a.EXTENT in (None, ""):
        raise SatClassifyError("give a reference raster (REFERENCE), or an extent (EXTENT) with a CRS and a pixel size")
    bounds, extent_crs = parse_extent(a.EXTENT)
    pixel = a.PIXEL_SIZE
    explicit = bool(a.TARGET_CRS)
    crs_text = a.TARGET_CRS or extent_crs
    if not crs_text:
        raise SatClassifyError("no output CRS: set TARGET_CRS")
    crs = srs_of(crs_text, "TARGET_CRS" if explicit else "EXTENT's CRS")
    if extent_crs:
        bounds = transform_bounds(bounds, srs_of(extent_crs, "EXTENT's CRS"), crs)
    if not (bounds[2] > bounds[0] and bounds[3] > bounds[1]):
        raise SatClassifyError("the extent (EXTENT) is empty")
    if crs.IsGeographic() and pixel >= 0.5:
        from osgeo import osr

        wgs84 = srs_of("EPSG:4326", "EPSG:4326")
        cx, cy = (bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2
        lon, lat, _ = osr.CoordinateTransformation(crs, wgs84).TransformPoint(cx, cy)
        epsg = utm_epsg(lon, lat)
        name = crs_text if ":" in crs_text else (crs.GetName() or crs_text)
        if explicit:
            raise SatClassifyError(
                f"TARGET_CRS {name} is geographic (degrees): a pixel size of {pixel:g} would make pixels {pixel:g} "
                f"degrees wide. Choose a projected CRS in metres (the UTM zone here is EPSG:{epsg}, EPSG:3035 for "
                f"Europe), or give the pixel size in degrees (about {pixel / 111320.0:.6f} for {pixel:g} m)"
            )
        utm = srs_of(f"EPSG:{epsg}", "UTM")
        con.info(
            f"the extent is in {name} (degrees) and PIXEL_SIZE is {pixel:g}: the grid uses EPSG:{epsg} "
            f"({utm.GetName()}, the UTM zone of the extent's centre) with {pixel:g} m pixels; set TARGET_CRS to "
            "choose another CRS"
        )
        bounds = transform_bounds(bounds, crs, utm)
        crs = utm
    return Grid.from_extent(bounds, crs.ExportToWkt(), pixel)


def run_rasterizeclc(a, con):
    from ..core.labels.rasterize import rasterize_clc

    output, mixed = absolute(a.OUTPUT), absolute(a.MIXED)
    guard(
        {"INPUT": a.INPUT, "MAPPING": a.MAPPING, "REFERENCE": a.REFERENCE},
        {"OUTPUT": output, "MIXED": mixed},
        rasters=("OUTPUT", "MIXED"),
    )
    source, layer_name = split_layer(a.INPUT)
    level_idx = enum_index(a.LEVEL, LEVEL_OPTIONS, "LEVEL", LEVEL_ALIASES)
    mapping = a.MAPPING or None
    if level_idx == 3 and not mapping:
        raise SatClassifyError("Classes is 'Mapping table' but no mapping table (MAPPING) was given")
    if mapping and level_idx != 3:
        con.info("a mapping table is given: it replaces the CLC level")
    grid = clc_grid(a, con)
    rule = RULES[enum_index(a.RULE, RULE_OPTIONS, "RULE", {r: i for i, r in enumerate(RULES)})]
    con.info(f"grid: {grid.width} x {grid.height} pixels, rule {rule}")
    result = rasterize_clc(
        source,
        output,
        grid,
        level=min(level_idx, 2) + 1,
        mapping_csv=mapping,
        field_name=(a.FIELD or "").strip() or None,
        layer_name=layer_name,
        rule=rule,
        mixed_output=mixed,
        threshold=a.THRESHOLD,
        monitor=con.monitor(),
    )
    con.info(f"written {os.path.basename(output)} in {result.seconds:.1f} s")
    return {"OUTPUT": output, "MIXED": mixed, "UNKNOWN_FEATURES": sum(result.unknown.values())}


# ----------------------------------------------------------------------------------------------- assess
ASSESS_LEVELS = ["none (as stored)", "CLC level 1", "CLC level 2"]
ASSESS_LEVEL_VALUES = [None, 1, 2]
LEVEL_MAPS = ["both", "reference", "classified"]


def reference_points(path, field, classified, con):
    """The points of REFERENCE_POINTS (``file`` or ``file|layername=name``) as the tool reads them: dicts with x, y
    in the classified raster's CRS, reference, stratum, id."""
    from osgeo import gdal, osr

    from ..core.accuracy.points import reference_field

    src, layer_name = split_layer(path)
    try:
        ds = gdal.OpenEx(src, gdal.OF_VECTOR)
    except RuntimeError:
        ds = None
    if ds is None or ds.GetLayerCount() == 0:
        raise SatClassifyError(f"cannot read the reference points '{path}'")
    lyr = ds.GetLayerByName(layer_name) if layer_name else ds.GetLayer(0)
    if lyr is None:
        raise SatClassifyError(f"cannot read the reference points '{path}': no layer '{layer_name}'")
    defn = lyr.GetLayerDefn()
    names = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    field = reference_field(names, field, con.info)
    dst, srcs = raster_srs(classified, "classified raster"), lyr.GetSpatialRef()
    ct = None
    if srcs is not None and dst is not None and not srcs.IsSame(dst):
        srcs = srcs.Clone()
        srcs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        ct = osr.CoordinateTransformation(srcs, dst)
        con.info(
            f"reference points reprojected from {srcs.GetAuthorityName(None) or ''}:"
            f"{srcs.GetAuthorityCode(None) or srcs.GetName()} to the classified raster's CRS "
            f"{dst.GetAuthorityName(None) or ''}:{dst.GetAuthorityCode(None) or dst.GetName()}"
        )
    id_field = "point_id" if "point_id" in names else None
    has_stratum = "stratum" in names
    points = []
    for f in lyr:
        g = f.GetGeometryRef()
        x = y = None
        if g is not None and not g.IsEmpty():
            try:
                pt = g.GetPoint(0) if g.GetGeometryCount() == 0 else g.GetGeometryRef(0).GetPoint(0)
                x, y = ct.TransformPoint(pt[0], pt[1])[:2] if ct is not None else pt[:2]
            except (RuntimeError, TypeError):
                x = y = None
        points.append(
            {
                "x": x,
                "y": y,
                "reference": f.GetField(field),
                "stratum": f.GetField("stratum") if has_stratum else None,
                "id": f.GetField(id_field) if id_field else f.GetFID(),
            }
        )
    return points, field


def run_assess(a, con):
    from ..core.accuracy.assess import assess, write_outputs
    from ..core.accuracy.points import assess_points

    outs = {k: absolute(getattr(a, k)) for k in ("OUTPUT_MATRIX", "OUTPUT_METRICS", "OUTPUT_REPORT")}
    guard(
        {
            "CLASSIFIED": a.CLASSIFIED,
            "REFERENCE": a.REFERENCE,
            "REFERENCE_POINTS": a.REFERENCE_POINTS,
            "MASK": a.MASK,
            "RECLASSIFY": a.RECLASSIFY,
            "NAMES": a.NAMES,
        },
        outs,
    )
    if not a.CLASSIFIED:
        raise SatClassifyError("no classified raster given (CLASSIFIED)")
    if a.REFERENCE and a.REFERENCE_POINTS:
        raise SatClassifyError(
            "both a reference raster (REFERENCE) and reference points (REFERENCE_POINTS) are "
            "given: choose one (points for a stratified sample, the raster for a "
            "pixel-by-pixel comparison) and leave the other empty"
        )
    if not a.REFERENCE and not a.REFERENCE_POINTS:
        raise SatClassifyError(
            "no reference given: set REFERENCE (a reference class raster) or REFERENCE_POINTS "
            "with REFERENCE_FIELD (a reference sample, e.g. from satclassify:samplingdesign)"
        )
    choices = dict(
        ignore=a.IGNORE or "",
        reclassify=a.RECLASSIFY or None,
        names=a.NAMES or None,
        level=ASSESS_LEVEL_VALUES[
            enum_index(a.LEVEL, ASSESS_LEVELS, "LEVEL", {"none": 0, "1": 1, "2": 2, "level1": 1, "level2": 2})
        ],
        level_maps=LEVEL_MAPS[enum_index(a.LEVEL_MAPS, LEVEL_MAPS, "LEVEL_MAPS")],
    )
    mon = con.monitor()
    if a.REFERENCE_POINTS:
        if a.SCALE != 1:
            raise SatClassifyError(
                "SCALE compares maps block by block; with REFERENCE_POINTS each point is one "
                "sampling unit: leave SCALE at 1"
            )
        points, field = reference_points(a.REFERENCE_POINTS, a.REFERENCE_FIELD, a.CLASSIFIED, con)
        result = assess_points(
            a.CLASSIFIED,
            points,
            mask=a.MASK or None,
            **choices,
            points_source=str(a.REFERENCE_POINTS),
            reference_field=field,
            monitor=mon.sub(0.0, 0.95),
        )
    else:
        result = assess(
            a.CLASSIFIED, a.REFERENCE, mask=a.MASK or None, **choices, scale=float(a.SCALE), monitor=mon.sub(0.0, 0.95)
        )
    m = result.metrics
    write_outputs(result, outs["OUTPUT_MATRIX"], outs["OUTPUT_METRICS"], outs["OUTPUT_REPORT"])
    con.progress(1.0)
    if a.REFERENCE_POINTS:
        s = m["sample"]
        con.info(
            f"{s['used']} of {s['points']} reference points used over {len(m['classes'])} classes: OA "
            f"{m['overall_accuracy']:.4f} +- {m['overall_accuracy_ci95']:.4f} (95 % CI, stratified estimator)"
        )
        for e in m["area_estimates"]:
            con.info(
                f"  {e['value']} {e['name']}: mapped {e['mapped_area_ha']:.2f} ha, estimated "
                f"{e['estimated_area_ha']:.2f} +- {e['ci95_ha']:.2f} ha"
            )
    else:
        con.info(
            f"{m['pixels']} {'blocks' if m['inputs']['scale'] > 1 else 'pixels'} compared over "
            f"{len(m['classes'])} classes: OA {m['overall_accuracy']:.4f}, kappa {m['kappa']:.4f}, "
            f"macro F1 {m['macro_f1']:.4f}, mIoU {m['miou']:.4f}"
        )
    return dict(outs, OA=m["overall_accuracy"], KAPPA=m["kappa"], MIOU=m["miou"], MACRO_F1=m["macro_f1"])


# ----------------------------------------------------------------------------------------------- command line
def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="SatClassify without QGIS: the Processing tools' core on the command line "
        "(parameters as in QGIS: TILE_SIZE -> --tile-size). More: docs/headless.md.",
        epilog="Also: 'satclassify batch classify --scenes LIST --model M --out DIR' (many scenes on a Dask "
        "cluster; see 'satclassify batch classify --help') and 'satclassify export-openeo ...' (an openEO UDF and "
        "process graph for a model).",
    )
    parser.add_argument("--quiet", action="store_true", help="no log lines or progress, only errors and the result")
    sub = parser.add_subparsers(dest="tool", metavar="TOOL")
    sub.required = True

    p = sub.add_parser("classify", help="satclassify:classify - run an ONNX model on a raster (class rasters)")
    add_classify_params(p)

    from ..core.classify.options import DEVICES

    p = sub.add_parser(
        "classifypatches", help="satclassify:classifypatches - a patch classifier over the patch grid -> GeoPackage"
    )
    param(p, "INPUT", "input raster (e.g. Sentinel-2 stack)", required=True)
    param(p, "MODEL_ID", "model id in the model list (default: the first shipped model)")
    param(p, "MODEL", "ONNX patch classifier file (given: used instead of the model list)")
    param(
        p,
        "THRESHOLD",
        "probability threshold for every class (multi-label; empty = the model's per-class thresholds)",
        type=float,
    )
    param(p, "EXTENT", "extent xmin,xmax,ymin,ymax [EPSG:code] (default: the whole layer)")
    param(p, "DEVICE", f"device: {', '.join(f'{i} = {d}' for i, d in enumerate(DEVICES))}", default="0")
    param(p, "BANDS", "raster bands in the model's order (numbers or names; empty = match band names)", default="")
    param(p, "BATCH_SIZE", "batch size in patches (0 = default)", type=int, default=0)
    param(p, "OUTPUT", "patches (GeoPackage: file.gpkg or 'file.gpkg|layername=name')", required=True)

    p = sub.add_parser("rasterizeclc", help="satclassify:rasterizeclc - CLC polygons or raster -> class raster")
    param(
        p,
        "INPUT",
        "CORINE Land Cover polygons or raster (a file; 'file.gpkg|layername=name' for one layer)",
        required=True,
    )
    param(p, "FIELD", "code field (empty = detect code_18 / code_12 / ...)", default="")
    param(
        p,
        "LEVEL",
        "classes: "
        + "; ".join(f"{i} = {o}" for i, o in enumerate(LEVEL_OPTIONS))
        + " (or level1, level2, level3, mapping)",
        default="2",
    )
    param(p, "MAPPING", "mapping table (CSV: code,value,name[,colour])")
    param(p, "REFERENCE", "reference raster (grid to copy)")
    param(p, "EXTENT", "extent xmin,xmax,ymin,ymax [EPSG:code] (without a reference raster)")
    param(p, "TARGET_CRS", "output CRS, e.g. EPSG:32632 (without a reference raster)")
    param(p, "PIXEL_SIZE", "pixel size (without a reference raster)", type=float, default=10.0)
    param(
        p,
        "RULE",
        "pixel rule: "
        + "; ".join(f"{i} = {o}" for i, o in enumerate(RULE_OPTIONS))
        + " (or centre, all_touched, majority)",
        default="0",
    )
    param(p, "THRESHOLD", "mixed: dominant class fraction below which a pixel is mixed", type=float, default=0.75)
    param(p, "OUTPUT", "CLC classes (GeoTIFF)", required=True)
    param(p, "MIXED", "mixed pixels (majority rule; GeoTIFF)")

    p = sub.add_parser(
        "assess",
        aliases=["assessaccuracy"],
        help="satclassify:assessaccuracy - class raster vs reference raster or reference sample points",
    )
    param(p, "CLASSIFIED", "classified raster", required=True)
    param(p, "REFERENCE", "reference raster (e.g. rasterized CLC), or leave empty and give reference points")
    param(p, "REFERENCE_POINTS", "reference sample points (instead of a reference raster)")
    param(p, "REFERENCE_FIELD", "reference class field of the points")
    param(p, "MASK", "mask raster (nonzero = compare)")
    param(p, "IGNORE", "class values to leave out (comma-separated; nodata is always left out)", default="0")
    param(p, "RECLASSIFY", "reclassify table (CSV map,from,to)")
    param(p, "NAMES", "class names table (CSV value,name,color)")
    param(p, "LEVEL", "compare at CLC level: 0 = none (as stored), 1 = CLC level 1, 2 = CLC level 2", default="0")
    param(p, "LEVEL_MAPS", "apply the CLC level to: 0 = both, 1 = reference, 2 = classified", default="0")
    param(p, "SCALE", "compare at k x coarser resolution (mode of k x k blocks)", type=int, default=1)
    param(p, "OUTPUT_MATRIX", "confusion matrix (CSV)")
    param(p, "OUTPUT_METRICS", "metrics (JSON)")
    param(p, "OUTPUT_REPORT", "accuracy report (HTML; its PNG beside it)")
    return parser


RUNNERS = {
    "classify": run_classify,
    "classifypatches": run_classifypatches,
    "rasterizeclc": run_rasterizeclc,
    "assess": run_assess,
    "assessaccuracy": run_assess,
}


def run_tool(tool, args, con):
    """Run one tool the way the Processing base class does (algorithms/base.py processAlgorithm): a user error, a
    full disk or a GDAL error becomes the tool's message (exit status 1), never a traceback."""
    name = "assess" if tool == "assessaccuracy" else tool
    display, hint = TOOLS[name]
    try:
        result = RUNNERS[tool](args, con)
    except KeyboardInterrupt:
        con.warn("interrupted: no output was written")
        return 130
    except SatClassifyError as e:
        message = str(e)
    except MemoryError:
        message = f"{display} ran out of memory: {hint}"
    except OSError as e:
        message = f"{display}: " + io_error_message(e)
    except RuntimeError as e:
        if not is_gdal_error(e):
            raise
        message = f"{display}: " + io_error_message(e)
    else:
        print(json.dumps(result, indent=1, default=str))
        return 0
    con._end_progress()
    print(f"{PROG} {tool}: error: {message}", file=con.stream, flush=True)
    return 1


def export_openeo(argv):
    """``satclassify export-openeo ...``: handed to ``satclassify_plugin.headless.openeo_export:main(argv)``."""
    if importlib.util.find_spec(OPENEO_MODULE) is None:
        print(
            f"{PROG} export-openeo: error: this installation has no openEO exporter (the module {OPENEO_MODULE} "
            "is missing): install a SatClassify version that has it (docs/headless.md)",
            file=sys.stderr,
        )
        return 2
    try:
        module = importlib.import_module(OPENEO_MODULE)
    except ImportError as e:
        missing = getattr(e, "name", None) or str(e)
        print(
            f"{PROG} export-openeo: error: the openEO exporter needs the Python package '{missing}', which this "
            f"Python cannot import: pip install {missing}",
            file=sys.stderr,
        )
        return 2
    return int(module.main(argv) or 0)


def gdal_available(stream=None) -> bool:
    """GDAL's Python bindings import (else a message with the fix on stderr)."""
    try:
        from ..core import raster  # noqa: F401  (GDAL exceptions on, as in the plugin)
    except ImportError as e:
        print(
            f"{PROG}: error: GDAL's Python bindings (osgeo) cannot be imported ({e}): install the ones matching "
            "the system's GDAL, e.g. 'pip install GDAL==$(gdal-config --version)' (needs libgdal-dev and a C++ "
            "compiler) or the distribution's python3-gdal (docs/headless.md)",
            file=stream or sys.stderr,
        )
        return False
    return True


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "export-openeo":
        return export_openeo(argv[1:])
    if argv and argv[0] == "batch":
        from .batch import main as batch_main

        return batch_main(argv[1:])
    args = build_parser().parse_args(argv)
    if not gdal_available():
        return 2
    return run_tool(args.tool, args, Console(args.quiet))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
