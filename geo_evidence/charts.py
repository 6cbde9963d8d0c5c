"""Charts of railcar counts, baselines and claims: static (matplotlib) and interactive (Vega-Lite).

- :func:`series_figure` draws counts per scene with their intervals, each claim's baseline
  band, threshold and date in its verdict's colour, failed/obscured scenes, reviewed
  counts, and a "SIMULATED IMAGERY" label when the records say so.
- :func:`series_spec` is the same chart as a Vega-Lite spec with the records inline, so the
  claim site renders it offline.
- :func:`evidence_figure` puts crops of the claim-date scene and the busiest scene of the
  baseline side by side with the detections drawn, a scale bar and a north arrow.
- :func:`write_charts` writes all of them for one AOI's results (``geoev chart``).

Figures use matplotlib's object API (no pyplot, no global backend change) and are saved
through the Agg canvas; in a notebook they display inline.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.dates as mdates
import numpy as np
# Figures are built with the object API and saved through the Agg canvas: no pyplot, no
# global backend switch (a notebook keeps its inline backend), no display needed.
from matplotlib.figure import Figure

from geo_evidence.errors import GeoEvidenceError, SceneSourceError

__all__ = [
    "CAR_TYPE_COLOURS",
    "SIMULATED_LABEL",
    "VERDICT_COLOURS",
    "VERDICT_LABELS",
    "busiest_baseline_scene",
    "claim_scene",
    "comparator_symbol",
    "detections_figure",
    "evidence_figure",
    "load_results",
    "safe_name",
    "series_figure",
    "series_spec",
    "write_charts",
]

log = logging.getLogger(__name__)

#: One palette everywhere (charts and site): green / red / amber / grey.
VERDICT_COLOURS = {
    "supported": "#2e7d32",
    "contradicted": "#c62828",
    "inconclusive": "#f59e0b",
    "not_assessable": "#8a8a8a",
}
VERDICT_LABELS = {
    "supported": "Supported",
    "contradicted": "Contradicted",
    "inconclusive": "Inconclusive",
    "not_assessable": "Not assessable",
}
#: Detection outline colours by car type (colour-blind-safe Okabe-Ito order).
CAR_TYPE_COLOURS = {
    "tank": "#E69F00",
    "box": "#56B4E9",
    "gondola": "#009E73",
    "flat": "#F0E442",
    "hopper": "#CC79A7",
    "locomotive": "#D55E00",
    "unknown": "#BBBBBB",
}
SIMULATED_LABEL = "SIMULATED IMAGERY"
COUNT_COLOUR = "#1f3b5c"
BASELINE_COLOUR = "#4a78a8"
FAILED_STATUSES = ("obscured", "error", "no_coverage")

_COMPARATORS = {
    "more_than": ">", "gt": ">", ">": ">", "over": ">", "above": ">",
    "at_least": "≥", "ge": "≥", "gte": "≥", ">=": "≥", "≥": "≥",
    "less_than": "<", "fewer_than": "<", "lt": "<", "<": "<", "under": "<", "below": "<",
    "at_most": "≤", "le": "≤", "no_more_than": "≤", "lte": "≤", "<=": "≤", "≤": "≤", "only": "≤",
    "approximately": "≈", "about": "≈", "approx": "≈", "around": "≈", "~": "≈", "≈": "≈",
    "exactly": "=", "eq": "=", "=": "=", "equal": "=",
}


def comparator_symbol(comparator: Any) -> str:
    """The mathematical sign for a claim comparator (``"more_than"`` -> ``">"``)."""
    if comparator is None:
        return ""
    key = str(comparator).strip().lower().replace(" ", "_").replace("-", "_")
    return _COMPARATORS.get(key, str(comparator))


def safe_name(text: str) -> str:
    """A file-name-safe form of an id (letters, digits, ``-`` and ``_``)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)).strip("-")
    return name or "item"


def _parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        out = value
    elif isinstance(value, date):
        out = datetime(value.year, value.month, value.day)
    else:
        try:
            out = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return out if out.tzinfo else out.replace(tzinfo=timezone.utc)


def _has_count(rec: Mapping) -> bool:
    # An analyst may count a scene the automatic counter could not.
    return rec.get("count") is not None and (rec.get("status") not in FAILED_STATUSES or bool(rec.get("reviewed")))


def _threshold(verdict: Mapping) -> float | None:
    if verdict.get("verdict") == "not_assessable":
        return None  # its figure is not a railcar count (containers, shells, ...)
    value = verdict.get("threshold")
    claim = verdict.get("claim") or {}
    # A "comparison" claim's value is a ratio to the baseline, not a count.
    if "threshold" not in verdict and claim.get("kind") != "comparison":
        value = claim.get("value")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _claim_date(verdict: Mapping) -> datetime | None:
    claim = verdict.get("claim") or {}
    when = _parse_time(claim.get("date"))
    if when is None and isinstance(claim.get("period"), Mapping):
        when = _parse_time(claim["period"].get("end"))
    return when


def _claim_label(verdict: Mapping) -> str:
    claim = verdict.get("claim") or {}
    thr = _threshold(verdict)
    sign = comparator_symbol(claim.get("comparator"))
    value = "" if thr is None else f"{sign} {thr:g}".strip()
    verdict_name = VERDICT_LABELS.get(verdict.get("verdict"), str(verdict.get("verdict")))
    return f"claim {verdict.get('claim_id')}: {value} ({verdict_name.lower()})" if value else f"claim {verdict.get('claim_id')} ({verdict_name.lower()})"


def claim_scene(verdict: Mapping, records: Sequence[Mapping]) -> Mapping | None:
    """The record of the scene nearest the claim's date among those the verdict used."""
    by_id = {r.get("scene_id"): r for r in records}
    candidates = [by_id.get(s.get("scene_id"), s) for s in verdict.get("scenes") or []]
    candidates = [c for c in candidates if c is not None]
    used = [by_id.get(s.get("scene_id"), s) for s in verdict.get("scenes") or [] if s.get("used")]
    candidates = [c for c in used if c is not None] or candidates
    if not candidates:
        return None
    when = _claim_date(verdict)
    usable = [c for c in candidates if _has_count(c)] or candidates

    def distance(rec):
        t = _parse_time(rec.get("datetime"))
        return abs((t - when).total_seconds()) if (t and when) else 0.0

    return min(usable, key=distance)


def busiest_baseline_scene(verdict: Mapping, records: Sequence[Mapping]) -> Mapping | None:
    """The record with the highest count inside the verdict's baseline window (None without one)."""
    base = verdict.get("baseline")
    if not base:
        return None
    t0, t1 = _parse_time(base.get("start")), _parse_time(base.get("end"))
    if t1 is not None and len(str(base.get("end"))) <= 10:
        t1 = t1.replace(hour=23, minute=59, second=59)  # a date-only end includes that day
    inside = []
    for rec in records:
        t = _parse_time(rec.get("datetime"))
        if t is None or not _has_count(rec):
            continue
        if (t0 is None or t >= t0) and (t1 is None or t <= t1):
            inside.append(rec)
    return max(inside, key=lambda r: (r["count"], r.get("datetime") or "")) if inside else None


def _is_simulated(records: Sequence[Mapping], simulated: bool | None) -> bool:
    if simulated is not None:
        return bool(simulated)
    return any(bool(r.get("simulated")) for r in records)


# --------------------------------------------------------------------------- series chart


def _select(records: Sequence[Mapping], verdicts: Sequence[Mapping], claim_id: str | None) -> tuple[list, list, str | None]:
    """The records and verdicts one chart shows, and the car type its counts are of.

    The chart of one claim about a car type (``car_type: tank``) plots that type's counts
    (``by_type``; intervals where the verdict has them). The overview of all claims plots
    all railcars, so claims about one car type are left out of it.
    """
    if claim_id is None:
        return list(records), [v for v in verdicts if not (v.get("claim") or {}).get("car_type")], None
    verdicts = [v for v in verdicts if v.get("claim_id") == claim_id]
    car_type = (verdicts[0].get("claim") or {}).get("car_type") if verdicts else None
    if not car_type:
        return list(records), verdicts, None
    known = {s.get("scene_id"): s for s in verdicts[0].get("scenes") or []}
    typed = []
    for rec in records:
        rec = dict(rec)
        if rec.get("count") is not None:
            n = (rec.get("by_type") or {}).get(car_type, 0)
            entry = known.get(rec.get("scene_id"))
            if entry and entry.get("count") is not None:
                n, low, high = entry["count"], entry.get("count_low", entry["count"]), entry.get("count_high", entry["count"])
            else:
                low = high = n
            rec.update(count=n, count_low=low, count_high=high)
            rec.pop("count_auto", None)
        typed.append(rec)
    return typed, verdicts, car_type


def _off_scale(verdicts: Sequence[Mapping], records: Sequence[Mapping]) -> tuple[float, set]:
    """Top of the y axis, and the claims whose thresholds lie far above every count."""
    counted = [r for r in records if _has_count(r)]
    counts = max([float(r["count"]) for r in counted] + [1.0])
    highs = max([float(r["count_high"]) for r in counted if r.get("count_high") is not None] + [counts])
    # A coarse scene's wide interval must not squash every other scene: the axis follows the
    # counts, and an interval running past it is clipped at the top edge.
    top = min(highs, max(1.5 * counts, counts + 10))
    far = {v.get("claim_id") for v in verdicts if (_threshold(v) or 0) > max(2.5 * top, 10)}
    ymax = max([top] + [_threshold(v) or 0 for v in verdicts if v.get("claim_id") not in far])
    return ymax, far




def series_figure(
    records: Sequence[Mapping],
    verdicts: Sequence[Mapping] = (),
    *,
    title: str | None = None,
    simulated: bool | None = None,
    claim_id: str | None = None,
) -> Figure:
    """Railcars per scene over time, with intervals, baselines, claims and verdict colours.

    Parameters
    ----------
    records : list of dict
        Per-scene count records (contract "Per-scene count record"); reviewed records
        (``reviewed: True``) are drawn as diamonds with the automatic count as a hollow dot.
    verdicts : list of dict
        Verdict records; each adds its threshold (dashed), claim date (dotted) and baseline
        band in the verdict's colour.
    title : str, optional
    simulated : bool, optional
        Force the "SIMULATED IMAGERY" label on or off; by default it appears when any
        record says ``simulated``.
    claim_id : str, optional
        Draw only this claim's marks (the chart of one claim page).

    Returns
    -------
    matplotlib.figure.Figure
    """
    simulated = _is_simulated(records, simulated)
    records, verdicts, car_type = _select(records, verdicts, claim_id)
    fig = Figure(figsize=(10, 5.2), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    ok = [r for r in records if _has_count(r) and _parse_time(r.get("datetime"))]
    failed = [r for r in records if not _has_count(r) and _parse_time(r.get("datetime"))]
    ymax, far = _off_scale(verdicts, records)
    single = len(verdicts) == 1
    for group, marker, label in ((False, "o", "railcars counted (interval)"), (True, "D", "analyst-reviewed count")):
        rows = [r for r in ok if bool(r.get("reviewed")) == group]
        if not rows:
            continue
        x = [_parse_time(r["datetime"]) for r in rows]
        y = np.array([r["count"] for r in rows], dtype=float)
        lo = np.array([r.get("count_low", r["count"]) if r.get("count_low") is not None else r["count"] for r in rows], dtype=float)
        hi = np.array([r.get("count_high", r["count"]) if r.get("count_high") is not None else r["count"] for r in rows], dtype=float)
        ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt=marker, color=COUNT_COLOUR, ecolor=COUNT_COLOUR,
                    elinewidth=1.2, capsize=3, markersize=6 if group else 5, label=label, zorder=4)
        if group:
            auto = [(t, r.get("count_auto")) for t, r in zip(x, rows) if r.get("count_auto") is not None]
            if auto:
                ax.plot([a for a, _ in auto], [b for _, b in auto], "o", mfc="none", mec=COUNT_COLOUR,
                        alpha=0.7, markersize=6, label="automatic count (before review)", zorder=3)
    partial = [r for r in ok if r.get("status") == "partial"]
    if partial:
        ax.plot([_parse_time(r["datetime"]) for r in partial], [r["count"] for r in partial], "o", mfc="none",
                mec="#b36b00", markersize=11, label="partly obscured scene", zorder=5)
    if failed:
        ax.plot([_parse_time(r["datetime"]) for r in failed], [0] * len(failed), "x", color="#666666",
                markersize=8, mew=2, label="obscured / failed scene (no count)", zorder=4, clip_on=False)

    for v in verdicts:
        colour = VERDICT_COLOURS.get(v.get("verdict"), "#555555")
        base = v.get("baseline")
        if base and base.get("start") and base.get("end") and base.get("value") is not None:
            t0, t1 = _parse_time(base["start"]), _parse_time(base["end"])
            low = base.get("low") if base.get("low") is not None else base["value"]
            high = base.get("high") if base.get("high") is not None else base["value"]
            ax.fill_between([t0, t1], [low, low], [high, high], color=BASELINE_COLOUR, alpha=0.18, lw=0, zorder=1,
                            label=f"baseline {base.get('statistic', '')} {t0:%Y-%m}–{t1:%Y-%m}: {base['value']:g}".replace("  ", " "))
            ax.plot([t0, t1], [base["value"]] * 2, color=BASELINE_COLOUR, lw=1.2, zorder=2)
        thr = _threshold(v)
        label = _claim_label(v)
        if thr is not None and v.get("claim_id") in far:
            # Far above every count: say so at the top instead of squashing the counts.
            label = f"{label}, off scale ↑"
            ax.plot([], [], ls="--", color=colour, lw=1.6, label=label)
        elif thr is not None:
            ax.axhline(thr, color=colour, ls="--", lw=1.6, zorder=2, label=label)
            if len(verdicts) <= 4:  # more labels than that would overprint each other
                ax.annotate(label, xy=(0.005, thr), xycoords=("axes fraction", "data"), xytext=(2, 3),
                            textcoords="offset points", color=colour, fontsize=8.5, fontweight="bold")
        when = _claim_date(v)
        if when is not None:
            date_label = f"claim {v.get('claim_id')} date {when:%Y-%m-%d}" if single else "claim dates (dotted, verdict colour)"
            ax.axvline(when, color=colour, ls=":", lw=1.6, zorder=2, label=date_label if thr is not None or not single else label)

    ax.set_ylim(0, ymax * 1.15 + 1)
    ax.set_ylabel(f"{car_type} cars in the yard" if car_type else "railcars in the yard")
    ax.xaxis.set_major_locator(mdates.AutoDateLocator())
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(title or "Railcars per scene", loc="left", fontsize=12)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))  # claims sharing a baseline share its legend entry
    labels, handles = list(unique), list(unique.values())
    if len(handles) > 8:  # long legends go below the plot so they do not squeeze it
        fig.set_size_inches(10, 5.2 + 0.19 * ((len(handles) + 1) // 2))
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=8, frameon=False)
    elif handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    if simulated:
        _simulated_mark(fig)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


def _simulated_mark(fig: Figure) -> None:
    fig.text(0.99, 0.985, SIMULATED_LABEL, ha="right", va="top", color="#b00020", fontsize=13, fontweight="bold",
             bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "#b00020", "lw": 1.5})
    fig.text(0.5, 0.5, SIMULATED_LABEL, ha="center", va="center", rotation=20, color="#b00020", alpha=0.08,
             fontsize=48, fontweight="bold", zorder=0)


def series_spec(
    records: Sequence[Mapping],
    verdicts: Sequence[Mapping] = (),
    *,
    title: str | None = None,
    simulated: bool | None = None,
    claim_id: str | None = None,
    schema: bool = True,
) -> dict:
    """The series chart as a Vega-Lite (v6) spec with every record inline.

    The top-level ``data.values`` hold one row per record (``scene_id``, ``datetime``,
    ``count``, ``count_low``, ``count_high``, ``count_auto``, ``reviewed``, ``status``,
    ``gsd_m``); layers add the baseline bands, thresholds and claim dates. Nothing is
    fetched when it renders. ``schema=False`` leaves out the ``$schema`` URL (the site
    embeds specs without any URL in them).
    """
    simulated = _is_simulated(records, simulated)
    records, verdicts, car_type = _select(records, verdicts, claim_id)
    ymax, far = _off_scale(verdicts, records)
    rows = []
    for r in records:
        if _parse_time(r.get("datetime")) is None:
            continue
        has = _has_count(r)
        rows.append({
            "scene_id": r.get("scene_id"),
            "datetime": _parse_time(r["datetime"]).isoformat(),
            "count": r.get("count") if has else None,
            "count_low": r.get("count_low") if has else None,
            "count_high": r.get("count_high") if has else None,
            "count_auto": r.get("count_auto", r.get("count")),
            "reviewed": bool(r.get("reviewed")),
            "status": r.get("status"),
            "gsd_m": r.get("gsd_m"),
            "kind": ("analyst-reviewed" if r.get("reviewed") else "automatic") if has else "obscured / failed",
        })
    bands, rules, dates = [], [], []
    for v in verdicts:
        verdict = v.get("verdict")
        base = v.get("baseline")
        if base and base.get("start") and base.get("end") and base.get("value") is not None:
            bands.append({"claim_id": v.get("claim_id"), "start": str(base["start"]), "end": str(base["end"]),
                          "low": base.get("low", base["value"]) if base.get("low") is not None else base["value"],
                          "high": base.get("high", base["value"]) if base.get("high") is not None else base["value"],
                          "value": base["value"], "statistic": base.get("statistic")})
        thr = _threshold(v)
        if thr is not None and v.get("claim_id") not in far:
            rules.append({"claim_id": v.get("claim_id"), "threshold": thr, "verdict": verdict, "label": _claim_label(v)})
        when = _claim_date(v)
        if when is not None:
            dates.append({"claim_id": v.get("claim_id"), "date": when.isoformat(), "verdict": verdict})

    verdict_scale = {"domain": list(VERDICT_COLOURS), "range": list(VERDICT_COLOURS.values())}
    x = {"field": "datetime", "type": "temporal", "title": "acquisition date"}
    tooltip = [
        {"field": "scene_id", "title": "scene"},
        {"field": "datetime", "type": "temporal", "title": "acquired", "format": "%Y-%m-%d %H:%M"},
        {"field": "count", "title": "count"},
        {"field": "count_low", "title": "low"},
        {"field": "count_high", "title": "high"},
        {"field": "count_auto", "title": "automatic count"},
        {"field": "status"},
        {"field": "gsd_m", "title": "GSD (m)"},
    ]
    layers: list[dict] = []
    if bands:
        layers.append({
            "data": {"values": bands},
            "mark": {"type": "rect", "opacity": 0.18, "color": BASELINE_COLOUR},
            "encoding": {"x": {"field": "start", "type": "temporal"}, "x2": {"field": "end"},
                         "y": {"field": "low", "type": "quantitative"}, "y2": {"field": "high"},
                         "tooltip": [{"field": "claim_id", "title": "claim"}, {"field": "statistic"}, {"field": "value", "title": "baseline"}]},
        })
    layers += [
        {"transform": [{"filter": "datum.count != null"}],
         "mark": {"type": "rule", "color": COUNT_COLOUR, "clip": True},
         "encoding": {"x": x, "y": {"field": "count_low", "type": "quantitative",
                                    "scale": {"domain": [0, round(ymax * 1.15 + 1)], "clamp": False}},
                      "y2": {"field": "count_high"}}},
        {"transform": [{"filter": "datum.count != null"}],
         "mark": {"type": "point", "filled": True, "size": 60, "color": COUNT_COLOUR},
         "encoding": {"x": x, "y": {"field": "count", "type": "quantitative",
                                    "title": f"{car_type} cars in the yard" if car_type else "railcars in the yard"},
                      "shape": {"field": "kind", "type": "nominal", "title": "count",
                                "scale": {"domain": ["automatic", "analyst-reviewed", "obscured / failed"],
                                          "range": ["circle", "diamond", "cross"]}},
                      "tooltip": tooltip}},
    ]
    if any(r["count"] is None for r in rows):  # an empty layer makes Vega warn about its extent
        layers.append(
            {"transform": [{"filter": "datum.count == null"}, {"calculate": "0", "as": "zero"}],
             "mark": {"type": "point", "size": 80, "color": "#666666", "filled": True},
             "encoding": {"x": x, "y": {"field": "zero", "type": "quantitative"},
                          "shape": {"field": "kind", "type": "nominal"}, "tooltip": tooltip}})
    if rules:
        layers.append({
            "data": {"values": rules},
            "mark": {"type": "rule", "strokeDash": [6, 4], "strokeWidth": 2},
            "encoding": {"y": {"field": "threshold", "type": "quantitative"},
                         "color": {"field": "verdict", "type": "nominal", "title": "verdict", "scale": verdict_scale},
                         "tooltip": [{"field": "label", "title": "claim"}]},
        })
        layers.append({
            "data": {"values": rules},
            "mark": {"type": "text", "align": "left", "dx": 4, "dy": -7, "fontWeight": "bold", "x": 0},
            "encoding": {"y": {"field": "threshold", "type": "quantitative"}, "text": {"field": "label"},
                         "color": {"field": "verdict", "type": "nominal", "scale": verdict_scale, "legend": None}},
        })
    if dates:
        layers.append({
            "data": {"values": dates},
            "mark": {"type": "rule", "strokeDash": [2, 3], "strokeWidth": 2},
            "encoding": {"x": {"field": "date", "type": "temporal"},
                         "color": {"field": "verdict", "type": "nominal", "scale": verdict_scale, "legend": None},
                         "tooltip": [{"field": "claim_id", "title": "claim"}, {"field": "date", "type": "temporal", "title": "claim date"}]},
        })
    heading: dict[str, Any] = {"text": title or "Railcars per scene", "anchor": "start"}
    if simulated:
        heading.update(subtitle=f"{SIMULATED_LABEL}: simulated scenes, not real observations", subtitleColor="#b00020",
                       subtitleFontWeight="bold", subtitleFontSize=13)
    spec: dict[str, Any] = {
        "description": "Railcars counted per scene with intervals, baselines and claim thresholds (geo_evidence).",
        "title": heading,
        "width": "container",
        "height": 320,
        "data": {"values": rows},
        "layer": layers,
        "config": {"legend": {"orient": "right"}},
    }
    if schema:
        spec = {"$schema": "https://vega.github.io/schema/vega-lite/v6.json", **spec}
    return spec


# --------------------------------------------------------------------------- evidence panels


def _nice_length(metres: float) -> float:
    if metres <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(metres))
    for step in (5, 2, 1):
        if step * exp <= metres:
            return step * exp
    return exp


def _read_scene_window(href: str, aoi):
    # Scene pixels come only through the imagery layer (it handles CRS, nodata, masks).
    from geo_evidence.imagery import read_window

    return read_window(href, aoi, margin_m=20.0)


def _detections_px(features: Sequence[Mapping], window) -> list[tuple[str, np.ndarray, Mapping]]:
    from pyproj import CRS, Transformer
    from shapely.geometry import shape

    tr = Transformer.from_crs(CRS.from_epsg(4326), window.crs, always_xy=True)
    a, b, c, d, e, f = tuple(window.transform)[:6]
    inv = np.linalg.inv(np.array([[a, b], [d, e]]))
    out = []
    for feat in features:
        try:
            geom = shape(feat["geometry"])
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        polys = getattr(geom, "geoms", [geom])
        for poly in polys:
            if not hasattr(poly, "exterior"):
                continue
            lon, lat = np.asarray(poly.exterior.coords).T[:2]
            x, y = tr.transform(lon, lat)
            colrow = (inv @ np.vstack([np.asarray(x) - c, np.asarray(y) - f])).T
            out.append((str((feat.get("properties") or {}).get("car_type") or "unknown"), colrow, feat))
    return out


def _north_angle(window) -> float:
    """Direction of true north in the image, radians clockwise from image-up."""
    from pyproj import CRS, Transformer

    rows, cols = window.image.shape[:2]
    a, b, c, d, e, f = tuple(window.transform)[:6]
    x0, y0 = a * cols / 2 + b * rows / 2 + c, d * cols / 2 + e * rows / 2 + f
    to_ll = Transformer.from_crs(window.crs, CRS.from_epsg(4326), always_xy=True)
    to_map = Transformer.from_crs(CRS.from_epsg(4326), window.crs, always_xy=True)
    lon, lat = to_ll.transform(x0, y0)
    x1, y1 = to_map.transform(lon, lat + 0.001)
    inv = np.linalg.inv(np.array([[a, b], [d, e]]))
    dc, dr = inv @ np.array([x1 - x0, y1 - y0])
    return math.atan2(dc, -dr)


def _to_display(image: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] > 3:
        img = img[..., :3]
    img = img.astype(float)
    mask = valid if valid is not None else np.ones(img.shape[:2], bool)
    data = img[mask] if mask.any() else img.reshape(-1, *img.shape[2:])
    lo, hi = np.percentile(data, 1), np.percentile(data, 99.5)
    out = np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1)
    if out.ndim == 2:
        out = np.dstack([out] * 3)
    out = np.dstack([out, mask.astype(float)])  # nodata shows as transparent
    return out


#: Longest side of an evidence crop: wide enough for a cut of cars, close enough to see each.
CROP_M = 320.0


def _focus(records: Sequence[Mapping], *, base_dir: Path) -> tuple[float, float, float, float] | None:
    """(lon, lat, half_width_m, half_height_m) framing the detections of ``records``."""
    features: list = []
    for rec in records:
        path = base_dir / str(rec.get("detections_file") or "")
        if rec.get("detections_file") and path.is_file():
            features += json.loads(path.read_text(encoding="utf-8")).get("features", [])
    return _focus_on(features)


def _focus_on(features: Sequence[Mapping]) -> tuple[float, float, float, float] | None:
    from pyproj import Geod
    from shapely.geometry import shape

    pts = []
    for feat in features:
        try:
            c = shape(feat["geometry"]).centroid
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        pts.append((c.x, c.y))
    if not pts:
        return None
    xy = np.array(pts)
    lon0, lat0 = np.median(xy, axis=0)
    geod = Geod(ellps="WGS84")
    # Extent of the detections in metres, clamped to CROP_M around their median position.
    _, _, w = geod.inv(xy[:, 0].min(), lat0, xy[:, 0].max(), lat0)
    _, _, h = geod.inv(lon0, xy[:, 1].min(), lon0, xy[:, 1].max())
    half_w = min(max(w / 2 + 40.0, 60.0), CROP_M / 2)
    half_h = min(max(h / 2 + 40.0, 60.0), CROP_M / 2)
    if w / 2 + 40 <= CROP_M / 2:
        lon0 = (xy[:, 0].min() + xy[:, 0].max()) / 2
    if h / 2 + 40 <= CROP_M / 2:
        lat0 = (xy[:, 1].min() + xy[:, 1].max()) / 2
    return float(lon0), float(lat0), float(half_w), float(half_h)


def _draw_panel(ax, rec: Mapping, heading: str, *, aoi, base_dir: Path | None, focus=None, features=None) -> set:
    from matplotlib.patches import Polygon as MplPolygon
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    when = _parse_time(rec.get("datetime"))
    count = rec.get("count")
    interval = f" ({rec.get('count_low')}–{rec.get('count_high')})" if count is not None else ""
    gsd = rec.get("gsd_m")
    ax.set_title(
        f"{heading}\n{when:%Y-%m-%d %H:%M} UTC · GSD {gsd:.2f} m · {count if count is not None else 'no'} railcars{interval}\n{rec.get('scene_id')}"
        if when and isinstance(gsd, (int, float)) else f"{heading}\n{rec.get('scene_id')}",
        fontsize=9, loc="left",
    )
    ax.set_xticks([])
    ax.set_yticks([])
    try:
        window = _read_scene_window(rec.get("source"), aoi)
    except (GeoEvidenceError, OSError, TypeError) as exc:
        ax.text(0.5, 0.5, f"scene not readable:\n{exc}", ha="center", va="center", wrap=True, fontsize=8, transform=ax.transAxes)
        ax.set_facecolor("#eeeeee")
        return set()
    ax.imshow(_to_display(window.image, window.valid), interpolation="nearest")
    if features is None:
        features = []
        det_path = Path(base_dir or ".") / str(rec.get("detections_file") or "")
        if base_dir is not None and rec.get("detections_file") and det_path.is_file():
            features = json.loads(det_path.read_text(encoding="utf-8")).get("features", [])
    false_ids = set((rec.get("review") or {}).get("false_detections") or [])
    seen = set()
    drawn = _detections_px(features, window)
    for car_type, px, feat in drawn:
        colour = CAR_TYPE_COLOURS.get(car_type, CAR_TYPE_COLOURS["unknown"])
        is_false = str((feat.get("properties") or {}).get("detection_id")) in false_ids
        ax.add_patch(MplPolygon(px - 0.5, closed=True, fill=False, ec=colour, lw=1.0, ls=":" if is_false else "-"))
        seen.add(car_type)
    rows, cols = window.image.shape[:2]
    gsd_w = float(window.gsd_m)
    x0, x1, y0, y1 = -0.5, cols - 0.5, -0.5, rows - 0.5
    if focus is not None:
        from pyproj import CRS, Transformer

        lon, lat, half_w, half_h = focus
        mx, my = Transformer.from_crs(CRS.from_epsg(4326), window.crs, always_xy=True).transform(lon, lat)
        a, b, c, d, e, f = tuple(window.transform)[:6]
        col, row = np.linalg.inv(np.array([[a, b], [d, e]])) @ np.array([mx - c, my - f])
        x0, x1 = max(col - half_w / gsd_w, -0.5), min(col + half_w / gsd_w, cols - 0.5)
        y0, y1 = max(row - half_h / gsd_w, -0.5), min(row + half_h / gsd_w, rows - 0.5)
        if x1 <= x0 or y1 <= y0:  # the focus lies outside this scene's window: show it all
            x0, x1, y0, y1 = -0.5, cols - 0.5, -0.5, rows - 0.5
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)
    centres = [px.mean(axis=0) for _, px, _ in drawn]
    in_view = sum(1 for cx_, cy_ in centres if x0 <= cx_ <= x1 and y0 <= cy_ <= y1)
    ax.set_xlabel(f"crop {(x1 - x0) * gsd_w:.0f} × {(y1 - y0) * gsd_w:.0f} m · {in_view} of {len(centres)} detections in view",
                  fontsize=8)
    length = _nice_length((x1 - x0) * gsd_w / 5)
    ax.add_artist(AnchoredSizeBar(ax.transData, length / gsd_w, f"{length:g} m", "lower right", pad=0.4, color="white",
                                  frameon=True, size_vertical=max((y1 - y0) / 120, 1),
                                  fontproperties={"size": 8}))
    ax.artists[-1].patch.set(facecolor="black", alpha=0.6)
    ang = _north_angle(window)
    cx, cy, r = 0.06, 0.83, 0.09
    ax.annotate("N", xy=(cx + r * math.sin(ang), cy + r * math.cos(ang)), xytext=(cx, cy), xycoords="axes fraction",
                textcoords="axes fraction", ha="center", va="center", color="white", fontsize=10, fontweight="bold",
                arrowprops={"arrowstyle": "-|>", "color": "white", "lw": 2},
                bbox={"boxstyle": "circle,pad=0.2", "fc": "black", "alpha": 0.6, "ec": "none"})
    return seen


def evidence_figure(
    verdict: Mapping,
    records: Sequence[Mapping],
    *,
    aoi,
    base_dir: str | Path,
    simulated: bool | None = None,
) -> Figure | None:
    """Crops of the claim-date scene and of the baseline's busiest scene, side by side.

    Detections (``base_dir / record["detections_file"]``) are outlined in their car type's
    colour (legend below), analyst-rejected ones dotted; each panel has a scale bar, a
    north arrow and the acquisition date, GSD and count in its title. Pixels are read
    through :func:`geo_evidence.imagery.read_window`. A claim about a period (no date)
    shows the busiest scene of its period only. Returns None when there is no scene to show.
    """
    from matplotlib.lines import Line2D

    from geo_evidence.aoi import load_aoi

    aoi = aoi if hasattr(aoi, "yard") else load_aoi(aoi)
    # A claim about a period has no claim-date scene: its evidence is the busiest scene.
    dated = bool((verdict.get("claim") or {}).get("date"))
    claim_rec = claim_scene(verdict, records) if dated else None
    busiest = busiest_baseline_scene(verdict, records)
    panels = []
    if claim_rec is not None:
        panels.append((claim_rec, f"Claim date scene (claim {verdict.get('claim_id')})"))
    if busiest is not None and (claim_rec is None or busiest.get("scene_id") != claim_rec.get("scene_id")):
        base = verdict.get("baseline") or {}
        kind = "baseline" if dated else "period"
        panels.append((busiest, f"Busiest {kind} scene ({base.get('start')} to {base.get('end')})"))
    if not panels:
        return None
    fig = Figure(figsize=(max(6.2 * len(panels), 9.0), 6.2), dpi=110)  # room for title and label
    types: set[str] = set()
    # Both panels frame the same ground, around the claim-date scene's detections.
    focus = _focus([panels[0][0]], base_dir=Path(base_dir)) or _focus([r for r, _ in panels], base_dir=Path(base_dir))
    for i, (rec, heading) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        types |= _draw_panel(ax, rec, heading, aoi=aoi, base_dir=Path(base_dir), focus=focus) or set()
    order = [t for t in CAR_TYPE_COLOURS if t in types]
    if order:
        handles = [Line2D([], [], color=CAR_TYPE_COLOURS[t], lw=2.5, label=t) for t in order]
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), title="detections by car type",
                   fontsize=9, title_fontsize=9, frameon=False, facecolor="white")
    verdict_name = VERDICT_LABELS.get(verdict.get("verdict"), str(verdict.get("verdict")))
    # Two short lines: a long claim id must not run under the SIMULATED label.
    fig.suptitle(f"Evidence · {verdict_name}\nclaim {verdict.get('claim_id')}", x=0.01, ha="left", fontsize=11,
                 color=VERDICT_COLOURS.get(verdict.get("verdict"), "black"), fontweight="bold")
    if _is_simulated([r for r, _ in panels], simulated):
        fig.text(0.99, 0.985, SIMULATED_LABEL, ha="right", va="top", color="#b00020", fontsize=13, fontweight="bold",
                 bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "#b00020", "lw": 1.5})
    fig.tight_layout(rect=(0, 0.1 if order else 0, 1, 0.91))
    return fig


def detections_figure(
    record: Mapping,
    *,
    aoi,
    features: Sequence[Mapping] | None = None,
    base_dir: str | Path | None = None,
    crop: bool = True,
    title: str | None = None,
) -> Figure:
    """One scene's AOI window with its detections outlined by car type (an analyst's view).

    Parameters
    ----------
    record : dict
        The scene's count record (``source``, ``datetime``, ``gsd_m``, counts).
    aoi : AOI or str
    features : list of GeoJSON features, optional
        Detections (EPSG:4326 polygons); default: read ``base_dir / record["detections_file"]``.
    base_dir : path, optional
        The AOI's output folder (``<out>/<aoi>``) when ``features`` is not given.
    crop : bool
        Frame the detections (at most ``CROP_M`` metres) rather than the whole window.
    title : str, optional
    """
    from matplotlib.lines import Line2D

    from geo_evidence.aoi import load_aoi

    aoi = aoi if hasattr(aoi, "yard") else load_aoi(aoi)
    if features is None and base_dir is not None and record.get("detections_file"):
        path = Path(base_dir) / record["detections_file"]
        features = json.loads(path.read_text(encoding="utf-8")).get("features", []) if path.is_file() else []
    features = list(features or [])
    focus = _focus_on(features) if crop else None
    fig = Figure(figsize=(9, 7.5), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    types = _draw_panel(ax, record, title or "Detections", aoi=aoi, base_dir=None, focus=focus, features=features)
    x0, x1 = ax.get_xlim()
    y1, y0 = ax.get_ylim()
    aspect = abs(y1 - y0) / max(abs(x1 - x0), 1e-9)
    fig.set_size_inches(9, min(max(8.2 * aspect + 1.8, 3.8), 10))  # fit the frame to the crop
    order = [t for t in CAR_TYPE_COLOURS if t in types]
    if order:
        fig.legend(handles=[Line2D([], [], color=CAR_TYPE_COLOURS[t], lw=2.5, label=t) for t in order], loc="lower center",
                   ncol=len(order), title="detections by car type", fontsize=9, title_fontsize=9, frameon=False)
    if record.get("simulated"):
        fig.text(0.99, 0.985, SIMULATED_LABEL, ha="right", va="top", color="#b00020", fontsize=13, fontweight="bold",
                 bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "#b00020", "lw": 1.5})
    fig.tight_layout(rect=(0, 0.08 if order else 0, 1, 0.95))
    return fig


# --------------------------------------------------------------------------- results and files


def load_results(aoi, *, out_dir: str | Path = "geoev-out", compute: bool = True) -> dict:
    """Everything the charts and the site show for one AOI, from ``out_dir/<aoi>/``.

    Returns a dict: ``aoi`` (AOI), ``dir`` (Path), ``records`` (reviews applied),
    ``simulated``, ``verdicts``, ``manifest`` (dict or None) and ``reviews`` (list).

    With ``compute``, the count is run first when there is no ``counts.json``
    (:func:`geo_evidence.pipeline.ensure_counts`) and the claims of the AOI's claims file
    (``<aoi>.claims.json`` beside the AOI file) are evaluated on the reviewed records.
    Without it, or when the AOI has no claims file, ``verdicts.json`` is used as written.
    """
    from geo_evidence.aoi import load_aoi
    from geo_evidence.review import apply_reviews, load_reviews

    aoi = aoi if hasattr(aoi, "yard") else load_aoi(aoi)
    adir = Path(out_dir) / aoi.id
    counts_path = adir / "counts.json"
    if not counts_path.is_file():
        if not compute:
            raise SceneSourceError(f"no results at {str(counts_path)!r}; run `geoev count --aoi {aoi.id} --out {out_dir}` first.")
        from geo_evidence.pipeline import ensure_counts

        ensure_counts(aoi, out_dir=out_dir)
    try:
        counts = json.loads(counts_path.read_text(encoding="utf-8"))
        raw = counts["records"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SceneSourceError(f"results file {str(counts_path)!r} is unreadable ({exc}); re-run `geoev count --aoi {aoi.id}`.") from None
    reviews = load_reviews(adir / "review.json") if (adir / "review.json").is_file() else []
    records = apply_reviews(raw, reviews) if reviews else [dict(r, reviewed=bool(r.get("reviewed"))) for r in raw]
    records.sort(key=lambda r: str(r.get("datetime") or ""))
    simulated = bool(counts.get("simulated")) or any(r.get("simulated") for r in records)

    verdicts: list[dict] = []
    vpath = adir / "verdicts.json"
    # With compute, judge the claims afresh on the (reviewed) records so that a review or
    # an edited claims file shows at once; otherwise publish verdicts.json as it stands.
    fresh = _evaluate(aoi, records) if compute else None
    if fresh:
        verdicts = fresh
    elif vpath.is_file():
        try:
            verdicts = json.loads(vpath.read_text(encoding="utf-8"))["verdicts"]
        except (ValueError, KeyError, TypeError) as exc:
            raise SceneSourceError(f"verdicts file {str(vpath)!r} is unreadable ({exc}); re-run `geoev claims check --aoi {aoi.id}`.") from None
        if reviews and (adir / "review.json").stat().st_mtime > vpath.stat().st_mtime:
            log.warning("%s is older than review.json; re-run `geoev claims check --aoi %s` to use the reviewed counts", vpath, aoi.id)
    manifest = None
    if (adir / "manifest.json").is_file():
        try:
            manifest = json.loads((adir / "manifest.json").read_text(encoding="utf-8"))
        except ValueError:
            manifest = None
    return {"aoi": aoi, "dir": adir, "records": records, "simulated": simulated, "verdicts": verdicts,
            "manifest": manifest, "reviews": reviews}


def _evaluate(aoi, records: list[dict]) -> list[dict]:
    from geo_evidence.claims import evaluate_claims, load_claims

    path = aoi.path.with_name(f"{aoi.id}.claims.json") if aoi.path else None
    if path is None or not path.is_file():
        return []
    return list(evaluate_claims(load_claims(path), records))


def _save(fig: Figure, path: Path, **kwargs) -> Path:
    from geo_evidence._io import atomic_write_with

    fmt = path.suffix.lstrip(".")
    # Keep SVG text as <text> so labels stay searchable and selectable.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "geo_evidence"}):
        return atomic_write_with(path, lambda tmp: fig.savefig(tmp, format=fmt, **kwargs))


def write_charts(results: Mapping, *, chart_dir: str | Path | None = None) -> dict[str, Any]:
    """Write the charts of one AOI's results (from :func:`load_results`).

    Files, in ``chart_dir`` (default ``<out>/<aoi>/charts``): ``series.png``,
    ``series.svg`` and ``series.vl.json`` (every claim), and per claim
    ``series-<claim>.png``, ``series-<claim>.vl.json`` and ``evidence-<claim>.png``.

    Returns
    -------
    dict
        ``{"series": {"png", "svg", "vega_lite"}, "claims": {claim_id: {...}}}`` of paths.
    """
    from geo_evidence._io import atomic_write_json

    aoi = results["aoi"]
    out = Path(chart_dir) if chart_dir is not None else Path(results["dir"]) / "charts"
    out.mkdir(parents=True, exist_ok=True)
    records, verdicts, simulated = results["records"], results["verdicts"], results["simulated"]
    title = f"{aoi.name}: railcars per scene"
    written: dict[str, Any] = {"series": {}, "claims": {}}
    fig = series_figure(records, verdicts, title=title, simulated=simulated)
    written["series"]["png"] = _save(fig, out / "series.png")
    written["series"]["svg"] = _save(fig, out / "series.svg")
    written["series"]["vega_lite"] = atomic_write_json(out / "series.vl.json", series_spec(records, verdicts, title=title, simulated=simulated))
    for v in verdicts:
        cid = str(v.get("claim_id"))
        name = safe_name(cid)
        entry: dict[str, Any] = {}
        ctitle = f"{aoi.name}: claim {cid}"
        fig = series_figure(records, verdicts, title=ctitle, simulated=simulated, claim_id=v.get("claim_id"))
        entry["png"] = _save(fig, out / f"series-{name}.png")
        entry["vega_lite"] = atomic_write_json(out / f"series-{name}.vl.json",
                                               series_spec(records, verdicts, title=ctitle, simulated=simulated, claim_id=v.get("claim_id")))
        efig = evidence_figure(v, records, aoi=aoi, base_dir=results["dir"], simulated=simulated)
        if efig is not None:
            entry["evidence"] = _save(efig, out / f"evidence-{name}.png")
        written["claims"][cid] = entry
    return written
