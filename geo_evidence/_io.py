"""Atomic file writes and checksums: a reader never sees a half-written output."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def atomic_write_with(path: str | Path, writer) -> Path:
    """Call ``writer(tmp_path)`` to produce the file, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        writer(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


class ChecksumCache:
    """sha256 of local files, remembered by what ``os.stat`` says about them.

    An entry is trusted only while the file's device, inode, size, modification time and
    status-change time (ctime, which no user can set back) are all as they were when it
    was hashed, and only if the file had not been modified in the two seconds before
    that hash began: a write within one timestamp tick of the hash could otherwise leave
    every field unchanged ("racy" entries are hashed again next time). The entries live
    in one JSON file, written atomically; a missing or damaged file is an empty cache.

    Parameters
    ----------
    path : path
        The JSON file holding the entries (created on :meth:`save`).
    """

    #: Nanoseconds a file must have been left alone before its hash is trusted later.
    RACY_NS = 2_000_000_000

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._new: dict[str, dict] = {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self._entries = {str(k): v for k, v in data["files"].items() if isinstance(v, dict)}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self._entries = {}

    @staticmethod
    def _signature(st: os.stat_result) -> list[int]:
        return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]

    def lookup(self, path: str | Path) -> str | None:
        """The remembered sha256 of ``path`` if the file is provably unchanged, else None."""
        key = str(path)
        with self._lock:
            entry = self._new.get(key) or self._entries.get(key)
        if not entry:
            return None
        try:
            st = os.stat(key)
        except OSError:
            return None
        sig = self._signature(st)
        hashed_at = entry.get("hashed_at_ns", 0)
        if entry.get("stat") != sig or max(st.st_mtime_ns, st.st_ctime_ns) >= hashed_at - self.RACY_NS:
            return None
        sha = entry.get("sha256")
        return sha if isinstance(sha, str) and len(sha) == 64 else None

    def checksum(self, path: str | Path, *, trust: bool = True) -> str:
        """sha256 of ``path``: remembered when ``trust`` and unchanged, else computed and remembered."""
        if trust:
            sha = self.lookup(path)
            if sha is not None:
                return sha
        key = str(path)
        hashed_at = time.time_ns()
        before = os.stat(key)
        sha = sha256_file(key)
        after = os.stat(key)
        if self._signature(before) == self._signature(after):  # not written to while hashed
            with self._lock:
                self._new[key] = {"stat": self._signature(after), "hashed_at_ns": hashed_at, "sha256": sha}
        return sha

    def save(self) -> None:
        """Merge the new entries into the file (atomically); errors leave the old file."""
        with self._lock:
            if not self._new:
                return
            new = dict(self._new)
        try:
            try:
                current = json.loads(self.path.read_text(encoding="utf-8"))["files"]
                current = current if isinstance(current, dict) else {}
            except (OSError, ValueError, KeyError, TypeError):
                current = {}
            current.update(new)
            atomic_write_json(self.path, {"version": 1, "files": current})
        except OSError:
            pass  # a cache that cannot be written costs a re-hash next time, nothing more


def _json_default(obj: Any):
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
