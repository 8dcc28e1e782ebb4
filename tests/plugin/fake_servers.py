"""Local fakes of the Sentinel-2 services (127.0.0.1 only) and builders of small test products.

* :class:`FakeServer`: a threaded HTTP/1.1 server on a random port. Static files with HEAD and single
  ``Range`` support (what GDAL ``/vsicurl/`` needs), byte counting per path, scripted failures
  (e.g. 429 with Retry-After, then success), a connection dropped after N bytes, slow answers
  (:meth:`FakeServer.stall_after_headers`, :meth:`FakeServer.trickle`) and route handlers.
* :class:`ForwardingProxy`: an HTTP forward proxy on 127.0.0.1 (absolute-URI requests, as curl and urllib3
  send them to a proxy) that records every request and forwards it to the fakes; optionally demands a
  ``Proxy-Authorization`` login (407 without it).
* :func:`add_stac_api`: a STAC API (landing page, /search GET and POST with paging, /collections/...).
* :func:`add_cdse`: CDSE token endpoint + OData catalogue + ``$value`` download through a redirect to
  another "host" path that requires the Authorization header.
* :func:`add_dhus`: the DHuS OpenSearch/OData endpoints sentinelsat uses.
* :func:`make_cog_tile`: COG bands of one MGRS-like tile; :func:`make_safe_zip`: a SAFE zip with the real
  layout and MTD XML fields (JP2 band files).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import re
import select
import threading
import time
import zipfile
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()


class FakeServer:
    def __init__(self):
        self.files = {}  # path -> bytes
        self.routes = []  # (method or None, compiled regex, fn(req) -> (status, headers, body))
        self.scripted = defaultdict(list)  # path -> [(status, headers, body)] served before anything else
        self.drop_after = {}  # path -> n bytes: the next GET sends n bytes then closes the connection
        self.require_header = {}  # path -> (header, value): 401 without it
        self.file_headers = {}  # path -> extra headers sent with the file
        self.slow = {}  # path -> [mode ("stall" | "trickle"), interval, times left (None = every answer)]
        self.release = threading.Event()  # set by close(): slow answers give up
        self.hold = 60.0  # longest a stalled answer keeps its connection open (it ends earlier if the client hangs up)
        self.open_slow = 0  # slow answers in progress (0 again once every client hung up)
        self.bytes_served = Counter()
        self.log = []  # (method, path, headers, body)
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _handle(self, method):
                body = self._body() if method == "POST" else b""
                u = urlparse(self.path)
                req = {
                    "method": method,
                    "path": u.path,
                    "query": parse_qs(u.query),
                    "raw_query": u.query,
                    "headers": dict(self.headers),
                    "body": body,
                    "url": server.url,
                }
                with server.lock:
                    server.log.append((method, self.path, dict(self.headers), body))
                    scripted = server.scripted[u.path].pop(0) if server.scripted.get(u.path) else None
                if scripted:
                    return self._send(*scripted, method=method, path=u.path)
                need = server.require_header.get(u.path)
                if need and self.headers.get(need[0]) != need[1]:
                    return self._send(
                        401,
                        {"Content-Type": "application/json"},
                        b'{"error": {"message": {"value": "Unauthorized"}}}',
                        method=method,
                        path=u.path,
                    )
                for m, rx, fn in server.routes:
                    if (m is None or m == method or (m == "GET" and method == "HEAD")) and rx.fullmatch(u.path):
                        return self._send(*fn(req), method=method, path=u.path)
                if u.path in server.files:
                    return self._file(server.files[u.path], method, u.path)
                return self._send(
                    404, {"Content-Type": "application/json"}, b'{"detail": "not found"}', method=method, path=u.path
                )

            def _file(self, data, method, path):
                rng = self.headers.get("Range")
                total = len(data)
                start, end, status = 0, total - 1, 200
                if rng:
                    m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
                    if not m:
                        return self._send(416, {"Content-Range": f"bytes */{total}"}, b"", method=method, path=path)
                    if m.group(1):
                        start = int(m.group(1))
                        end = min(int(m.group(2)), total - 1) if m.group(2) else total - 1
                    else:
                        start, end = max(0, total - int(m.group(2))), total - 1
                    if start >= total:
                        return self._send(416, {"Content-Range": f"bytes */{total}"}, b"", method=method, path=path)
                    status = 206
                headers = {
                    "Accept-Ranges": "bytes",
                    "Content-Type": "application/octet-stream",
                    **server.file_headers.get(path, {}),
                }
                if status == 206:
                    headers["Content-Range"] = f"bytes {start}-{end}/{total}"
                return self._send(status, headers, data[start : end + 1], method=method, path=path)

            def _send(self, status, headers, body, method="GET", path=""):
                if isinstance(body, (dict, list)):
                    body = json.dumps(body).encode()
                    headers = {"Content-Type": "application/json", **headers}
                elif isinstance(body, str):
                    body = body.encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if method == "HEAD":
                    return
                slow = server._take_slow(path)
                if slow:
                    return self._slow(body, path, *slow)
                with server.lock:
                    drop = server.drop_after.pop(path, None) if status in (200, 206) else None
                if drop is not None and drop < len(body):
                    with server.lock:
                        server.bytes_served[path] += drop
                    self.wfile.write(body[:drop])
                    self.wfile.flush()
                    self.close_connection = True
                    try:
                        self.connection.shutdown(2)
                    except OSError:
                        pass
                    return
                with server.lock:  # counted before the write: a client that has read it all may check at once
                    server.bytes_served[path] += len(body)
                self.wfile.write(body)

            def _client_gone(self):
                try:
                    readable = select.select([self.connection], [], [], 0)[0]
                    return bool(readable) and self.connection.recv(1, 0x2) == b""  # MSG_PEEK: EOF = hung up
                except OSError:
                    return True

            def _slow(self, body, path, mode, interval):
                """Headers are out: send nothing more ("stall") or one byte every ``interval`` s ("trickle"),
                until the body is out, the client hangs up or the server closes."""
                self.close_connection = True
                with server.lock:
                    server.open_slow += 1
                try:
                    self.wfile.flush()
                    sent, t_next = 0, time.monotonic()
                    end = time.monotonic() + server.hold
                    while time.monotonic() < end and not server.release.is_set() and not self._client_gone():
                        if mode == "trickle" and time.monotonic() >= t_next:
                            if sent >= len(body):
                                break
                            self.wfile.write(body[sent : sent + 1])
                            self.wfile.flush()
                            sent += 1
                            with server.lock:
                                server.bytes_served[path] += 1
                            t_next = time.monotonic() + interval
                        server.release.wait(0.02)
                except OSError:  # the client hung up
                    pass
                finally:
                    with server.lock:
                        server.open_slow -= 1

            def do_GET(self):
                self._handle("GET")

            def do_HEAD(self):
                self._handle("HEAD")

            def do_POST(self):
                self._handle("POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def route(self, method, pattern, fn):
        self.routes.append((method, re.compile(pattern), fn))

    def stall_after_headers(self, path, times=None):
        """Answers to ``path`` (GET/POST; HEAD is answered normally) send their status and headers, then nothing:
        the connection stays open. ``times``: how many answers (None = all until :meth:`normal`)."""
        self.slow[path] = ["stall", 0.0, times]

    def trickle(self, path, interval=0.5, times=None):
        """Answers to ``path`` send their headers, then the body one byte every ``interval`` seconds (each read
        gets a byte well within any read timeout, yet the answer takes ages)."""
        self.slow[path] = ["trickle", float(interval), times]

    def normal(self, path=None):
        """Answer ``path`` (or every path) normally again."""
        with self.lock:
            if path is None:
                self.slow.clear()
            else:
                self.slow.pop(path, None)

    def _take_slow(self, path):
        with self.lock:
            spec = self.slow.get(path)
            if not spec:
                return None
            if spec[2] is not None:
                spec[2] -= 1
                if spec[2] <= 0:
                    del self.slow[path]
            return spec[0], spec[1]

    def wait_hung_up(self, timeout=5.0):
        """True once no slow answer is open any more (every client closed its connection)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if self.open_slow == 0:
                    return True
            time.sleep(0.02)
        return False

    def reset_counts(self):
        with self.lock:
            self.bytes_served.clear()
            self.log.clear()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class ForwardingProxy:
    """An HTTP forward proxy on 127.0.0.1 for the fakes: ``log`` keeps (method, absolute URL, headers) of every
    request it received; ``login=(user, password)`` makes it answer 407 to requests without that login."""

    HOP = {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }

    def __init__(self, login=None):
        self.log = []
        self.login = login
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _forward(self, method):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                with proxy.lock:
                    proxy.log.append((method, self.path, dict(self.headers)))
                if proxy.login is not None:
                    want = "Basic " + base64.b64encode(":".join(proxy.login).encode()).decode()
                    if self.headers.get("Proxy-Authorization") != want:
                        return self._reply(407, [("Proxy-Authenticate", 'Basic realm="test proxy"')], b"", method)
                u = urlparse(self.path)
                if u.scheme != "http" or not u.hostname:
                    return self._reply(400, [], b"absolute http:// URL expected", method)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in proxy.HOP}
                conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=30)
                try:
                    conn.request(
                        method, (u.path or "/") + ("?" + u.query if u.query else ""), body=body, headers=headers
                    )
                    r = conn.getresponse()
                    data = r.read()
                    out = [(k, v) for k, v in r.getheaders() if k.lower() not in proxy.HOP]
                except OSError as e:
                    return self._reply(502, [], f"upstream failed: {e}".encode(), method)
                finally:
                    conn.close()
                self._reply(r.status, out, data, method)

            def _reply(self, status, headers, data, method):
                self.send_response(status)
                has_length = False
                for k, v in headers:
                    has_length |= k.lower() == "content-length"
                    self.send_header(k, v)
                if not has_length:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(data)

            def do_GET(self):
                self._forward("GET")

            def do_HEAD(self):
                self._forward("HEAD")

            def do_POST(self):
                self._forward("POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def urls(self, method=None):
        """The absolute URLs requested through the proxy (of ``method`` only, when given)."""
        with self.lock:
            return [u for m, u, _ in self.log if method is None or m == method]

    def clear(self):
        with self.lock:
            self.log.clear()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------------------------------------------------
# products


def utm_wkt(epsg=32632):
    s = osr.SpatialReference()
    s.ImportFromEPSG(epsg)
    return s.ExportToWkt()


def to_lonlat(x, y, epsg=32632):
    src = osr.SpatialReference()
    src.ImportFromEPSG(epsg)
    dst = osr.SpatialReference()
    dst.ImportFromEPSG(4326)
    for s in (src, dst):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    lon, lat, _ = osr.CoordinateTransformation(src, dst).TransformPoint(x, y)
    return lon, lat


def footprint(x0, y0, x1, y1, epsg=32632):
    ring = [to_lonlat(x, y, epsg) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))]
    return {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}


def cog_bytes(array, origin, pixel, epsg=32632, blocksize=256):
    """A COG (uint16 or uint8) in memory, built with GDAL's COG driver."""
    a = np.asarray(array)
    gdt = gdal.GDT_UInt16 if a.dtype == np.uint16 else gdal.GDT_Byte
    mem = gdal.GetDriverByName("MEM").Create("", a.shape[1], a.shape[0], 1, gdt)
    mem.SetGeoTransform((origin[0], pixel, 0, origin[1], 0, -pixel))
    mem.SetProjection(utm_wkt(epsg))
    mem.GetRasterBand(1).WriteArray(a)
    mem.GetRasterBand(1).SetNoDataValue(0)
    name = f"/vsimem/cog_{id(a)}_{np.random.randint(1 << 30)}.tif"
    gdal.GetDriverByName("COG").CreateCopy(
        name, mem, options=[f"BLOCKSIZE={blocksize}", "COMPRESS=DEFLATE", "OVERVIEWS=NONE"]
    )
    f = gdal.VSIFOpenL(name, "rb")
    gdal.VSIFSeekL(f, 0, 2)
    n = gdal.VSIFTellL(f)
    gdal.VSIFSeekL(f, 0, 0)
    data = gdal.VSIFReadL(1, n, f)
    gdal.VSIFCloseL(f)
    gdal.Unlink(name)
    return bytes(data)


def tile_arrays(seed, size10=1024, bands=("B02", "B03", "B04", "B08", "B11"), scl_values=None):
    """Random DN (1000..5000) per band; 10 m bands ``size10`` wide, 20 m bands half that; an SCL layer."""
    rng = np.random.default_rng(seed)
    out = {}
    for b in bands:
        n = size10 if b in ("B02", "B03", "B04", "B08") else size10 // 2
        out[b] = rng.integers(1000, 5000, (n, n), dtype=np.uint16)
    n20 = size10 // 2
    scl = np.full((n20, n20), 4, np.uint8)
    if scl_values is None:
        scl[:, : n20 // 4] = 9  # a cloudy strip on the west
        scl[:4, :] = 3
        scl[-2:, -2:] = 0
    else:
        scl[:] = scl_values
    out["SCL"] = scl
    return out


ASSET_KEYS = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "B11": "swir16", "SCL": "scl"}


def make_cog_tile(server, name, arrays, origin, epsg=32632, key_style="common"):
    """Serve each band of ``arrays`` as /data/<name>/<band>.tif; returns {asset_key: asset}."""
    assets = {}
    for b, a in arrays.items():
        pixel = 10.0 if a.shape[0] == arrays["B02"].shape[0] else 20.0
        path = f"/data/{name}/{b}.tif"
        server.files[path] = cog_bytes(a, origin, pixel, epsg)
        key = ASSET_KEYS[b] if key_style == "common" else b
        asset = {
            "href": server.url + path,
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
        }
        if b != "SCL":
            asset["raster:bands"] = [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}]
        assets[key] = asset
    return assets


def make_item(
    item_id,
    when,
    arrays,
    origin,
    assets,
    cloud=10.0,
    baseline="05.10",
    applied=False,
    nodata=0.0,
    platform="sentinel-2a",
    tile="32TQM",
    epsg=32632,
    collection="sentinel-2-c1-l2a",
    proj_code=False,
):
    n = arrays["B02"].shape[0] * 10.0
    x0, y1 = origin
    fp = footprint(x0, y1 - n, x0 + n, y1, epsg)
    xs = [p[0] for p in fp["coordinates"][0]]
    ys = [p[1] for p in fp["coordinates"][0]]
    props = {
        "datetime": when,
        "eo:cloud_cover": cloud,
        "s2:processing_baseline": baseline,
        "s2:nodata_pixel_percentage": nodata,
        "platform": platform,
        "grid:code": f"MGRS-{tile}",
    }
    if applied is not None:
        props["earthsearch:boa_offset_applied"] = applied
    if proj_code:
        props["proj:code"] = f"EPSG:{epsg}"
    else:
        props["proj:epsg"] = epsg
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "collection": collection,
        "geometry": fp,
        "bbox": [min(xs), min(ys), max(xs), max(ys)],
        "properties": props,
        "assets": assets,
        "links": [],
    }


def _bbox_of_geojson(g):
    pts = []

    def walk(c):
        if c and isinstance(c[0], (int, float)):
            pts.append(c)
        else:
            for x in c:
                walk(x)

    walk(g["coordinates"])
    return [min(p[0] for p in pts), min(p[1] for p in pts), max(p[0] for p in pts), max(p[1] for p in pts)]


def add_stac_api(server, items, page_size=None, prefix=""):
    """A STAC API at server.url + prefix serving ``items`` (a list the test may change)."""
    root = server.url + prefix

    def landing(req):
        return (
            200,
            {},
            {
                "type": "Catalog",
                "id": "fake",
                "stac_version": "1.0.0",
                "description": "test STAC",
                "conformsTo": [
                    "https://api.stacspec.org/v1.0.0/core",
                    "https://api.stacspec.org/v1.0.0/item-search",
                    "https://api.stacspec.org/v1.0.0/item-search#query",
                    "https://api.stacspec.org/v1.0.0/collections",
                ],
                "links": [
                    {"rel": "self", "href": root + "/"},
                    {"rel": "root", "href": root + "/"},
                    {"rel": "search", "href": root + "/search", "method": "POST", "type": "application/geo+json"},
                    {"rel": "search", "href": root + "/search", "method": "GET", "type": "application/geo+json"},
                ],
            },
        )

    def search(req):
        if req["method"] == "POST":
            p = json.loads(req["body"] or b"{}")
        else:
            q = req["query"]
            p = {k: v[0] for k, v in q.items()}
            for k in ("collections", "ids"):
                if k in p:
                    p[k] = p[k].split(",")
            for k in ("intersects", "query"):
                if k in p:
                    p[k] = json.loads(p[k])
            if "limit" in p:
                p["limit"] = int(p["limit"])
            if "token" in p:
                p["token"] = int(p["token"])
        sel = []
        for it in items:
            if p.get("collections") and it.get("collection") not in p["collections"]:
                continue
            if p.get("ids") and it["id"] not in p["ids"]:
                continue
            if p.get("datetime"):
                a, b = p["datetime"].split("/")
                d = it["properties"]["datetime"]
                if (a not in ("", "..") and d < a) or (b not in ("", "..") and d > b):
                    continue
            cc = (p.get("query") or {}).get("eo:cloud_cover", {}).get("lte")
            if cc is not None and it["properties"]["eo:cloud_cover"] > cc:
                continue
            if p.get("intersects"):
                a = _bbox_of_geojson(p["intersects"])
                b = it["bbox"]
                if a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1]:
                    continue
            sel.append(it)
        limit = min(int(p.get("limit") or 10), page_size or 10**6)
        start = int(p.get("token") or 0)
        page = sel[start : start + limit]
        links = []
        if start + limit < len(sel):
            if req["method"] == "POST":
                links.append(
                    {
                        "rel": "next",
                        "href": root + "/search",
                        "method": "POST",
                        "body": {**p, "token": start + limit},
                        "merge": False,
                    }
                )
            else:
                links.append(
                    {
                        "rel": "next",
                        "href": root + "/search?" + req["raw_query"].split("&token=")[0] + f"&token={start + limit}",
                        "method": "GET",
                    }
                )
        return 200, {}, {"type": "FeatureCollection", "features": page, "links": links, "numberMatched": len(sel)}

    def collection(req):
        cid = req["path"].rstrip("/").split("/")[-1]
        return (
            200,
            {},
            {
                "type": "Collection",
                "id": cid,
                "stac_version": "1.0.0",
                "description": cid,
                "license": "proprietary",
                "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None, None]]}},
                "links": [],
            },
        )

    def one_item(req):
        parts = req["path"].split("/")
        for it in items:
            if it["id"] == parts[-1]:
                return 200, {}, it
        return 404, {}, {"detail": "no such item"}

    server.route("GET", re.escape(prefix) + r"/?", landing)
    server.route(None, re.escape(prefix) + r"/search", search)
    server.route("GET", re.escape(prefix) + r"/collections/[^/]+", collection)
    server.route("GET", re.escape(prefix) + r"/collections/[^/]+/items/[^/]+", one_item)
    return root


# ---------------------------------------------------------------------------------------------------------
# SAFE

L2A_NS = "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd"
L1C_NS = "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd"
BAND_IDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]


def jp2_bytes(array, origin, pixel, epsg=32632):
    a = np.asarray(array)
    gdt = gdal.GDT_UInt16 if a.dtype == np.uint16 else gdal.GDT_Byte
    mem = gdal.GetDriverByName("MEM").Create("", a.shape[1], a.shape[0], 1, gdt)
    mem.SetGeoTransform((origin[0], pixel, 0, origin[1], 0, -pixel))
    mem.SetProjection(utm_wkt(epsg))
    mem.GetRasterBand(1).WriteArray(a)
    name = f"/vsimem/jp2_{np.random.randint(1 << 30)}.jp2"
    gdal.GetDriverByName("JP2OpenJPEG").CreateCopy(name, mem, options=["REVERSIBLE=YES", "QUALITY=100"])
    f = gdal.VSIFOpenL(name, "rb")
    gdal.VSIFSeekL(f, 0, 2)
    n = gdal.VSIFTellL(f)
    gdal.VSIFSeekL(f, 0, 0)
    data = bytes(gdal.VSIFReadL(1, n, f))
    gdal.VSIFCloseL(f)
    gdal.Unlink(name)
    return data


def mtd_xml(
    level,
    baseline,
    image_files,
    offset=-1000,
    when="2023-06-01T10:15:59.024Z",
    cloud=12.5,
    uri="S2B_MSIL2A_20230601T101559_N0509_R065_T32TQM_20230601T131313.SAFE",
):
    with_offset = tuple(int(x) for x in baseline.split(".")) >= (4, 0)
    files = "\n".join(f"<IMAGE_FILE>{f}</IMAGE_FILE>" for f in image_files)
    if level == "L2A":
        offsets = (
            (
                "<BOA_ADD_OFFSET_VALUES_LIST>"
                + "".join(f'<BOA_ADD_OFFSET band_id="{i}">{offset}</BOA_ADD_OFFSET>' for i in range(13))
                + "</BOA_ADD_OFFSET_VALUES_LIST>"
            )
            if with_offset
            else ""
        )
        quant = (
            '<QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>'
            '<AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>'
            '<WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE></QUANTIFICATION_VALUES_LIST>'
        )
        root, ns, ptype, plevel = "Level-2A_User_Product", L2A_NS, "S2MSI2A", "Level-2A"
    else:
        offsets = (
            (
                "<Radiometric_Offset_List>"
                + "".join(f'<RADIO_ADD_OFFSET band_id="{i}">{offset}</RADIO_ADD_OFFSET>' for i in range(13))
                + "</Radiometric_Offset_List>"
            )
            if with_offset
            else ""
        )
        quant = '<QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>'
        root, ns, ptype, plevel = "Level-1C_User_Product", L1C_NS, "S2MSI1C", "Level-1C"
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<n1:{root} xmlns:n1="{ns}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<n1:General_Info>
<Product_Info>
<PRODUCT_START_TIME>{when}</PRODUCT_START_TIME>
<PRODUCT_STOP_TIME>{when}</PRODUCT_STOP_TIME>
<PRODUCT_URI>{uri}</PRODUCT_URI>
<PROCESSING_LEVEL>{plevel}</PROCESSING_LEVEL>
<PRODUCT_TYPE>{ptype}</PRODUCT_TYPE>
<PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
<GENERATION_TIME>2023-06-01T13:13:13.000000Z</GENERATION_TIME>
<Datatake datatakeIdentifier="GS2B_20230601T101559_032567_N{baseline}">
<SPACECRAFT_NAME>Sentinel-2B</SPACECRAFT_NAME>
<DATATAKE_TYPE>INS-NOBS</DATATAKE_TYPE>
<DATATAKE_SENSING_START>{when}</DATATAKE_SENSING_START>
<SENSING_ORBIT_NUMBER>65</SENSING_ORBIT_NUMBER>
<SENSING_ORBIT_DIRECTION>DESCENDING</SENSING_ORBIT_DIRECTION>
</Datatake>
<Query_Options completeSingleTile="true"><PRODUCT_FORMAT>SAFE_COMPACT</PRODUCT_FORMAT></Query_Options>
<Product_Organisation>
<Granule_List>
<Granule datastripIdentifier="S2B_OPER_MSI_{level}_DS_2BPS_20230601T131313_S20230601T101603_N{baseline}"
 granuleIdentifier="S2B_OPER_MSI_{level}_TL_2BPS_20230601T131313_A032567_T32TQM_N{baseline}" imageFormat="JPEG2000">
{files}
</Granule>
</Granule_List>
</Product_Organisation>
</Product_Info>
</n1:General_Info>
<n1:Product_Image_Characteristics>
<Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX></Special_Values>
<Special_Values><SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX></Special_Values>
{quant}
{offsets}
</n1:Product_Image_Characteristics>
<n1:Quality_Indicators_Info>
<Cloud_Coverage_Assessment>{cloud}</Cloud_Coverage_Assessment>
</n1:Quality_Indicators_Info>
</n1:{root}>
"""


def make_safe_zip(
    path,
    arrays,
    origin,
    level="L2A",
    baseline="05.09",
    offset=-1000,
    extra_entries=(),
    uri=None,
    tile="32TQM",
    when=None,
):
    """Write a SAFE zip: ``arrays`` maps band -> array (10 m bands at 10 m, 20 m bands / SCL at 20 m); ``when``:
    the sensing time (PRODUCT_START_TIME), default 2023-06-01."""
    stem = "20230601T101559"
    uri = uri or (f"S2B_MSI{level}_{stem}_N{baseline.replace('.', '')}_R065_T{tile}_20230601T131313.SAFE")
    gran = f"GRANULE/{level}_T{tile}_A032567_20230601T101603"
    entries, files = {}, []
    for b, a in arrays.items():
        pixel = 10 if a.shape[0] == arrays["B02"].shape[0] else 20
        if level == "L2A":
            rel = f"{gran}/IMG_DATA/R{pixel}m/T{tile}_{stem}_{b}_{pixel}m"
        else:
            rel = f"{gran}/IMG_DATA/T{tile}_{stem}_{b}"
        files.append(rel)
        entries[rel + ".jp2"] = jp2_bytes(a, origin, float(pixel))
    kw = {"when": when} if when else {}
    entries["MTD_MSI" + level + ".xml"] = mtd_xml(level, baseline, files, offset, uri=uri, **kw).encode()
    entries[f"{gran}/MTD_TL.xml"] = b"<Level-2A_Tile_ID/>"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for rel, data in entries.items():
            zf.writestr(uri + "/" + rel, data)
        for name, data in extra_entries:
            zf.writestr(name, data)
    return str(path)


def md5(data):
    return hashlib.md5(data).hexdigest()


def zip_bytes(entries):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return b.getvalue()


# ---------------------------------------------------------------------------------------------------------
# CDSE and DHuS

TOKEN_PATH = "/auth/realms/CDSE/protocol/openid-connect/token"


def odata_product(uuid, name, data, when, fp, cloud=5.0, baseline="05.09", tile="32TQM", online=True, md5sum=None):
    return {
        "@odata.mediaContentType": "application/octet-stream",
        "Id": uuid,
        "Name": name,
        "ContentType": "application/octet-stream",
        "ContentLength": len(data),
        "Online": online,
        "ContentDate": {"Start": when, "End": when},
        "Footprint": "geography'SRID=4326;POLYGON ((" + ", ".join(f"{x} {y}" for x, y in fp["coordinates"][0]) + "))'",
        "GeoFootprint": fp,
        "Checksum": [
            {"Value": md5sum or md5(data), "Algorithm": "MD5", "ChecksumDate": when},
            {"Value": "0" * 64, "Algorithm": "BLAKE3", "ChecksumDate": when},
        ],
        "Attributes": [
            {"@odata.type": "#OData.CSC.DoubleAttribute", "Name": "cloudCover", "Value": cloud, "ValueType": "Double"},
            {
                "@odata.type": "#OData.CSC.StringAttribute",
                "Name": "productType",
                "Value": "S2MSI2A",
                "ValueType": "String",
            },
            {"@odata.type": "#OData.CSC.StringAttribute", "Name": "tileId", "Value": tile, "ValueType": "String"},
            {
                "@odata.type": "#OData.CSC.DoubleAttribute",
                "Name": "processingBaseline",
                "Value": float(baseline),
                "ValueType": "Double",
            },
            {
                "@odata.type": "#OData.CSC.StringAttribute",
                "Name": "platformSerialIdentifier",
                "Value": name[2],
                "ValueType": "String",
            },
        ],
    }


def add_cdse(server, products, datas, user, password, token="tok-5f1b2c", page_size=None):
    """CDSE fakes: token endpoint, /odata/v1/Products search (paged), $value redirecting to /dl/... (Bearer).
    ``token`` may be a list: successive logins get its entries in turn (the last one repeats), and only
    the last one opens the downloads (the earlier ones have "expired")."""
    tokens = list(token) if isinstance(token, (list, tuple)) else [token]
    token = tokens[-1]

    def token_ep(req):
        form = {k: v[0] for k, v in parse_qs(req["body"].decode()).items()}
        if (
            form.get("grant_type") == "password"
            and form.get("client_id") == "cdse-public"
            and form.get("username") == user
            and form.get("password") == password
        ):
            issued = tokens.pop(0) if len(tokens) > 1 else tokens[0]
            return 200, {}, {"access_token": issued, "expires_in": 600, "token_type": "Bearer"}
        return 401, {}, {"error": "invalid_grant", "error_description": "Invalid user credentials"}

    def products_ep(req):
        q = {k: v[0] for k, v in req["query"].items()}
        flt = q.get("$filter", "")
        sel = []
        for p in products:
            m = re.search(r"Value le ([0-9.]+)\)", flt)
            if m and p["Attributes"][0]["Value"] > float(m.group(1)):
                continue
            m = re.search(r"ContentDate/Start ge (\S+)", flt)
            if m and p["ContentDate"]["Start"] < m.group(1):
                continue
            m = re.search(r"ContentDate/Start le (\S+)", flt)
            if m and p["ContentDate"]["Start"] > m.group(1):
                continue
            names = re.findall(r"(?<![/\w])Name eq '([^']+)'", flt)  # not Collection/Name nor att/Name
            if names and p["Name"] not in names and p["Name"][:-5] not in names:
                continue
            sel.append(p)
        top = min(int(q.get("$top", 20)), page_size or 10**6)
        skip = int(q.get("$skip", 0))
        body = {"@odata.context": "$metadata#Products(Attributes())", "value": sel[skip : skip + top]}
        if skip + top < len(sel):
            from urllib.parse import urlencode

            body["@odata.nextLink"] = server.url + "/odata/v1/Products?" + urlencode({**q, "$skip": skip + top})
        return 200, {}, body

    def value_ep(req):
        uuid = re.search(r"Products\(([^)]+)\)", req["path"]).group(1)
        return 302, {"Location": f"{server.url}/dl/Products({uuid})/$value"}, b""

    server.route("POST", re.escape(TOKEN_PATH), token_ep)
    server.route("GET", r"/odata/v1/Products", products_ep)
    server.route("GET", r"/odata/v1/Products\([^)]+\)/\$value", value_ep)
    for p, data in zip(products, datas):
        path = f"/dl/Products({p['Id']})/$value"
        server.files[path] = data
        server.require_header[path] = ("Authorization", f"Bearer {token}")
    return server.url + "/odata/v1"


def add_dhus(server, entries, datas, user, password, prefix="/dhus"):
    """DHuS fakes for sentinelsat: OpenSearch JSON, OData product metadata, Online flag, $value download."""
    import base64

    basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def authed(fn):
        def wrapped(req):
            if req["headers"].get("Authorization") != basic:
                return 401, {}, {"error": {"message": {"value": "Unauthorized"}}}
            return fn(req)

        return wrapped

    def search(req):
        q = {k: v[0] for k, v in req["query"].items()}
        start, rows = int(q.get("start", 0)), int(q.get("rows", 100))
        feed = {"opensearch:totalResults": str(len(entries)), "entry": entries[start : start + rows]}
        return 200, {}, {"feed": feed}

    def odata(req):
        uuid = re.search(r"Products\('([^']+)'\)", req["path"]).group(1)
        for e, data in zip(entries, datas):
            if e["id"] == uuid:
                return (
                    200,
                    {},
                    {
                        "d": {
                            "Id": uuid,
                            "Name": e["title"],
                            "ContentLength": str(len(data)),
                            "Checksum": {"Algorithm": "MD5", "Value": md5(data).upper()},
                            "ContentDate": {"Start": "/Date(1685614559024)/", "End": "/Date(1685614559024)/"},
                            "ContentGeometry": None,
                            "Online": True,
                            "CreationDate": "/Date(1685614559024)/",
                            "IngestionDate": "/Date(1685614559024)/",
                            "__metadata": {"media_src": f"{server.url}{prefix}/odata/v1/Products('{uuid}')/$value"},
                            "Attributes": {"results": []},
                        }
                    },
                )
        return 404, {}, {"error": {"message": {"value": "not found"}}}

    server.route("GET", re.escape(prefix) + r"/search", authed(search))
    server.route("GET", re.escape(prefix) + r"/odata/v1/Products\('[^']+'\)", authed(odata))
    server.route(
        "GET",
        re.escape(prefix) + r"/odata/v1/Products\('[^']+'\)/Online/\$value",
        authed(lambda req: (200, {}, b"true")),
    )
    for e, data in zip(entries, datas):
        path = f"{prefix}/odata/v1/Products('{e['id']}')/$value"
        server.files[path] = data
        server.require_header[path] = ("Authorization", basic)
        server.file_headers[path] = {"Content-Disposition": f'attachment; filename="{e["title"]}.zip"'}
    return server.url + prefix


def dhus_entry(uuid, title, when, fp_wkt, cloud=5.0, baseline="05.09", tile="32TQM"):
    return {
        "id": uuid,
        "title": title,
        "link": [{"href": f"odata/v1/Products('{uuid}')/$value"}],
        "date": [{"name": "beginposition", "content": when}, {"name": "endposition", "content": when}],
        "double": {"name": "cloudcoverpercentage", "content": str(cloud)},
        "str": [
            {"name": "footprint", "content": fp_wkt},
            {"name": "platformname", "content": "Sentinel-2"},
            {"name": "platformserialidentifier", "content": "Sentinel-2B"},
            {"name": "tileid", "content": tile},
            {"name": "processingbaseline", "content": baseline},
            {"name": "producttype", "content": "S2MSI2A"},
            {"name": "uuid", "content": uuid},
        ],
    }
