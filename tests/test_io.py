"""Atomic writes: a reader never sees a half-written file, and failures leave nothing behind."""

import hashlib
import json

import pytest

from geo_evidence._io import atomic_write_json, atomic_write_with, sha256_file


def test_atomic_json_round_trip_and_checksum(tmp_path):
    path = atomic_write_json(tmp_path / "a" / "b.json", {"count": 73, "quote": "plus de 70 wagons"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"count": 73, "quote": "plus de 70 wagons"}
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]  # no temporary file left


def test_failed_writer_keeps_previous_file(tmp_path):
    path = atomic_write_json(tmp_path / "out.json", {"v": 1})

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_with(path, broken)
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_checksum_cache_remembers_only_provably_unchanged_files(tmp_path):
    import os
    import time

    from geo_evidence._io import ChecksumCache

    old = tmp_path / "old.tif"
    old.write_bytes(b"A" * 5000)
    time.sleep(2.1)  # older than the racy window when hashed below
    fresh = tmp_path / "fresh.tif"
    fresh.write_bytes(b"B" * 5000)

    cache = ChecksumCache(tmp_path / "sums.json")
    assert cache.lookup(old) is None  # nothing remembered yet
    assert cache.checksum(old) == hashlib.sha256(b"A" * 5000).hexdigest()
    assert cache.checksum(fresh) == hashlib.sha256(b"B" * 5000).hexdigest()
    assert cache.lookup(old) == hashlib.sha256(b"A" * 5000).hexdigest()
    # Written less than two seconds before it was hashed: a later write in the same
    # timestamp tick could go unseen, so it is not trusted.
    assert cache.lookup(fresh) is None
    cache.save()
    again = ChecksumCache(tmp_path / "sums.json")
    assert again.lookup(old) == hashlib.sha256(b"A" * 5000).hexdigest()

    # Same size, other bytes, modification time put back: ctime still tells.
    st = os.stat(old)
    old.write_bytes(b"C" * 5000)
    os.utime(old, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert again.lookup(old) is None
    assert again.checksum(old) == hashlib.sha256(b"C" * 5000).hexdigest()
    # trust=False hashes even a remembered file.
    assert again.checksum(old, trust=False) == hashlib.sha256(b"C" * 5000).hexdigest()


def test_damaged_checksum_cache_is_an_empty_cache(tmp_path):
    from geo_evidence._io import ChecksumCache

    (tmp_path / "sums.json").write_text("{not json")
    f = tmp_path / "x.bin"
    f.write_bytes(b"xyz")
    cache = ChecksumCache(tmp_path / "sums.json")
    assert cache.lookup(f) is None
    assert cache.checksum(f) == hashlib.sha256(b"xyz").hexdigest()
    cache.save()
    assert json.loads((tmp_path / "sums.json").read_text())["files"][str(f)]["sha256"] == hashlib.sha256(b"xyz").hexdigest()
