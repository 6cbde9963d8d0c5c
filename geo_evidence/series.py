"""Railcar counts over time: an xarray Dataset built from per-scene count records.

:func:`build_series` turns the per-scene count records of ``geoev count`` (see
``docs/CONTRACTS.md``, "Per-scene count record") into a :class:`xarray.Dataset` indexed by
acquisition time. :func:`baseline` summarises a trailing window before a date (the "no more
than 20 railcars in five years" of a claim), and :func:`anomaly` says how far a date stands
above such a baseline, in point and in interval terms.

Failed scenes (``error``, ``no_coverage``, ...) stay in the series with their status and
NaN counts, so that charts can mark them; they are never used for a baseline.
"""

from __future__ import annotations

import logging
import math
import os
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from geo_evidence._io import atomic_write_with
from geo_evidence.errors import SeriesError

log = logging.getLogger(__name__)

__all__ = [
    "CAR_TYPES",
    "MAX_OBSCURED_FRACTION",
    "SeriesError",
    "anomaly",
    "baseline",
    "build_series",
    "is_usable",
    "parse_day",
    "save_series",
]

#: Car types in the order the image core names them; other types found in records follow.
CAR_TYPES = ("box", "tank", "gondola", "flat", "hopper", "locomotive", "unknown")

#: A scene whose obscured fraction exceeds this is not used for baselines or verdicts
#: (unless an analyst reviewed its count): a half-hidden yard undercounts.
MAX_OBSCURED_FRACTION = 0.2

#: Statuses whose counts may be used (subject to :data:`MAX_OBSCURED_FRACTION`).
USABLE_STATUSES = ("ok", "partial")



# --------------------------------------------------------------------------- helpers


def _to_utc_naive(value: Any, *, label: str) -> np.datetime64:
    """An ISO 8601 string (or datetime) as a naive UTC ``datetime64[ns]``.

    NetCDF and pandas indexes want one time zone; UTC is the only honest one for scenes.
    """
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise SeriesError(f"{label}: datetime {value!r} is not ISO 8601; write it as 2023-10-05T02:10:00+00:00.") from None
    elif isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    else:
        raise SeriesError(f"{label}: datetime {value!r} is not ISO 8601; write it as 2023-10-05T02:10:00+00:00.")
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return np.datetime64(dt, "ns")


def parse_day(value: Any, *, label: str = "date") -> date:
    """A calendar day from ``YYYY-MM-DD``, a datetime string, a date or a datetime64."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[D]").item()
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            try:
                return date.fromisoformat(text)
            except ValueError:
                pass
        else:
            try:
                return _to_utc_naive(text, label=label).astype("datetime64[D]").item()
            except SeriesError:
                pass
    raise SeriesError(f"{label} {value!r} is not a date; write it as YYYY-MM-DD (e.g. 2023-10-05).")


def _years_before(day: date, years: int) -> date:
    """The same calendar day ``years`` earlier (29 February falls back to the 28th)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def is_usable(status: str, count: float, obscured_fraction: float, *, reviewed: bool = False) -> bool:
    """Whether a scene's count can stand as evidence.

    A reviewed count is used as the analyst gave it. Otherwise the scene must have a count,
    a usable status (``ok`` or ``partial``) and at most :data:`MAX_OBSCURED_FRACTION` of
    the AOI hidden.
    """
    if count is None or (isinstance(count, float) and math.isnan(count)):
        return False
    if reviewed:
        return True
    if status not in USABLE_STATUSES:
        return False
    frac = 0.0 if obscured_fraction is None or math.isnan(obscured_fraction) else obscured_fraction
    return frac <= MAX_OBSCURED_FRACTION


# --------------------------------------------------------------------------- build


def build_series(records: Iterable[dict], *, aoi: str | None = None):
    """Build the time series of an AOI from per-scene count records.

    Parameters
    ----------
    records : iterable of dict
        Per-scene count records (``docs/CONTRACTS.md``). Failed scenes (null counts) are
        kept with NaN counts and their ``status``; a record without a ``datetime`` cannot be
        placed in time: it is left out, logged, and named in ``attrs["undated_scenes"]``.
    aoi : str, optional
        AOI id; defaults to the records' ``aoi``. Records of another AOI raise.

    Returns
    -------
    xarray.Dataset
        Dimensions ``time`` (sorted), ``track`` and ``car_type``. Variables: ``count``,
        ``count_low``, ``count_high``, ``count_auto`` (the automatic count of a reviewed
        scene), ``obscured_fraction`` (time); ``track_count``,
        ``track_count_low``, ``track_count_high``, ``track_obscured_fraction`` (time,
        track); ``by_type`` (time, car_type; NaN where a scene gave no by-type counts).
        Coordinates along ``time``: ``scene_id``, ``status``, ``method``, ``gsd_m``,
        ``simulated``, ``reviewed``, ``usable`` (see :func:`is_usable`). Attributes:
        ``aoi``, ``simulated`` (True when any scene is simulated), ``created`` (UTC ISO).

    Raises
    ------
    SeriesError
        No records, no record with a datetime, a malformed datetime, or records of
        several AOIs.
    """
    import xarray as xr

    records = list(records)
    if not records:
        raise SeriesError("no count records to build a series from; run `geoev count --aoi NAME` first.")
    aois = {r.get("aoi") for r in records if r.get("aoi")}
    if aoi is None:
        if len(aois) > 1:
            raise SeriesError(f"count records belong to several AOIs ({', '.join(sorted(aois))}); build one series per AOI.")
        aoi = next(iter(aois), None)
    elif aois - {aoi}:
        raise SeriesError(f"count records of AOI {sorted(aois - {aoi})} cannot go into the series of AOI {aoi!r}; pass only {aoi!r} records.")

    rows, undated = [], []
    for i, rec in enumerate(records):
        label = f"count record {i} (scene {rec.get('scene_id')!r})"
        if rec.get("datetime") is None:
            # A scene whose date could not be found cannot sit on a time axis; one such
            # scene must not sink the whole series, so it is set aside and named.
            undated.append(str(rec.get("scene_id") or f"scene-{i}"))
            continue
        rows.append((_to_utc_naive(rec["datetime"], label=label), str(rec.get("scene_id") or f"scene-{i}"), rec))
    if undated:
        log.warning("%d scene(s) without a datetime left out of the series: %s", len(undated), ", ".join(undated))
    if not rows:
        raise SeriesError(
            f"none of the {len(records)} count record(s) has a datetime (scenes {', '.join(undated[:5])}); "
            "give the scenes a STAC datetime, a TIFFTAG_DATETIME or an ISO date in the file name."
        )
    rows.sort(key=lambda r: (r[0], r[1]))

    tracks: list[str] = []
    types: list[str] = []
    for _, _, rec in rows:
        for t in rec.get("tracks") or []:
            if t.get("name") is not None and str(t["name"]) not in tracks:
                tracks.append(str(t["name"]))
        for k in rec.get("by_type") or {}:
            if k not in types:
                types.append(str(k))
    types = [t for t in CAR_TYPES if t in types] + sorted(t for t in types if t not in CAR_TYPES)

    n, nt, nc = len(rows), len(tracks), len(types)
    count, low, high, obsc, auto = (np.full(n, np.nan) for _ in range(5))
    t_count, t_low, t_high, t_obsc = (np.full((n, nt), np.nan) for _ in range(4))
    by_type = np.full((n, nc), np.nan)
    confusion = np.full(n, TYPE_CONFUSION)
    gsd = np.full(n, np.nan)
    status, method, scene_ids = [], [], []
    simulated = np.zeros(n, dtype=bool)
    reviewed = np.zeros(n, dtype=bool)
    usable = np.zeros(n, dtype=bool)
    for i, (_, sid, rec) in enumerate(rows):
        scene_ids.append(sid)
        status.append(str(rec.get("status") or "unknown"))
        method.append(str(rec.get("method") or ""))
        gsd[i] = _num(rec.get("gsd_m"))
        simulated[i] = bool(rec.get("simulated", False))
        reviewed[i] = bool(rec.get("reviewed", False))
        obsc[i] = _num(rec.get("obscured_fraction"))
        auto[i] = _num(rec.get("count_auto"))
        if rec.get("count") is not None:
            count[i] = float(rec["count"])
            # A record without an interval is taken at its word: low = high = count.
            low[i] = _num(rec.get("count_low", rec["count"]))
            high[i] = _num(rec.get("count_high", rec["count"]))
            bt = rec.get("by_type")
            if bt:  # an empty or missing by_type means "not classified", not "zero of each"
                by_type[i, :] = 0.0
                if rec.get("type_confusion") is not None:
                    confusion[i] = _num(rec["type_confusion"])
                for k, v in bt.items():
                    by_type[i, types.index(str(k))] = _num(v)
            for t in rec.get("tracks") or []:
                if t.get("name") is None:
                    continue
                j = tracks.index(str(t["name"]))
                t_count[i, j] = _num(t.get("count"))
                t_low[i, j] = _num(t.get("count_low", t.get("count")))
                t_high[i, j] = _num(t.get("count_high", t.get("count")))
                t_obsc[i, j] = _num(t.get("obscured_fraction"))
        usable[i] = is_usable(status[i], count[i], obsc[i], reviewed=reviewed[i])

    times = np.array([r[0] for r in rows], dtype="datetime64[ns]")
    ds = xr.Dataset(
        data_vars={
            "count": ("time", count, {"long_name": "railcars in the AOI", "units": "1"}),
            "count_low": ("time", low, {"long_name": "lower bound of the railcar count", "units": "1"}),
            "count_high": ("time", high, {"long_name": "upper bound of the railcar count", "units": "1"}),
            "count_auto": ("time", auto, {"long_name": "automatic count before analyst review (NaN: not reviewed)"}),
            "obscured_fraction": ("time", obsc, {"long_name": "fraction of the AOI hidden (cloud, nodata)"}),
            "track_count": (("time", "track"), t_count, {"long_name": "railcars per track"}),
            "track_count_low": (("time", "track"), t_low, {"long_name": "lower bound per track"}),
            "track_count_high": (("time", "track"), t_high, {"long_name": "upper bound per track"}),
            "track_obscured_fraction": (("time", "track"), t_obsc, {"long_name": "fraction of the track hidden"}),
            "by_type": (("time", "car_type"), by_type, {"long_name": "railcars per car type"}),
            "type_confusion": ("time", confusion, {"long_name": "share of cars whose type guess may be wrong"}),
        },
        coords={
            "time": ("time", times),
            "track": ("track", np.array(tracks, dtype=object)),
            "car_type": ("car_type", np.array(types, dtype=object)),
            "scene_id": ("time", np.array(scene_ids, dtype=object)),
            "status": ("time", np.array(status, dtype=object)),
            "method": ("time", np.array(method, dtype=object)),
            "gsd_m": ("time", gsd, {"units": "m", "long_name": "ground sample distance"}),
            "simulated": ("time", simulated),
            "reviewed": ("time", reviewed),
            "usable": ("time", usable),
        },
        attrs={
            "aoi": str(aoi or ""),
            "simulated": bool(simulated.any()),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "undated_scenes": ", ".join(undated),
            "title": f"railcar counts at {aoi}" + (" (SIMULATED scenes)" if simulated.any() else ""),
        },
    )
    return ds


# --------------------------------------------------------------------------- save


def save_series(ds, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``series.nc`` (netCDF4) and ``series.csv`` into ``out_dir``, atomically.

    The CSV has one row per scene (totals, status, by-type columns ``type_<name>``); the
    NetCDF holds everything, per track included. Booleans are stored as 0/1 because
    netCDF attributes cannot be booleans.

    Returns
    -------
    dict
        ``{"netcdf": path, "csv": path}``.
    """
    out = Path(out_dir)
    nc_path, csv_path = out / "series.nc", out / "series.csv"
    enc = ds.copy()
    enc.attrs = {k: (int(v) if isinstance(v, bool) else v) for k, v in ds.attrs.items()}
    for name in ("simulated", "reviewed", "usable"):
        if name in enc.coords:
            enc = enc.assign_coords({name: enc[name].astype("int8")})
    for name in ("track", "car_type", "scene_id", "status", "method"):
        if name in enc.coords:
            # netCDF4 refuses an empty object array for a string variable: give it a dtype.
            values = enc[name].values.astype(str) if enc[name].size else np.array([], dtype="U1")
            enc = enc.assign_coords({name: (enc[name].dims, values)})
            enc[name].encoding["dtype"] = str
    atomic_write_with(nc_path, lambda tmp: enc.to_netcdf(tmp, engine="netcdf4"))

    table = series_table(ds)
    atomic_write_with(csv_path, lambda tmp: table.to_csv(tmp, index=False))
    return {"netcdf": nc_path, "csv": csv_path}


def series_table(ds):
    """One row per scene as a :class:`pandas.DataFrame` (what ``series.csv`` holds)."""
    import pandas as pd

    frame = pd.DataFrame(
        {
            "datetime": [np.datetime_as_string(t, unit="s") + "Z" for t in ds["time"].values],
            "scene_id": [str(s) for s in ds["scene_id"].values],
            "status": [str(s) for s in ds["status"].values],
            "method": [str(s) for s in ds["method"].values],
            "gsd_m": ds["gsd_m"].values,
            "count": ds["count"].values,
            "count_low": ds["count_low"].values,
            "count_high": ds["count_high"].values,
            "obscured_fraction": ds["obscured_fraction"].values,
            "usable": ds["usable"].values.astype(bool),
            "reviewed": ds["reviewed"].values.astype(bool),
            "simulated": ds["simulated"].values.astype(bool),
        }
    )
    for j, name in enumerate(ds["car_type"].values):
        frame[f"type_{name}"] = ds["by_type"].values[:, j]
    return frame


# --------------------------------------------------------------------------- baselines


def _statistic(values: np.ndarray, statistic: str) -> float:
    if statistic == "max":
        return float(np.max(values))
    if statistic == "min":
        return float(np.min(values))
    if statistic == "median":
        return float(np.median(values))
    if statistic == "mean":
        return float(np.mean(values))
    q = _percentile_of(statistic)
    return float(np.percentile(values, q))


def _percentile_of(statistic: str) -> float:
    m = re.fullmatch(r"p(\d{1,2}(?:\.\d+)?|100)", str(statistic))
    if not m:
        raise SeriesError(
            f"baseline statistic {statistic!r} is unknown; use 'max', 'median', 'mean', 'min' or 'pNN' (e.g. 'p90')."
        )
    return float(m.group(1))


def _check_statistic(statistic: str) -> None:
    if statistic not in ("max", "min", "median", "mean"):
        _percentile_of(statistic)


#: Share of cars whose type guess may be wrong, for records that do not say
#: (``type_confusion``). The image core's type accuracy on held-out scenes is 60-80 %
#: (benchmarks/accuracy.py), so automatic by-type intervals allow 30 % confusion; a record
#: whose types an analyst verified can carry ``type_confusion: 0``.
TYPE_CONFUSION = 0.3


def _variables(ds, car_type: str | None):
    """(count, low, high) arrays for the total or for one car type."""
    if car_type is None:
        return ds["count"].values, ds["count_low"].values, ds["count_high"].values
    if car_type not in [str(c) for c in ds["car_type"].values]:
        nan = np.full(ds.sizes["time"], np.nan)
        return nan, nan, nan
    by = ds["by_type"].sel(car_type=car_type).values
    total, lo, hi = ds["count"].values, ds["count_low"].values, ds["count_high"].values
    # A by-type count is uncertain twice over: the scene's count interval, and the type
    # guesses. Up to a share e of this type's cars may really be another type, and up to e
    # of the other cars may really be this type (e: the record's `type_confusion`).
    e = ds["type_confusion"].values if "type_confusion" in ds else TYPE_CONFUSION
    with np.errstate(invalid="ignore", divide="ignore"):
        lo_t = np.where(total > 0, np.floor(by * (1 - e) * lo / total), by)
        hi_t = np.where(total > 0, np.ceil((by + e * (total - by)) * hi / total), by)
    return by, lo_t, hi_t


def baseline(
    ds,
    *,
    end,
    years: int = 5,
    start=None,
    statistic: str = "max",
    include_end: bool = False,
    car_type: str | None = None,
) -> dict:
    """A statistic of the counts over the trailing window before ``end``.

    Parameters
    ----------
    ds : xarray.Dataset
        A series from :func:`build_series`.
    end : str or date
        The day the window leads up to (``YYYY-MM-DD``).
    years : int
        Window length in calendar years: the window starts on the same day ``years``
        earlier (ignored when ``start`` is given).
    start : str or date, optional
        First day of the window, inclusive, instead of ``years``.
    statistic : {"max", "median", "mean", "min", "pNN"}
        ``"p90"`` is the 90th percentile (linear interpolation).
    include_end : bool
        Whether scenes on ``end`` itself belong to the window. The default leaves them out,
        so that a date is never compared with a baseline that contains it.
    car_type : str, optional
        Use the by-type count of this car type instead of the total.

    Returns
    -------
    dict
        ``statistic``, ``start``, ``end`` (the first and last days of the window, ISO),
        ``value``, ``low``, ``high``, ``n_scenes``, ``scene_ids`` (usable scenes in the
        window), ``scene_id`` (for max/min: the scene that holds it), ``car_type``.
        ``value`` / ``low`` / ``high`` are None when no usable scene lies in the window.
        The interval is the statistic of the lower bounds and of the upper bounds: every
        statistic here is monotone in each count, so the true statistic lies between them.
    """
    _check_statistic(statistic)
    if years is None or int(years) < 1:
        raise SeriesError(f"baseline `years` must be >= 1, got {years!r}.")
    end_day = parse_day(end, label="baseline end")
    first = parse_day(start, label="baseline start") if start is not None else _years_before(end_day, int(years))
    last = end_day if include_end else end_day - timedelta(days=1)
    if last < first:
        raise SeriesError(f"baseline window is empty: start {first} is after end {last}; give an earlier start.")

    days = ds["time"].values.astype("datetime64[D]")
    in_window = (days >= np.datetime64(first)) & (days <= np.datetime64(last))
    value, lo, hi = _variables(ds, car_type)
    mask = in_window & ds["usable"].values.astype(bool) & np.isfinite(value)
    ids = [str(s) for s in ds["scene_id"].values[mask]]
    out = {
        "statistic": statistic,
        "start": first.isoformat(),
        "end": last.isoformat(),
        "years": None if start is not None else int(years),
        "car_type": car_type,
        "value": None,
        "low": None,
        "high": None,
        "n_scenes": int(mask.sum()),
        "scene_ids": ids,
        "scene_id": None,
    }
    if not mask.any():
        return out
    v, l, h = value[mask], lo[mask], hi[mask]
    out["value"] = _clean(_statistic(v, statistic))
    out["low"] = _clean(_statistic(l, statistic))
    out["high"] = _clean(_statistic(h, statistic))
    if statistic in ("max", "min"):
        k = int(np.argmax(v) if statistic == "max" else np.argmin(v))
        out["scene_id"] = ids[k]
    return out


def _clean(x: float) -> float | int:
    """Whole numbers as int, others rounded: baselines are read by people."""
    return int(x) if float(x).is_integer() else round(float(x), 2)


def anomaly(ds, date, baseline: dict, *, tolerance_days: int = 0, car_type: str | None = None) -> dict:
    """How far the count on ``date`` stands above (or below) a baseline.

    The scene used is the usable scene nearest to ``date`` within ``tolerance_days``
    (ties: the narrowest interval).

    Returns
    -------
    dict
        ``date``, ``scene_id``, ``count``, ``low``, ``high``, ``baseline`` (value, low,
        high), ``ratio`` (count / baseline value; None when the baseline is 0 or missing),
        ``ratio_low`` / ``ratio_high`` (low / baseline high, high / baseline low),
        ``excess`` (count - baseline value), ``margin`` (the date's low minus the baseline's
        high: > 0 means the date's interval lies wholly above the baseline's) and
        ``disjoint`` (the two intervals do not overlap). Everything but ``date`` is None
        when no usable scene lies within the tolerance.
    """
    day = parse_day(date, label="anomaly date")
    scene = nearest_scene(ds, day, tolerance_days=tolerance_days, car_type=car_type)
    out = {
        "date": day.isoformat(),
        "scene_id": None,
        "count": None,
        "low": None,
        "high": None,
        "baseline": {k: baseline.get(k) for k in ("statistic", "start", "end", "value", "low", "high", "n_scenes")},
        "ratio": None,
        "ratio_low": None,
        "ratio_high": None,
        "excess": None,
        "margin": None,
        "disjoint": None,
    }
    if scene is None:
        return out
    out.update(scene_id=scene["scene_id"], count=scene["count"], low=scene["count_low"], high=scene["count_high"])
    b, bl, bh = baseline.get("value"), baseline.get("low"), baseline.get("high")
    if b is None:
        return out
    out["excess"] = _clean(scene["count"] - b)
    out["margin"] = _clean(scene["count_low"] - bh)
    out["disjoint"] = bool(scene["count_low"] > bh or scene["count_high"] < bl)
    if b > 0:
        out["ratio"] = round(scene["count"] / b, 2)
    if bh > 0:
        out["ratio_low"] = round(scene["count_low"] / bh, 2)
    if bl > 0:
        out["ratio_high"] = round(scene["count_high"] / bl, 2)
    return out


def scene_rows(ds, *, car_type: str | None = None) -> list[dict]:
    """Every scene of the series as a plain dict (for verdicts and tables)."""
    value, lo, hi = _variables(ds, car_type)
    rows = []
    for i in range(ds.sizes["time"]):
        rows.append(
            {
                "scene_id": str(ds["scene_id"].values[i]),
                "datetime": np.datetime_as_string(ds["time"].values[i], unit="s") + "+00:00",
                "day": ds["time"].values[i].astype("datetime64[D]").item(),
                "count": None if not np.isfinite(value[i]) else _clean(value[i]),
                "count_low": None if not np.isfinite(lo[i]) else _clean(lo[i]),
                "count_high": None if not np.isfinite(hi[i]) else _clean(hi[i]),
                "gsd_m": None if not np.isfinite(ds["gsd_m"].values[i]) else float(ds["gsd_m"].values[i]),
                "status": str(ds["status"].values[i]),
                "method": str(ds["method"].values[i]),
                "obscured_fraction": None
                if not np.isfinite(ds["obscured_fraction"].values[i])
                else float(ds["obscured_fraction"].values[i]),
                "reviewed": bool(ds["reviewed"].values[i]),
                "simulated": bool(ds["simulated"].values[i]),
                "usable": bool(ds["usable"].values[i]) and bool(np.isfinite(value[i])),
            }
        )
    return rows


def nearest_scene(ds, day, *, tolerance_days: int = 0, car_type: str | None = None) -> dict | None:
    """The usable scene nearest to ``day`` within ``tolerance_days`` (or None)."""
    day = parse_day(day)
    best = None
    for row in scene_rows(ds, car_type=car_type):
        gap = abs((row["day"] - day).days)
        if gap > tolerance_days or not row["usable"]:
            continue
        key = (gap, row["count_high"] - row["count_low"])
        if best is None or key < best[0]:
            best = (key, row)
    return None if best is None else best[1]
