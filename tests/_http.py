"""A loopback HTTP server that serves a folder with Range support, as a COG host does.

Python's ``http.server`` ignores ``Range``; GDAL's /vsicurl/ needs 206 Partial Content to
read a COG window without downloading the file. This handler answers HEAD and GET, single
and multiple byte ranges (multipart/byteranges), and counts the body bytes it sends so a
test can check how much of a file a read fetched. An optional ``api`` callable answers
other paths (a minimal STAC API).
"""

from __future__ import annotations

import json
import mimetypes
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


class RangeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, api=None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = Path(root).resolve()
        self.api = api
        self.lock = threading.Lock()
        self.bytes_sent: dict[str, int] = {}
        self.requests: list[tuple[str, str, str | None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def count(self, path: str, n: int) -> None:
        with self.lock:
            self.bytes_sent[path] = self.bytes_sent.get(path, 0) + n

    def reset_counts(self) -> None:
        with self.lock:
            self.bytes_sent.clear()
            self.requests.clear()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RangeServer

    def log_message(self, fmt, *args):  # keep test output clean
        pass

    # -- helpers -------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None, head: bool = False):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)
            self.server.count(urlsplit(self.path).path, len(body))

    def _json(self, status: int, obj, head: bool = False):
        self._send(status, json.dumps(obj).encode(), "application/json", head=head)

    def _file(self) -> Path | None:
        rel = unquote(urlsplit(self.path).path).lstrip("/")
        path = (self.server.root / rel).resolve()
        if self.server.root not in path.parents and path != self.server.root:
            return None  # no escaping the served folder
        return path if path.is_file() else None

    # -- methods ---------------------------------------------------------------------------
    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append(("POST", self.path, None))
        if self.server.api is not None:
            answer = self.server.api("POST", self.path, body)
            if answer is not None:
                return self._json(*answer)
        self._json(404, {"code": "NotFound", "description": self.path})

    def _serve(self, *, head: bool):
        rng = self.headers.get("Range")
        self.server.requests.append(("HEAD" if head else "GET", self.path, rng))
        if self.server.api is not None:
            answer = self.server.api("GET", self.path, None)
            if answer is not None:
                return self._json(*answer, head=head)
        path = self._file()
        if path is None:
            return self._send(404, b"not found", "text/plain", head=head)
        data = path.read_bytes()
        size = len(data)
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if path.suffix.lower() in (".tif", ".tiff"):
            ctype = "image/tiff"
        if not rng:
            return self._send(200, data, ctype, head=head)
        spans = self._parse_ranges(rng, size)
        if spans is None:
            return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"}, head=head)
        if len(spans) == 1:
            a, b = spans[0]
            return self._send(206, data[a:b + 1], ctype, {"Content-Range": f"bytes {a}-{b}/{size}"}, head=head)
        boundary = "GEOEVBOUNDARY"
        parts = []
        for a, b in spans:
            parts.append(
                f"--{boundary}\r\nContent-Type: {ctype}\r\nContent-Range: bytes {a}-{b}/{size}\r\n\r\n".encode()
                + data[a:b + 1] + b"\r\n"
            )
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self._send(206, body, f"multipart/byteranges; boundary={boundary}", head=head)

    @staticmethod
    def _parse_ranges(header: str, size: int):
        if not header.startswith("bytes="):
            return None
        spans = []
        for part in header[6:].split(","):
            m = _RANGE.match(part)
            if not m or (not m[1] and not m[2]):
                return None
            if m[1]:
                a = int(m[1])
                b = min(int(m[2]), size - 1) if m[2] else size - 1
            else:  # suffix range: the last n bytes
                a, b = max(size - int(m[2]), 0), size - 1
            if a >= size or a > b:
                return None
            spans.append((a, b))
        return spans


def serve(root: Path, api=None) -> RangeServer:
    """Start a :class:`RangeServer` on 127.0.0.1 in a daemon thread."""
    server = RangeServer(root, api=api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
