"""Analyst review: confirm or override a scene's automatic railcar count.

An analyst looks at a scene with its detections drawn and either confirms the automatic
count, gives their own count (with an optional interval), or corrects it by marking false
detections (by ``detection_id``) and missed cars (by lon/lat position or polygon). Each
review names who made it, when and why, and is kept in ``DIR/<aoi>/review.json``::

    {"aoi": "tumangang",
     "reviews": [{"scene_id": "...", "who": "A. Analyst", "when": "2026-11-21T10:00:00+00:00",
                  "why": "two tank cars hidden by the catenary shadow",
                  "count": 75, "count_low": 75, "count_high": 75,
                  "false_detections": ["d-0012"],
                  "missed": [{"lon": 130.6021, "lat": 42.4207}]}]}

Entries are never rewritten: a later entry for the same scene supersedes an earlier one and
the file keeps the history. :func:`apply_reviews` puts the reviewed values on the count
records, keeping the automatic count as ``count_auto``.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from geo_evidence._io import atomic_write_json
from geo_evidence.errors import ReviewError

__all__ = ["add_review", "apply_reviews", "load_reviews", "make_review", "review_path", "validate_review"]

REVIEW_FILE = "review.json"


def review_path(aoi_id: str, *, out_dir: str | Path = "geoev-out") -> Path:
    """Where the reviews of ``aoi_id`` live: ``out_dir/<aoi_id>/review.json``."""
    return Path(out_dir) / aoi_id / REVIEW_FILE


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_missed(item: Any, *, where: str) -> dict:
    # A missed car is a point {"lon", "lat"} or a polygon {"polygon": [[lon, lat], ...]}.
    if not isinstance(item, Mapping):
        raise ReviewError(f"{where}: a missed car must be {{'lon': .., 'lat': ..}} or {{'polygon': [[lon, lat], ...]}}, got {item!r}.")
    if "polygon" in item:
        ring = item["polygon"]
        ok = isinstance(ring, Sequence) and len(ring) >= 3 and all(
            isinstance(p, Sequence) and len(p) == 2 and all(isinstance(v, (int, float)) and math.isfinite(v) for v in p) for p in ring
        )
        if not ok:
            raise ReviewError(f"{where}: a missed-car polygon needs at least three [lon, lat] pairs, got {ring!r}.")
        points = [tuple(float(v) for v in p) for p in ring]
        out = {"polygon": [list(p) for p in points]}
    else:
        lon, lat = item.get("lon"), item.get("lat")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (lon, lat)):
            raise ReviewError(f"{where}: a missed car needs numeric 'lon' and 'lat', got {item!r}.")
        points = [(float(lon), float(lat))]
        out = {"lon": float(lon), "lat": float(lat)}
    for lon, lat in points:
        if abs(lon) > 180 or abs(lat) > 90:
            raise ReviewError(f"{where}: missed-car position ({lon}, {lat}) is not lon/lat in degrees; give EPSG:4326 lon, lat.")
    return out


def validate_review(entry: Any, *, scene_ids: Iterable[str] | None = None, detection_ids: Iterable[str] | None = None) -> dict:
    """Check one review entry and return it normalised.

    Parameters
    ----------
    entry : dict
        ``scene_id``, ``who``, ``why`` (non-empty strings), optional ``when`` (ISO 8601),
        ``count`` / ``count_low`` / ``count_high`` (non-negative ints, low <= count <= high),
        ``false_detections`` (detection ids), ``missed`` (points or polygons in lon/lat).
        An entry with none of count, false detections and missed cars confirms the
        automatic count.
    scene_ids : iterable of str, optional
        Known scenes; a review of any other scene is refused.
    detection_ids : iterable of str, optional
        Known detection ids of that scene; an unknown false detection is refused.

    Raises
    ------
    ReviewError
        Naming the entry, the field and what to give instead.
    """
    if not isinstance(entry, Mapping):
        raise ReviewError(f"a review entry must be a JSON object, got {type(entry).__name__}.")
    scene = entry.get("scene_id")
    where = f"review of scene {scene!r}"
    if not isinstance(scene, str) or not scene:
        raise ReviewError(f"review entry {dict(entry)!r} has no 'scene_id'; name the scene it reviews.")
    if scene_ids is not None:
        known = set(scene_ids)
        if scene not in known:
            raise ReviewError(f"{where}: unknown scene; known scenes: {', '.join(sorted(known)) or 'none'}.")
    for field in ("who", "why"):
        value = entry.get(field)
        if not isinstance(value, str) or not value.strip():
            raise ReviewError(f"{where}: missing '{field}'; every review must say who made it and why.")
    when = entry.get("when")
    if when is None:
        when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:
        parsed = datetime.fromisoformat(str(when).replace("Z", "+00:00"))
    except ValueError:
        raise ReviewError(f"{where}: 'when' = {when!r} is not an ISO 8601 date-time such as 2026-11-21T10:00:00+00:00.") from None
    out: dict[str, Any] = {"scene_id": scene, "who": entry["who"].strip(), "when": parsed.isoformat(), "why": entry["why"].strip()}

    for field in ("count", "count_low", "count_high"):
        value = entry.get(field)
        if value is None:
            continue
        if not _is_int(value) or value < 0:
            raise ReviewError(f"{where}: '{field}' must be a non-negative whole number of railcars, got {value!r}.")
        out[field] = value
    if ("count_low" in out or "count_high" in out) and "count" not in out:
        raise ReviewError(f"{where}: an interval (count_low/count_high) needs a reviewed 'count' too.")
    if "count" in out:
        low, high = out.get("count_low", out["count"]), out.get("count_high", out["count"])
        if not low <= out["count"] <= high:
            raise ReviewError(f"{where}: need count_low <= count <= count_high, got {low} <= {out['count']} <= {high}.")

    false = entry.get("false_detections") or []
    if isinstance(false, (str, bytes)) or not isinstance(false, Sequence):
        raise ReviewError(f"{where}: 'false_detections' must be a list of detection ids, got {false!r}.")
    false = [str(d) for d in false]
    if len(set(false)) != len(false):
        raise ReviewError(f"{where}: 'false_detections' lists a detection twice: {false!r}.")
    if detection_ids is not None and false:
        known_det = {str(d) for d in detection_ids}
        unknown = [d for d in false if d not in known_det]
        if unknown:
            raise ReviewError(f"{where}: unknown detection id(s) {unknown!r}; use the detection_id values of detections/{scene}.geojson.")
    missed = entry.get("missed") or []
    if not isinstance(missed, Sequence) or isinstance(missed, (str, bytes)):
        raise ReviewError(f"{where}: 'missed' must be a list of positions or polygons, got {missed!r}.")
    if false:
        out["false_detections"] = false
    if missed:
        out["missed"] = [_check_missed(m, where=where) for m in missed]
    return out


def load_reviews(source: str | Path | Mapping | Sequence) -> list[dict]:
    """Read and validate reviews from a ``review.json`` path, its parsed dict, or a list of entries.

    Returns the validated entries in file order (later entries supersede earlier ones).
    """
    label = "<reviews>"
    data: Any = source
    if isinstance(source, (str, Path)):
        label = str(source)
        try:
            data = json.loads(Path(source).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ReviewError(f"review file {label!r} does not exist; add a review with `geoev review add`.") from None
        except ValueError as exc:
            raise ReviewError(f"review file {label!r} is not JSON ({exc}); fix or remove it.") from None
    if isinstance(data, Mapping):
        entries = data.get("reviews")
    else:
        entries = data
    if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)):
        raise ReviewError(f"review file {label!r} must be {{'aoi': ..., 'reviews': [...]}}; got {type(data).__name__}.")
    out = []
    for i, entry in enumerate(entries):
        try:
            out.append(validate_review(entry))
        except ReviewError as exc:
            raise ReviewError(f"{label}: entry {i}: {exc}") from None
    return out


def make_review(
    scene_id: str,
    *,
    who: str,
    why: str,
    count: int | None = None,
    count_low: int | None = None,
    count_high: int | None = None,
    false_detections: Sequence[str] = (),
    missed: Sequence[Mapping] = (),
    when: str | datetime | None = None,
) -> dict:
    """Build and validate one review entry (``when`` defaults to now, UTC)."""
    entry: dict[str, Any] = {"scene_id": scene_id, "who": who, "why": why}
    if when is not None:
        entry["when"] = when.isoformat() if isinstance(when, datetime) else when
    for key, value in (("count", count), ("count_low", count_low), ("count_high", count_high)):
        if value is not None:
            entry[key] = value
    if false_detections:
        entry["false_detections"] = list(false_detections)
    if missed:
        entry["missed"] = list(missed)
    return validate_review(entry)


def add_review(
    aoi_id: str,
    review: Mapping,
    *,
    out_dir: str | Path = "geoev-out",
) -> Path:
    """Append one review to ``out_dir/<aoi_id>/review.json`` (atomically) and return its path.

    The scene must be one of ``counts.json``; false detections must be ids present in the
    scene's detections file. Nothing is written when the entry is refused.
    """
    adir = Path(out_dir) / aoi_id
    counts_path = adir / "counts.json"
    try:
        records = json.loads(counts_path.read_text(encoding="utf-8"))["records"]
    except FileNotFoundError:
        raise ReviewError(f"no counts at {str(counts_path)!r}; run `geoev count --aoi {aoi_id}` before reviewing.") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ReviewError(f"counts file {str(counts_path)!r} is malformed ({exc}); re-run `geoev count --aoi {aoi_id}`.") from None
    by_id = {r["scene_id"]: r for r in records}
    entry = validate_review(review, scene_ids=by_id)
    det_ids = None
    det_file = by_id[entry["scene_id"]].get("detections_file")
    if entry.get("false_detections") and det_file and (adir / det_file).is_file():
        feats = json.loads((adir / det_file).read_text(encoding="utf-8")).get("features", [])
        det_ids = [_detection_id(f, i) for i, f in enumerate(feats)]
        entry = validate_review(entry, detection_ids=det_ids)
    # A review of a scene that has no automatic count must give the count itself.
    apply_reviews([by_id[entry["scene_id"]]], [entry])
    path = adir / REVIEW_FILE
    existing = load_reviews(path) if path.is_file() else []
    atomic_write_json(path, {"aoi": aoi_id, "reviews": [*existing, entry]})
    return path


def _detection_id(feature: Mapping, index: int) -> str:
    props = feature.get("properties") or {}
    value = props.get("detection_id", feature.get("id"))
    return str(value) if value is not None else str(index)


def apply_reviews(records: Sequence[Mapping], reviews: Sequence[Mapping] | Mapping) -> list[dict]:
    """Put analyst reviews on count records.

    Parameters
    ----------
    records : list of dict
        Per-scene count records (contract "Per-scene count record"). Not modified.
    reviews : list of dict or dict
        Review entries, or the parsed ``review.json``. The last entry for a scene wins.

    Returns
    -------
    list of dict
        Copies of ``records``. A reviewed record keeps the automatic values as
        ``count_auto`` / ``count_low_auto`` / ``count_high_auto``, carries the reviewed
        ``count`` / ``count_low`` / ``count_high``, ``reviewed: True`` and ``review``
        (who, when, why, corrections). A given count sets the interval to the analyst's
        (exact unless ``count_low``/``count_high`` are given); corrections alone shift
        the automatic count and interval by (missed - false detections); an entry with
        neither confirms the automatic values.

    Raises
    ------
    ReviewError
        An entry is malformed, names a scene not in ``records``, or corrects a scene that
        has no automatic count without giving a count.
    """
    entries = load_reviews(reviews)
    out = [copy.deepcopy(dict(r)) for r in records]
    index = {r.get("scene_id"): i for i, r in enumerate(out)}
    latest: dict[str, dict] = {}
    for entry in entries:
        if entry["scene_id"] not in index:
            raise ReviewError(
                f"review of scene {entry['scene_id']!r}: unknown scene; it is not among the {len(out)} counted scenes "
                "(check the scene id with `geoev count --format json`)."
            )
        latest[entry["scene_id"]] = entry
    for scene_id, entry in latest.items():
        rec = out[index[scene_id]]
        # Idempotent: records that already carry a review start again from the automatic values.
        auto = rec["count_auto"] if "count_auto" in rec else rec.get("count")
        auto_low = rec["count_low_auto"] if "count_low_auto" in rec else rec.get("count_low")
        auto_high = rec["count_high_auto"] if "count_high_auto" in rec else rec.get("count_high")
        delta = len(entry.get("missed", [])) - len(entry.get("false_detections", []))
        if "count" in entry:
            count = entry["count"]
            low = entry.get("count_low", count)
            high = entry.get("count_high", count)
        elif auto is None:
            raise ReviewError(
                f"review of scene {scene_id!r}: the scene has no automatic count (status {rec.get('status')!r}); "
                "give the analyst's own 'count'."
            )
        else:
            count = max(auto + delta, 0)
            low = max((auto_low if auto_low is not None else auto) + delta, 0)
            high = max((auto_high if auto_high is not None else auto) + delta, 0)
        rec["count_auto"], rec["count_low_auto"], rec["count_high_auto"] = auto, auto_low, auto_high
        rec["count"], rec["count_low"], rec["count_high"] = count, min(low, count), max(high, count)
        rec["reviewed"] = True
        rec["review"] = {
            k: entry[k] for k in ("who", "when", "why", "false_detections", "missed") if k in entry
        }
        rec["review"]["action"] = "override" if "count" in entry else ("correct" if delta or entry.get("false_detections") or entry.get("missed") else "confirm")
    for rec in out:
        rec.setdefault("reviewed", False)
    return out
