"""``satclassify export-openeo``: a SatClassify ONNX model as an openEO UDF + process graph (docs/openeo.md).

What it writes into ``--out DIR`` (each file under a temporary name first, all renamed at the end):

* ``udf.py``: a Python UDF (``apply_datacube``) that runs the model on one chunk of a Sentinel-2 data cube with
  only numpy, xarray and onnxruntime. The card's values (bands, input scaling, halo, heads, classes) are embedded,
  generated from the card by :func:`udf_config`: the scaling is ``core/contract/modelcard.py``'s
  ``input_transform``, the one preprocessing definition (tests check that the UDF's equals ``preprocess``).
* ``process_graph.json``: an openEO user-defined process (parameters ``spatial_extent``, ``temporal_extent``,
  ``max_cloud_cover``) built with the openeo client: ``load_collection`` of the card's bands + SCL, SCL cloud mask,
  a per-pixel median over the dates (``--composite median``), the card's resolution, ``apply_neighborhood`` with
  the UDF over chunks whose overlap is the card's halo, band labels renamed to the heads, ``save_result`` GTiff
  with the first head's colours. Its ``default_job_options`` are those of ``job_options.json``.
* ``job_options.json``: the options a CDSE batch job needs: ``udf-dependency-archives`` with the model archive
  (``model.zip`` at ``--model-url``, extracted as ``onnx_models/``) and, with ``--deps-url``, an onnxruntime archive
  (``onnx_deps/``); memory settings. The UDF also declares onnxruntime as an inline dependency (PEP 723), which
  the CDSE back-end installs.
* ``legend.json``: the heads, their output band and their classes (value, code, name, colour).
* ``model.zip``: the ONNX file, to upload where the back-end can read it.

Pure functions: :func:`udf_config`, :func:`udf_source`, :func:`build_process`, :func:`job_options`,
:func:`legend`; :func:`export_openeo` writes the files; :func:`run_udf_locally` runs the UDF on an xarray cube the
way ``apply_neighborhood`` does (chunks + overlap, through the client's ``execute_local_udf``): for tests and for
checking a model before a batch job. The openeo client (and xarray) are imported only inside the functions that
need them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import zipfile
from typing import Callable, Dict, List, Optional, Sequence

from ..core.contract import paths
from ..core.contract.errors import SatClassifyError
from ..core.contract.modelcard import S2_BANDS, ModelCard, input_transform
from ..core.s2.products import SCL_INVALID

COLLECTION = "SENTINEL2_L2A"
#: folders the job's ``udf-dependency-archives`` are extracted to (the name after '#' in each archive URL)
MODEL_DIR = "onnx_models"
DEPS_DIR = "onnx_deps"
#: job_options.json holds this until the model archive's URL is known (--model-url or edited by hand)
MODEL_URL_PLACEHOLDER = "https://REPLACE-WITH-THE-URL-OF/model.zip"
#: the openEO back-ends (geopyspark) refuse apply_neighborhood windows smaller than this
MIN_CHUNK = 32
COMPOSITES = ("median", "none")
DEFAULT_MAX_CLOUD = 60
FILES = {
    "udf": "udf.py",
    "process_graph": "process_graph.json",
    "job_options": "job_options.json",
    "legend": "legend.json",
    "model_archive": "model.zip",
}
#: memory per executor for a model of a few MB; raise python-memory for big models (docs/openeo.md)
MEMORY_OPTIONS = {"executor-memory": "2g", "executor-memoryOverhead": "1g", "python-memory": "3g"}


class ExportError(SatClassifyError):
    """The model cannot be exported to openEO (or the output folder is unusable)."""


# The card ------------------------------------------------------------------------------------------------------
def check_card(card: ModelCard) -> None:
    """Refuse a model the UDF cannot run on a Sentinel-2 L2A collection, naming the fix."""
    if card.timeseries:
        raise ExportError(
            "multi-date models cannot be exported to openEO yet: the UDF runs single-date models "
            "(classify a multi-date stack with 'satclassify classify')"
        )
    if not card.sentinel2_dn:
        raise ExportError(
            f"the model's bands ({', '.join(card.bands)}) are not Sentinel-2 band names ({', '.join(S2_BANDS[:-1])})"
            f": export-openeo loads the card's bands from {COLLECTION}, so it needs a SatClassify model of "
            "Sentinel-2 L2A bands (exported with 'python -m training export')"
        )
    if "SCL" in card.bands:
        raise ExportError("the model takes SCL as an input band: the openEO graph uses SCL as the cloud mask only")


def chunk_shape(card: ModelCard, fixed_hw=None, size_multiple=None, chunk: int = 0) -> Dict[str, int]:
    """``size`` (the core each UDF call classifies) and ``overlap`` (the card's halo) of apply_neighborhood.

    The UDF sees ``size + 2 * overlap`` pixels; by default that is the card's tile_size (the model's fixed input
    for a fixed-size model), raised so that ``size`` is at least :data:`MIN_CHUNK` and, for a model with a
    ``size_multiple``, rounded up to it. ``chunk`` (> 0) asks for another ``size``."""
    halo = int(card.halo)
    if fixed_hw:
        if fixed_hw[0] != fixed_hw[1]:
            raise ExportError(
                f"the model takes a fixed input of {fixed_hw[1]} x {fixed_hw[0]} px; export-openeo "
                "runs square chunks: export the model with a square or dynamic input"
            )
        size = int(fixed_hw[0]) - 2 * halo
        if chunk and chunk != size:
            raise ExportError(
                f"--chunk {chunk}: the model takes a fixed input of {fixed_hw[0]} px, so its chunk is "
                f"{size} px (+ {halo} px overlap on each side); leave --chunk out"
            )
        if size < MIN_CHUNK:
            raise ExportError(
                f"the model's fixed input of {fixed_hw[0]} px leaves a chunk of {size} px, but openEO "
                f"back-ends need apply_neighborhood chunks of at least {MIN_CHUNK} px"
            )
        return {"size": size, "overlap": halo}
    if chunk:
        if not isinstance(chunk, int) or chunk < MIN_CHUNK:
            raise ExportError(
                f"--chunk must be an integer of at least {MIN_CHUNK} (pixels per chunk edge, without the "
                f"overlap; openEO back-ends refuse smaller chunks), got {chunk!r}"
            )
        size = chunk
    else:
        size = max(int(card.tile_size) - 2 * halo, MIN_CHUNK)
    m = int(size_multiple or 1)
    if m > 1 and (size + 2 * halo) % m:
        size = -(-(size + 2 * halo) // m) * m - 2 * halo
    return {"size": size, "overlap": halo}


def udf_config(card: ModelCard, model_file: str, sha256: str, fixed_hw=None, size_multiple=None) -> dict:
    """The card values the UDF embeds. The input transform is ``modelcard.input_transform`` (the one definition
    of the preprocessing): model input = clip(raw, lo, hi) * a + b per band."""
    a, b, lo, hi = input_transform(card)
    return {
        "bands": list(card.bands),
        "a": [float(v) for v in a],
        "b": [float(v) for v in b],
        "lo": [float(v) for v in lo],
        "hi": [float(v) for v in hi],
        "sentinel2_dn": bool(card.sentinel2_dn),
        "halo": int(card.halo),
        "fixed_hw": list(fixed_hw) if fixed_hw else None,
        "size_multiple": int(size_multiple or 1),
        "heads": [
            {"name": h.name, "output": h.output, "values": [int(c.value) for c in h.classes]} for h in card.heads
        ],
        "model_file": model_file,
        "sha256": sha256,
        "model_dirs": [MODEL_DIR, "."],
        "dependency_dirs": [DEPS_DIR],
    }


# The UDF -------------------------------------------------------------------------------------------------------
_UDF_TEMPLATE = '''\
# /// script
# dependencies = [
#     "onnxruntime",
# ]
# ///
"""SatClassify openEO UDF for the model {model_file!r} (architecture {arch!r}, SHA-256 {sha_short}...).

Generated by `satclassify export-openeo` from the model's card: do not edit, export again. It needs numpy, xarray
and onnxruntime only. Per chunk (apply_neighborhood, overlap = the model's halo): the bands
{bands}
are taken by label, scaled as the card says (model input = clip(DN, lo, hi) * a + b per band), the model runs on
the chunk, each head's class value is the class of highest probability, and pixels without a measurement (no data,
NaN, DN <= 0) get 0. Rows and columns at the chunk's edge that hold no data in any band (outside the cube) are
left out of the model's input, so pixels at the cube's border see the model's own padding, as in classify.
The model file is `{model_dir}/{model_file}` (job option udf-dependency-archives '<url of model.zip>#{model_dir}')
or the context's "model_path"; its SHA-256 is checked.
"""
import functools
import hashlib
import json
import os
import sys

import numpy as np
import xarray as xr

CONFIG = json.loads(r"""{config}""")


def preprocess(raw):
    """(N, C, H, W) or (C, H, W) raw band values -> the model's float32 input (the card's scaling)."""
    shape = (-1, 1, 1)
    a, b = np.asarray(CONFIG["a"]).reshape(shape), np.asarray(CONFIG["b"]).reshape(shape)
    lo, hi = np.asarray(CONFIG["lo"]).reshape(shape), np.asarray(CONFIG["hi"]).reshape(shape)
    x = np.clip(np.asarray(raw, dtype=np.float64), lo, hi)
    return (x * a + b).astype(np.float32)


def invalid_pixels(raw):
    """(H, W) True where a band of ``raw`` (C, H, W) holds no measurement: NaN/inf, or DN 0 or negative for a
    Sentinel-2 DN model."""
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(raw).all(axis=0)
        if CONFIG["sentinel2_dn"]:
            bad |= (raw <= 0).any(axis=0)
    return bad


def model_path(context):
    path = (context or {{}}).get("model_path")
    if path:
        return path
    for folder in CONFIG["model_dirs"]:
        candidate = os.path.join(folder, CONFIG["model_file"])
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(
        "model file {{!r}} not found in {{}} (working directory {{}}): give the job option "
        "udf-dependency-archives [\\"<url of model.zip>#{{}}\\"]".format(
            CONFIG["model_file"], ", ".join(CONFIG["model_dirs"]), os.getcwd(), CONFIG["model_dirs"][0]))


def _onnxruntime():
    for folder in CONFIG["dependency_dirs"]:
        if os.path.isdir(folder) and folder not in sys.path:
            sys.path.insert(0, folder)
    import onnxruntime
    return onnxruntime


@functools.lru_cache(maxsize=2)
def session(path, threads=1):
    """The model's onnxruntime session (once per worker process); the file's SHA-256 must be the card's."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != CONFIG["sha256"]:
        raise ValueError("{{}} is not the model this UDF was exported for (SHA-256 {{}}, expected {{}}): upload the "
                         "model.zip written with this udf.py".format(path, digest.hexdigest(), CONFIG["sha256"]))
    ort = _onnxruntime()
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.log_severity_level = 3
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def _pad_to(x, height, width):
    """Reflect-pad (C, h, w) at the bottom/right to (C, height, width), as classify pads a small raster."""
    ph, pw = height - x.shape[1], width - x.shape[2]
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="reflect" if min(x.shape[1:]) > 1 else "edge")
    return x


def classify_chunk(raw, context=None):
    """(C, H, W) raw band values -> (heads, H, W) uint8 class values (0 = no data)."""
    heads = CONFIG["heads"]
    out = np.zeros((len(heads),) + raw.shape[1:], dtype=np.uint8)
    has_data = np.isfinite(raw).any(axis=0)
    rows, cols = np.flatnonzero(has_data.any(axis=1)), np.flatnonzero(has_data.any(axis=0))
    if rows.size == 0:
        return out
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    sub = raw[:, r0:r1, c0:c1]
    x = np.nan_to_num(preprocess(sub), nan=0.0, posinf=0.0, neginf=0.0)
    h, w = x.shape[1:]
    if CONFIG["fixed_hw"]:
        th, tw = CONFIG["fixed_hw"]
        if h > th or w > tw:
            raise ValueError("chunk of {{}} x {{}} px is larger than the model's fixed input {{}} x {{}}: use the "
                             "size and overlap of the exported graph".format(w, h, tw, th))
    else:
        m = CONFIG["size_multiple"]
        th, tw = -(-h // m) * m, -(-w // m) * m
    x = _pad_to(x, th, tw)
    sess = session(model_path(context), int((context or {{}}).get("threads", 1)))
    probs = sess.run([hd["output"] for hd in heads], {{sess.get_inputs()[0].name: x[None]}})
    invalid = invalid_pixels(sub)
    for i, (hd, p) in enumerate(zip(heads, probs)):
        p = np.asarray(p)[0, :, :h, :w]
        with np.errstate(invalid="ignore"):
            idx = np.argmax(p, axis=0)
            ok = np.isfinite(p).all(axis=0) & ~invalid
        values = np.asarray(hd["values"], dtype=np.uint8)
        out[i, r0:r1, c0:c1] = np.where(ok, values[idx], 0)
    return out


def apply_datacube(cube: xr.DataArray, context: dict) -> xr.DataArray:
    """openEO entry point: a (t,) bands, y, x chunk -> the same dims, one band per model head (class values)."""
    bands = CONFIG["bands"]
    if "bands" not in cube.dims:
        raise ValueError("the UDF needs a 'bands' dimension holding {{}}".format(", ".join(bands)))
    labels = [str(v) for v in cube.coords["bands"].values] if "bands" in cube.coords else []
    if all(b in labels for b in bands):
        cube = cube.sel(bands=bands)
    elif cube.sizes["bands"] != len(bands):
        raise ValueError("the cube's bands {{}} do not hold the model's bands {{}}".format(labels, bands))
    other = [d for d in cube.dims if d not in ("bands", "y", "x")]
    cube = cube.transpose(*other, "bands", "y", "x")
    values = np.asarray(cube.values, dtype=np.float64)
    lead = values.shape[:-3]
    flat = values.reshape((-1,) + values.shape[-3:])
    result = np.stack([classify_chunk(chunk, context) for chunk in flat])
    result = result.reshape(lead + result.shape[1:])
    coords = {{d: cube.coords[d] for d in other + ["y", "x"] if d in cube.coords}}
    coords["bands"] = [hd["name"] for hd in CONFIG["heads"]]
    return xr.DataArray(result, dims=other + ["bands", "y", "x"], coords=coords)
'''


def udf_source(config: dict, architecture: str = "") -> str:
    """The UDF's Python source with ``config`` (:func:`udf_config`) embedded."""

    def value(v):  # one line per key, one per head
        if isinstance(v, list) and v and isinstance(v[0], dict):
            return "[\n  " + ",\n  ".join(json.dumps(x) for x in v) + "\n ]"
        return json.dumps(v)

    text = "{\n" + ",\n".join(f" {json.dumps(k)}: {value(v)}" for k, v in config.items()) + "\n}"
    if '"""' in text:  # cannot happen with JSON, but the raw string must stay closed
        raise ExportError("the model card holds text the UDF cannot embed")
    return _UDF_TEMPLATE.format(
        config=text,
        model_file=config["model_file"],
        arch=architecture,
        sha_short=config["sha256"][:12],
        bands=", ".join(config["bands"]),
        model_dir=MODEL_DIR,
    )


# Graph, job options, legend ------------------------------------------------------------------------------------
def _rgba(color: str) -> List[float]:
    c = color.lstrip("#")
    return [round(int(c[i : i + 2], 16) / 255.0, 6) for i in (0, 2, 4)] + [1.0]


def legend(card: ModelCard, model_file: str, sha256: str) -> dict:
    return {
        "model": model_file,
        "sha256": sha256,
        "architecture": card.architecture,
        "nodata": 0,
        "heads": [
            {"name": h.name, "band": i + 1, "classes": [c.to_dict() for c in h.classes]}
            for i, h in enumerate(card.heads)
        ],
    }


def job_options(model_url: Optional[str] = None, deps_url: Optional[str] = None) -> dict:
    """CDSE batch-job options: the model archive (and an onnxruntime archive) extracted next to the UDF."""
    archives = [f"{model_url or MODEL_URL_PLACEHOLDER}#{MODEL_DIR}"]
    if deps_url:
        archives.append(f"{deps_url}#{DEPS_DIR}")
    return dict(MEMORY_OPTIONS, **{"udf-dependency-archives": archives})


def _description(card: ModelCard, model_file: str, shape: Dict[str, int], composite: str) -> str:
    lines = [
        f"Applies the SatClassify model `{model_file}` ({card.architecture}) to {COLLECTION}: bands "
        f"{', '.join(card.bands)}, clouds masked by SCL ({', '.join(map(str, SCL_INVALID))}), "
        + ("the per-pixel median of the dates" if composite == "median" else "each date on its own")
        + f"; apply_neighborhood chunks of {shape['size']} px with {shape['overlap']} px overlap "
        "(the model's halo). Output: one band per head, class values (0 = no data).",
        "",
    ]
    for i, h in enumerate(card.heads):
        lines.append(f"Band {i + 1} `{h.name}`: " + "; ".join(f"{c.value} = {c.name} ({c.color})" for c in h.classes))
    return "\n".join(lines)


def build_process(
    card: ModelCard,
    udf_code: str,
    shape: Dict[str, int],
    model_file: str,
    composite: str = "median",
    collection: str = COLLECTION,
    options: Optional[dict] = None,
    max_cloud_cover: float = DEFAULT_MAX_CLOUD,
) -> dict:
    """The openEO user-defined process (dict) that classifies ``collection`` with the UDF, built offline with the
    openeo client (no connection)."""
    openeo = import_openeo()
    from openeo.api.process import Parameter
    from openeo.rest.datacube import THIS, DataCube
    from openeo.rest.udp import build_process_dict

    if composite not in COMPOSITES:
        raise ExportError(f"--composite must be one of {', '.join(COMPOSITES)}, got {composite!r}")
    spatial = Parameter.bounding_box(
        name="spatial_extent", description="the area to classify (west, south, east, north, crs)"
    )
    temporal = Parameter.temporal_interval(name="temporal_extent", description="the dates to load, e.g. one month")
    cloud = Parameter.number(
        name="max_cloud_cover", description="scenes with more cloud (%) are not loaded", default=max_cloud_cover
    )
    cube = DataCube.load_collection(
        collection,
        connection=None,
        spatial_extent=spatial,
        temporal_extent=temporal,
        bands=list(card.bands) + ["SCL"],
        max_cloud_cover=cloud,
        fetch_metadata=False,
    )
    scl = cube.band("SCL")
    cloudy = None
    for v in SCL_INVALID:
        cloudy = (scl == v) if cloudy is None else (cloudy | (scl == v))
    cube = cube.filter_bands(list(card.bands)).mask(cloudy)
    if composite == "median":
        cube = cube.reduce_dimension(dimension="t", reducer="median")
    if card.resolution_m is not None and abs(card.resolution_m - 10.0) > 1e-9:
        # the collection's native grid is 10 m: the same rule as classify's RESAMPLE (average down, bilinear up)
        cube = cube.resample_spatial(
            resolution=card.resolution_m, method="average" if card.resolution_m > 10.0 else "bilinear"
        )
    udf = openeo.UDF(udf_code, runtime="Python", context={})
    size = [{"dimension": d, "value": shape["size"], "unit": "px"} for d in ("x", "y")]
    overlap = [{"dimension": d, "value": shape["overlap"], "unit": "px"} for d in ("x", "y")]
    cube = cube.apply_neighborhood(process=udf, size=size, overlap=overlap)
    # the band labels become the heads (the client's rename_labels checks the cube's metadata, which
    # resample_spatial drops without a connection, so the process is added as it is)
    cube = cube.process("rename_labels", data=THIS, dimension="bands", target=[h.name for h in card.heads])
    first = card.heads[0]
    result = cube.save_result(
        format="GTiff",
        options={
            "colormap": {str(c.value): _rgba(c.color) for c in first.classes},
            "file_metadata": {
                "description": f"SatClassify {model_file}: " + "; ".join(f"{c.value} = {c.name}" for c in first.classes)
            },
        },
    )
    pid = "satclassify_" + "".join(ch if ch.isalnum() else "_" for ch in os.path.splitext(model_file)[0]).lower()
    return build_process_dict(
        result,
        process_id=pid,
        summary=f"Land cover from {collection} with {model_file}",
        description=_description(card, model_file, shape, composite),
        parameters=[spatial, temporal, cloud],
        categories=["machine learning"],
        default_job_options=options,
    )


def import_openeo():
    try:
        import openeo
    except ImportError as e:
        raise ExportError(
            f"the openeo Python client is missing ({e}): install it with 'pip install openeo' (it brings xarray)"
        )
    return openeo


# Writing -------------------------------------------------------------------------------------------------------
def _load(model_path: str):
    from ..core.classify.inference import load_model

    try:
        return load_model(model_path, "CPU")
    except SatClassifyError as e:
        raise ExportError(str(e))


def _targets(out_dir: str, overwrite: bool) -> Dict[str, str]:
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ExportError(f"--out '{out_dir}' is a file: give a folder (it is created when missing)")
    targets = {k: os.path.join(out_dir, name) for k, name in FILES.items()}
    there = [p for p in targets.values() if os.path.lexists(p)]
    if there and not overwrite:
        raise ExportError(
            f"{', '.join(os.path.basename(p) for p in there)} already in '{out_dir}': choose another "
            "folder or give --overwrite"
        )
    for p in targets.values():
        paths.check_regular_target(p, "choose another --out folder")
    return targets


def export_openeo(
    model_path: str,
    out_dir: str,
    model_url: Optional[str] = None,
    deps_url: Optional[str] = None,
    chunk: int = 0,
    composite: str = "median",
    collection: str = COLLECTION,
    max_cloud_cover: float = DEFAULT_MAX_CLOUD,
    overwrite: bool = False,
    log: Callable[[str], None] = lambda m: None,
) -> Dict[str, str]:
    """Write the UDF, process graph, job options, legend and model archive of ``model_path`` into ``out_dir``;
    returns {kind: path} of the files written (keys of :data:`FILES`)."""
    if composite not in COMPOSITES:
        raise ExportError(f"--composite must be one of {', '.join(COMPOSITES)}, got {composite!r}")
    if not (isinstance(max_cloud_cover, (int, float)) and 0 <= max_cloud_cover <= 100):
        raise ExportError(f"--max-cloud-cover must be a number in 0..100, got {max_cloud_cover!r}")
    for name, url in (("--model-url", model_url), ("--deps-url", deps_url)):
        if url is not None and not url.lower().startswith(("https://", "http://", "s3://")):
            raise ExportError(f"{name} must be an http(s) or s3 URL the back-end can download, got {url!r}")
    model = _load(model_path)
    card = model.card
    check_card(card)
    out_dir = os.path.abspath(out_dir)
    targets = _targets(out_dir, overwrite)
    if any(paths.same_file(model_path, p) for p in targets.values()):
        raise ExportError(f"the model '{model_path}' would be overwritten: choose another --out folder")
    shape = chunk_shape(card, model.fixed_hw, model.size_multiple, chunk)
    model_file = os.path.basename(model_path)
    sha = paths.file_digest(model_path)
    config = udf_config(card, model_file, sha, model.fixed_hw, model.size_multiple)
    code = udf_source(config, card.architecture)
    options = job_options(model_url, deps_url)
    process = build_process(card, code, shape, model_file, composite, collection, options, max_cloud_cover)
    texts = {
        "udf": code,
        "process_graph": json.dumps(process, indent=2) + "\n",
        "job_options": json.dumps(options, indent=2) + "\n",
        "legend": json.dumps(legend(card, model_file, sha), indent=2) + "\n",
    }
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot create the output folder '{out_dir}': {e}")
    _write_all(targets, texts, model_path, model_file)
    log(
        f"model {model_file}: bands {', '.join(card.bands)}, halo {card.halo} px -> apply_neighborhood chunks of "
        f"{shape['size']} px + {shape['overlap']} px overlap; heads {', '.join(h.name for h in card.heads)}"
    )
    if not model_url:
        log(
            f"upload {targets['model_archive']} where the back-end can read it and put its URL in job_options.json "
            f"(now '{MODEL_URL_PLACEHOLDER}'), or export again with --model-url (docs/openeo.md)"
        )
    return targets


def _write_all(targets: Dict[str, str], texts: Dict[str, str], model_path: str, model_file: str) -> None:
    """Every file under a temporary name first, then all renamed: a failure leaves the folder as it was."""
    folder = os.path.dirname(next(iter(targets.values())))
    for name in FILES.values():
        stem, ext = os.path.splitext(name)
        paths.remove_stale(folder, paths.temp_pattern(stem, r"\.part.*"))
    tmps: Dict[str, str] = {}
    try:
        for kind, final in targets.items():
            stem, ext = os.path.splitext(os.path.basename(final))
            tmp = os.path.join(folder, f".{stem}.{paths.temp_tag()}.part{ext}")
            tmps[kind] = tmp
            if kind == "model_archive":
                with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
                    z.write(model_path, model_file)
            else:
                with open(tmp, "w", encoding="utf-8", newline="\n") as f:
                    f.write(texts[kind])
        for kind, final in targets.items():
            paths.check_regular_target(final, "choose another --out folder")
            os.replace(tmps.pop(kind), final)
    except OSError as e:
        raise ExportError(f"cannot write the openEO files into '{folder}': {e}")
    finally:
        for tmp in tmps.values():
            if os.path.lexists(tmp):
                os.remove(tmp)


# Running the UDF locally ---------------------------------------------------------------------------------------
def run_udf_locally(udf_code: str, cube, size: int, overlap: int, context: Optional[dict] = None):
    """Run the UDF on ``cube`` (xarray.DataArray with dims bands, y, x and optionally t) as apply_neighborhood
    does: the cube is cut into ``size`` x ``size`` chunks, each read with ``overlap`` pixels on every side (no data,
    NaN, outside the cube), run through the openeo client's ``execute_local_udf``, and the overlap cut off again."""
    import numpy as np
    import xarray as xr

    openeo = import_openeo()
    from openeo.udf.run_code import execute_local_udf

    udf = openeo.UDF(udf_code, runtime="Python", context=dict(context or {}))
    ny, nx = cube.sizes["y"], cube.sizes["x"]
    pad = {"y": (overlap, overlap + (-ny) % size), "x": (overlap, overlap + (-nx) % size)}
    padded = cube.astype("float64").pad(pad, constant_values=np.nan)
    rows, cols = math.ceil(ny / size), math.ceil(nx / size)
    pieces = []
    for r in range(rows):
        row = []
        for c in range(cols):
            chunk = padded.isel(
                y=slice(r * size, r * size + size + 2 * overlap), x=slice(c * size, c * size + size + 2 * overlap)
            )
            out = execute_local_udf(udf, chunk, fmt="netcdf").get_datacube_list()[0].get_array()
            row.append(out.isel(y=slice(overlap, overlap + size), x=slice(overlap, overlap + size)))
        pieces.append(row)
    full = xr.concat([xr.concat(row, dim="x") for row in pieces], dim="y")
    return (
        full.isel(y=slice(0, ny), x=slice(0, nx)).assign_coords(y=cube.coords["y"].values, x=cube.coords["x"].values)
        if "y" in cube.coords and "x" in cube.coords
        else full.isel(y=slice(0, ny), x=slice(0, nx))
    )


# Command -------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="satclassify export-openeo",
        description="Write an openEO UDF + process graph (+ job options, legend, model archive) that apply a "
        "SatClassify ONNX model to Sentinel-2 L2A on an openEO back-end such as the Copernicus Data "
        "Space (docs/openeo.md).",
    )
    p.add_argument("--model", required=True, help="the ONNX model (.onnx with a SatClassify card)")
    p.add_argument(
        "--out",
        required=True,
        help="folder for udf.py, process_graph.json, job_options.json, "
        "legend.json and model.zip (created when missing)",
    )
    p.add_argument(
        "--model-url",
        help="URL where model.zip will be downloadable by the back-end (written into the "
        "job options; without it they hold a placeholder)",
    )
    p.add_argument(
        "--deps-url",
        help="URL of a zip holding onnxruntime for the back-end's Python (optional: the "
        "UDF declares onnxruntime as an inline dependency)",
    )
    p.add_argument(
        "--chunk",
        type=int,
        default=0,
        help=f"apply_neighborhood chunk edge in px without the overlap "
        f"(>= {MIN_CHUNK}; default: the card's tile_size - 2 x halo)",
    )
    p.add_argument(
        "--composite",
        choices=COMPOSITES,
        default="median",
        help="median: classify the per-pixel median of the cloud-free dates (default); none: each date",
    )
    p.add_argument("--collection", default=COLLECTION, help=f"the Sentinel-2 L2A collection id (default {COLLECTION})")
    p.add_argument(
        "--max-cloud-cover",
        type=float,
        default=DEFAULT_MAX_CLOUD,
        help=f"default of the graph's max_cloud_cover parameter, %% (default {DEFAULT_MAX_CLOUD})",
    )
    p.add_argument("--overwrite", action="store_true", help="replace the files of an earlier export in --out")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    try:
        files = export_openeo(
            args.model,
            args.out,
            model_url=args.model_url,
            deps_url=args.deps_url,
            chunk=args.chunk,
            composite=args.composite,
            collection=args.collection,
            max_cloud_cover=args.max_cloud_cover,
            overwrite=args.overwrite,
            log=log,
        )
    except SatClassifyError as e:
        print(f"satclassify export-openeo: error: {e}", file=sys.stderr)
        return 1
    for kind in FILES:
        print(files[kind])
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
