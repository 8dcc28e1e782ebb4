"""A minimal GeoPackage writer in pure Python (sqlite3): one polygon layer with plain attribute fields.

The training package writes ``patches.gpkg`` of an imported dataset (BigEarthNet, EuroSAT) with it, because
the training environment has no OGR (rasterio reads rasters only). It follows the OGC GeoPackage 1.3 encoding
(application id ``GPKG``, ``gpkg_spatial_ref_sys``, ``gpkg_contents``, ``gpkg_geometry_columns``, geometry
blobs = the ``GP`` header with an xy envelope + little-endian WKB), which GDAL/OGR and QGIS read. The file is
written under a temporary name beside ``path`` and renamed when complete.
"""

from __future__ import annotations

import os
import re
import sqlite3
import struct
from typing import Iterable, Optional, Sequence, Tuple

from .errors import SatClassifyError
from .paths import check_regular_target, remove_stale, temp_pattern, temp_tag

#: custom srs_id for a CRS without an EPSG code (GeoPackage reserves 0, -1 and the EPSG numbers)
CUSTOM_SRS_ID = 100000
_TYPES = {"str": "TEXT", "int": "INTEGER", "float": "REAL"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EPSG_AT_END = re.compile(r'(?:AUTHORITY\["EPSG",\s*"?(\d+)"?\]|ID\["EPSG",\s*(\d+)\])\s*\]\s*$', re.S)


def epsg_of_wkt(wkt: str) -> Optional[int]:
    """The EPSG code a WKT names for the whole CRS (its last AUTHORITY / ID), None when it names none."""
    m = _EPSG_AT_END.search((wkt or "").strip())
    return int(m.group(1) or m.group(2)) if m else None


def polygon_blob(ring: Sequence[Tuple[float, float]], srs_id: int) -> bytes:
    """GeoPackage geometry blob of a one-ring polygon (the ring is closed here if it is not)."""
    pts = [(float(x), float(y)) for x, y in ring]
    if pts[0] != pts[-1]:
        pts.append(pts[0])
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    header = (
        b"GP"
        + bytes([0, 0b00000011])
        + struct.pack("<i", srs_id)
        + struct.pack("<4d", min(xs), max(xs), min(ys), max(ys))
    )
    wkb = struct.pack("<BIII", 1, 3, 1, len(pts)) + b"".join(struct.pack("<2d", x, y) for x, y in pts)
    return header + wkb


def write_polygons(
    path: str,
    layer: str,
    fields: Sequence[Tuple[str, str]],
    rows: Iterable[tuple],
    crs_wkt: str = "",
    crs_name: str = "",
) -> int:
    """Write ``path`` with one polygon layer ``layer``: ``fields`` = [(name, "str"|"int"|"float")], ``rows`` =
    (ring, value per field) with ring = [(x, y), ...]. Returns the number of features."""
    if not _NAME.match(layer) or any(not _NAME.match(n) or t not in _TYPES for n, t in fields):
        raise SatClassifyError(
            f"GeoPackage layer/field names must be identifiers and types str/int/float: {layer}, {list(fields)}"
        )
    epsg = epsg_of_wkt(crs_wkt) if crs_wkt else None
    srs_id = epsg if epsg else (CUSTOM_SRS_ID if crs_wkt else -1)
    folder, name = os.path.split(os.path.abspath(path))
    check_regular_target(path)  # the rename would replace a device, a FIFO, a socket
    remove_stale(folder, temp_pattern(name, r"\.tmp.*"))  # left by an interrupted run whose process is gone
    tmp = os.path.join(folder, f".{name}.{temp_tag()}.tmp")
    con = sqlite3.connect(tmp)
    try:
        _create(con, layer, fields, srs_id, epsg, crs_wkt, crs_name)
        bounds = [float("inf"), float("inf"), float("-inf"), float("-inf")]
        cols = ", ".join(["geom"] + [f'"{n}"' for n, _ in fields])
        sql = f'INSERT INTO "{layer}" ({cols}) VALUES ({", ".join("?" * (len(fields) + 1))})'
        n = 0
        for ring, *values in rows:
            if len(values) != len(fields):
                raise SatClassifyError(f"GeoPackage row has {len(values)} values for {len(fields)} fields")
            con.execute(sql, [polygon_blob(ring, srs_id)] + list(values))
            for x, y in ring:
                bounds = [min(bounds[0], x), min(bounds[1], y), max(bounds[2], x), max(bounds[3], y)]
            n += 1
        if n:
            con.execute(
                "UPDATE gpkg_contents SET min_x=?, min_y=?, max_x=?, max_y=? WHERE table_name=?", bounds + [layer]
            )
        con.execute("INSERT INTO gpkg_ogr_contents VALUES (?, ?)", (layer, n))
        con.commit()
        con.close()
        check_regular_target(path)
        os.replace(tmp, path)
    finally:
        try:
            con.close()
        except sqlite3.Error:
            pass
        if os.path.exists(tmp):
            os.remove(tmp)
    return n


def _create(con, layer, fields, srs_id, epsg, crs_wkt, crs_name):
    con.execute("PRAGMA application_id = 1196444487")  # 'GPKG'
    con.execute("PRAGMA user_version = 10300")
    con.execute(
        "CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, "
        "organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, "
        "description TEXT)"
    )
    srs = [
        ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", None),
        ("Undefined geographic SRS", 0, "NONE", 0, "undefined", None),
        (
            "WGS 84 geodetic",
            4326,
            "EPSG",
            4326,
            'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],'
            'AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",'
            '0.0174532925199433,AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],AXIS["Longitude",EAST],'
            'AUTHORITY["EPSG","4326"]]',
            None,
        ),
    ]
    if srs_id not in (-1, 0, 4326):
        srs.append(
            (
                crs_name or (f"EPSG:{epsg}" if epsg else "custom"),
                srs_id,
                "EPSG" if epsg else "NONE",
                epsg or srs_id,
                crs_wkt,
                None,
            )
        )
    con.executemany("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)", srs)
    con.execute(
        "CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, "
        "identifier TEXT UNIQUE, description TEXT DEFAULT '', last_change DATETIME NOT NULL DEFAULT "
        "(strftime('%Y-%m-%dT%H:%M:%fZ','now')), min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, "
        "srs_id INTEGER REFERENCES gpkg_spatial_ref_sys(srs_id))"
    )
    con.execute(
        "CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL, "
        "geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL, "
        "CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name))"
    )
    con.execute(
        "CREATE TABLE gpkg_ogr_contents (table_name TEXT NOT NULL PRIMARY KEY, feature_count INTEGER DEFAULT NULL)"
    )
    cols = ", ".join(f'"{n}" {_TYPES[t]}' for n, t in fields)
    con.execute(
        f'CREATE TABLE "{layer}" (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, geom POLYGON'
        + (f", {cols}" if cols else "")
        + ")"
    )
    con.execute(
        "INSERT INTO gpkg_contents (table_name, data_type, identifier, srs_id) VALUES (?, 'features', ?, ?)",
        (layer, layer, srs_id),
    )
    con.execute("INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', 'POLYGON', ?, 0, 0)", (layer, srs_id))
