"""Verdicts: a claim record against per-scene count records.

The measured quantity is always an interval ``[low, high]`` (the count's interval, a
baseline statistic's interval, or a ratio's interval), and the comparator is applied to the
whole interval, never to the point count alone:

======== ======================== ============================ =========================
wording  comparator, value v      supported when               contradicted when
======== ======================== ============================ =========================
more     ``gt``                   low > v                      high <= v
at least ``ge``                   low >= v                     high < v
approx.  ``approx`` (tolerance r) [low, high] inside the band  [low, high] outside it
at most  ``le``                   high <= v                    low > v
fewer    ``lt``                   high < v                     low >= v
exactly  ``eq``                   low == high == v             v outside [low, high]
======== ======================== ============================ =========================

Anything between is ``inconclusive`` (the interval straddles the threshold).

``approx``: "approximately 73" asserts the true count lies in the band
``v ± max(r·v, 1)`` (``r`` is the claim's ``tolerance``, default 0.1; a count claim's band
is never narrower than ±1 car). The claim is supported when the measured interval lies
wholly inside the band, contradicted when the two do not overlap at all.

``le``: "no more than 20", "at most 20" and "only 20 (seuls 20)" are read as an upper
bound: the true value is at most v. A period claim such as "at most ~20 railcars in the
previous five years" is ``period_statistic`` / ``max`` / ``le 20``: supported when even the
upper bound of the highest count over the period is <= 20. Note that a maximum over the
scenes we have can miss a higher day between them; the verdict names the scenes it used.

A claim is inconclusive, whatever its numbers, when no usable scene lies within its
date tolerance (or in its period): a scene with status ``error``/``no_coverage``/
``obscured``, or ``partial`` with more than ``MAX_OBSCURED_FRACTION`` of the AOI hidden,
is listed with ``used: false`` and why. A count an analyst reviewed (``reviewed: true``)
is used as given.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable

from geo_evidence import series as _series
from geo_evidence.claims._records import DEFAULT_APPROX_TOLERANCE

WORDS = {"gt": "more than", "ge": "at least", "approx": "approximately", "le": "at most", "lt": "fewer than", "eq": "exactly"}
_WHAT = {None: "railcars", "gondola": "gondola (open/ore) cars", "box": "box cars", "tank": "tank cars", "flat": "flat cars",
         "hopper": "hopper cars", "locomotive": "locomotives", "unknown": "cars of unknown type"}
VERDICTS = ("supported", "contradicted", "inconclusive", "not_assessable")


def _fmt(x: float) -> str:
    if x is None:
        return "?"
    if math.isinf(x):
        return "∞"
    return f"{int(x)}" if float(x).is_integer() else f"{x:.2f}".rstrip("0").rstrip(".")


def _interval(lo: float, hi: float) -> str:
    return _fmt(lo) if lo == hi else f"{_fmt(lo)}–{_fmt(hi)}"


def approx_band(value: float, tolerance: float | None, *, min_half_width: float = 1.0) -> tuple[float, float]:
    """The band ``value ± max(tolerance·value, min_half_width)`` an "approximately" asserts."""
    half = max((tolerance or DEFAULT_APPROX_TOLERANCE) * value, min_half_width)
    return value - half, value + half


def judge(comparator: str, value: float, low: float, high: float, *, band: tuple[float, float] | None = None) -> str:
    """``supported`` / ``contradicted`` / ``inconclusive`` for a measured interval.

    See the module docstring for the table. ``band`` is required for ``approx``.
    """
    if comparator == "gt":
        return "supported" if low > value else "contradicted" if high <= value else "inconclusive"
    if comparator == "ge":
        return "supported" if low >= value else "contradicted" if high < value else "inconclusive"
    if comparator == "le":
        return "supported" if high <= value else "contradicted" if low > value else "inconclusive"
    if comparator == "lt":
        return "supported" if high < value else "contradicted" if low >= value else "inconclusive"
    if comparator == "eq":
        return "supported" if low == high == value else "contradicted" if not low <= value <= high else "inconclusive"
    if comparator == "approx":
        b_lo, b_hi = band
        if b_lo <= low and high <= b_hi:
            return "supported"
        return "contradicted" if high < b_lo or low > b_hi else "inconclusive"
    raise ValueError(f"unknown comparator {comparator!r}")


def _why(verdict: str, comparator: str, value: float, low: float, high: float, band) -> str:
    iv = _interval(low, high)
    if comparator == "approx":
        b = f"the band {_fmt(band[0])}–{_fmt(band[1])}"
        return {
            "supported": f"{iv} lies inside {b}",
            "contradicted": f"{iv} lies wholly outside {b}",
            "inconclusive": f"{iv} overlaps only part of {b}",
        }[verdict]
    claim = f"{WORDS[comparator]} {_fmt(value)}"
    if verdict == "supported":
        return f"the whole interval {iv} is {claim}"
    if verdict == "contradicted":
        return f"no value in {iv} is {claim}"
    return f"the interval {iv} straddles {_fmt(value)}, so it is undecided whether it is {claim}"


def _scene_entry(row: dict, *, used: bool) -> dict:
    entry = {k: row[k] for k in ("scene_id", "datetime", "count", "count_low", "count_high", "gsd_m", "status", "obscured_fraction", "reviewed", "simulated")}
    entry["used"] = used
    if not row["usable"]:
        if row["status"] not in _series.USABLE_STATUSES and not row["reviewed"]:
            entry["note"] = f"not used: status {row['status']}"
        elif row["count"] is None:
            entry["note"] = "not used: the scene has no count for this metric"
        else:
            entry["note"] = f"not used: {row['obscured_fraction'] * 100:.0f} % of the AOI obscured (limit {_series.MAX_OBSCURED_FRACTION * 100:.0f} %)"
    return entry


def _unusable_reason(rows: list[dict], where: str) -> str:
    if not rows:
        return f"no scene lies {where}, so the images cannot decide"
    parts = []
    for r in rows[:3]:
        frac = r["obscured_fraction"]
        hidden = f", {frac * 100:.0f} % obscured" if frac else ""
        parts.append(f"{r['scene_id']} ({r['status']}{hidden})")
    return f"the only scene(s) {where} are unusable: {', '.join(parts)}"


def _ratio(a: float, b: float) -> float:
    if b > 0:
        return a / b
    return math.inf if a > 0 else 1.0  # nothing against nothing: equal, not "unprecedented"


def _as_series(records, aoi):
    if hasattr(records, "data_vars"):
        return records
    records = list(records)
    if not records:
        return None
    return _series.build_series(records, aoi=aoi)


def evaluate_claim(claim: dict, records: Iterable[dict] | Any, *, today: date | str | None = None) -> dict:
    """The verdict on one claim, from per-scene count records.

    Parameters
    ----------
    claim : dict
        A validated claim record (see :mod:`geo_evidence.claims`).
    records : list of dict or xarray.Dataset
        Per-scene count records of the claim's AOI, or a series from
        :func:`geo_evidence.series.build_series`.
    today : date or str, optional
        The day of evaluation (default: today, UTC); a claim about a later date is
        inconclusive.

    Returns
    -------
    dict
        The verdict record of ``docs/CONTRACTS.md``: ``claim_id``, ``aoi``, ``verdict``,
        ``reason`` (one sentence), ``claim``, ``scenes`` (each with ``used`` and, when not
        used, a ``note``), ``baseline`` (or None), ``threshold``, plus ``measured``
        (value/low/high of the quantity compared), ``band`` (for ``approx``), ``ratio``
        (for ``comparison``), ``simulated`` and ``evaluated_on``.
    """
    today = _series.parse_day(today) if today is not None else datetime.now(timezone.utc).date()
    out = {
        "claim_id": claim["id"],
        "aoi": claim["aoi"],
        "verdict": "inconclusive",
        "reason": "",
        "claim": claim,
        "scenes": [],
        "baseline": None,
        "threshold": claim.get("value"),
        "measured": None,
        "band": None,
        "ratio": None,
        "simulated": False,
        "evaluated_on": today.isoformat(),
    }
    if not claim.get("assessable", True):
        out["verdict"] = "not_assessable"
        out["reason"] = claim.get("reason") or "the claim cannot be tested on images of this AOI"
        out["threshold"] = None
        return out

    kind, comp, value = claim["kind"], claim["comparator"], float(claim["value"])
    car_type = claim.get("car_type")
    what = _WHAT.get(car_type, f"{car_type} cars")
    ds = _as_series(records, claim["aoi"])
    if ds is None:
        out["reason"] = "there are no count records for this AOI, so the images cannot decide"
        return out
    rows = _series.scene_rows(ds, car_type=car_type)

    if kind == "period_statistic":
        return _evaluate_period(claim, ds, rows, out, today=today, what=what)

    day = _series.parse_day(claim["date"])
    tol = int(claim.get("tolerance_days", 0))
    where = f"on {day}" if tol == 0 else f"within {tol} day(s) of {day}"
    if day > today:
        out["reason"] = f"the claim is about {day}, after the evaluation day {today}"
        return out
    near = [r for r in rows if abs((r["day"] - day).days) <= tol]
    scene = _series.nearest_scene(ds, day, tolerance_days=tol, car_type=car_type)
    out["scenes"] = [_scene_entry(r, used=scene is not None and r["scene_id"] == scene["scene_id"]) for r in near]
    if scene is None:
        out["reason"] = _unusable_reason(near, where) + "."
        return out
    out["simulated"] = scene["simulated"]
    lo, hi, pt = float(scene["count_low"]), float(scene["count_high"]), float(scene["count"])
    if car_type and scene["method"] not in ("individual", ""):
        out["reason"] = f"scene {scene['scene_id']} was counted by {scene['method']} at {scene['gsd_m']} m, which cannot tell {what} apart."
        return out
    out["measured"] = {"value": _series._clean(pt), "low": _series._clean(lo), "high": _series._clean(hi)}
    seen = f"scene {scene['scene_id']} ({scene['datetime'][:10]}) shows {_fmt(pt)} {what} ({_interval(lo, hi)})"

    if kind == "count_at_date":
        band = approx_band(value, claim.get("tolerance")) if comp == "approx" else None
        verdict = judge(comp, value, lo, hi, band=band)
        out["band"] = [round(band[0], 2), round(band[1], 2)] if band else None
        out.update(verdict=verdict, reason=f"{seen}: {_why(verdict, comp, value, lo, hi, band)}.")
        return out

    # comparison: the count on the day against a trailing baseline that ends before the
    # day's tolerance window, so that the compared scene can never sit in its own baseline.
    base_cfg = claim["baseline"]
    base = _series.baseline(
        ds,
        end=day - timedelta(days=tol),
        years=int(base_cfg.get("years", 5)),
        statistic=base_cfg.get("statistic", "max"),
        car_type=car_type,
    )
    out["baseline"] = base
    if base["value"] is None:
        out["reason"] = f"{seen}, but no usable scene lies in the {base['years']} years before ({base['start']} to {base['end']}) to compare with."
        return out
    b, bl, bh = float(base["value"]), float(base["low"]), float(base["high"])
    r_pt, r_lo, r_hi = _ratio(pt, b), _ratio(lo, bh), _ratio(hi, bl)
    out["ratio"] = {"value": round(r_pt, 3), "low": round(r_lo, 3), "high": round(r_hi, 3) if math.isfinite(r_hi) else None}
    out["threshold"] = _series._clean(value * b)
    band = approx_band(value, claim.get("tolerance"), min_half_width=0.0) if comp == "approx" else None
    verdict = judge(comp, value, r_lo, r_hi, band=band)
    out["band"] = [round(band[0], 3), round(band[1], 3)] if band else None
    stat = base["statistic"]
    against = f"the {stat} of {_interval(bl, bh)} over {base['n_scenes']} scene(s) from {base['start']} to {base['end']}"
    if comp == "gt" and value == 1:
        sentence = {
            "supported": "its whole interval lies above",
            "contradicted": "it does not exceed",
            "inconclusive": "its interval overlaps",
        }[verdict]
        out.update(verdict=verdict, reason=f"{seen}; {sentence} {against}.")
    else:
        out.update(
            verdict=verdict,
            reason=f"{seen} against {against}: the ratio {_interval(round(r_lo, 2), round(r_hi, 2))} is "
            + ("" if verdict != "contradicted" else "not ")
            + (f"{WORDS[comp]} {_fmt(value)}" if verdict != "inconclusive" else f"undecided against {WORDS[comp]} {_fmt(value)}")
            + ".",
        )
    return out


def _evaluate_period(claim, ds, rows, out, *, today, what):
    period = claim["period"]
    stat = claim["statistic"]
    if "before" in period:
        base = _series.baseline(ds, end=period["before"], years=int(period["years"]), statistic=stat, car_type=claim.get("car_type"))
    else:
        base = _series.baseline(
            ds, end=period["end"], start=period["start"], include_end=True, statistic=stat, car_type=claim.get("car_type")
        )
    what = _WHAT.get(claim.get("car_type"), what)
    out["baseline"] = base
    first, last = date.fromisoformat(base["start"]), date.fromisoformat(base["end"])
    inside = [r for r in rows if first <= r["day"] <= last]
    used = set(base["scene_ids"])
    out["scenes"] = [_scene_entry(r, used=r["scene_id"] in used) for r in inside]
    out["simulated"] = any(r["simulated"] for r in inside if r["scene_id"] in used)
    if last > today:
        out["reason"] = f"the period runs to {last}, after the evaluation day {today}."
        return out
    if base["value"] is None:
        out["reason"] = _unusable_reason(inside, f"between {first} and {last}") + "."
        return out
    comp, value = claim["comparator"], float(claim["value"])
    lo, hi = float(base["low"]), float(base["high"])
    out["measured"] = {"value": base["value"], "low": base["low"], "high": base["high"]}
    band = approx_band(value, claim.get("tolerance")) if comp == "approx" else None
    out["band"] = [round(band[0], 2), round(band[1], 2)] if band else None
    verdict = judge(comp, value, lo, hi, band=band)
    held = f" (scene {base['scene_id']})" if base.get("scene_id") else ""
    out.update(
        verdict=verdict,
        reason=f"the {stat} of {what} over {base['n_scenes']} usable scene(s) from {first} to {last} is "
        f"{_fmt(base['value'])}{held}: {_why(verdict, comp, value, lo, hi, band)}.",
    )
    return out


def evaluate_claims(claims: Iterable[dict], records: Iterable[dict] | Any, *, today: date | str | None = None) -> list[dict]:
    """Verdicts for several claims of one AOI (the series is built once).

    Parameters
    ----------
    claims : iterable of dict
        Validated claim records of one AOI (:func:`geo_evidence.claims.load_claims`).
    records : list of dict or xarray.Dataset
        Per-scene count records of that AOI, or its series.
    today : date or str, optional
        See :func:`evaluate_claim`.

    Returns
    -------
    list of dict
        One verdict record per claim, in the claims' order.
    """
    claims = list(claims)
    records = records if hasattr(records, "data_vars") else list(records)
    ds = None
    if not hasattr(records, "data_vars") and records:
        aoi = claims[0]["aoi"] if claims else None
        ds = _series.build_series(records, aoi=aoi)
    elif hasattr(records, "data_vars"):
        ds = records
    return [evaluate_claim(c, ds if ds is not None else [], today=today) for c in claims]
