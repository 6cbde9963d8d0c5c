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
