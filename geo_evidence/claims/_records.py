"""Claim records: the fields, strict validation, and loading ``aoi/<aoi>.claims.json``.

A claims file is ``{"aoi": "<id>", "claims": [claim, ...]}``. A claim record:

``id``
    Safe identifier, unique in the file (``tumangang-2023-10-05-more-than-70``).
``aoi``
    The AOI id; must equal the file's ``aoi``.
``metric``
    ``"railcars"`` for a claim an image can test (optionally narrowed by ``car_type``:
    ``box``, ``tank``, ``gondola`` (ore cars too), ``flat``, ``hopper``, ``locomotive``).
    A claim that is not assessable may name any metric (``"containers"``, ``"shells"``).
``kind``
    ``count_at_date``: the count on ``date`` (± ``tolerance_days``, default 0).
    ``period_statistic``: a ``statistic`` (``max``, ``median``, ``pNN``...) of the counts
    over ``period`` (``{"start", "end"}``, both inclusive, or ``{"years": N, "before":
    DATE}``, the N years before DATE with DATE left out).
    ``comparison``: the count on ``date`` (± ``tolerance_days``) against a ``baseline``
    (``{"years": N, "statistic": "max"}``, the N years before ``date``); ``value`` is then
    a ratio: "unprecedented" is ``gt 1`` (above the highest count of the baseline), "far
    greater" ``ge 2``.
``comparator``
    What the wording implies: ``gt`` ("plus de", "more than", "over"), ``ge`` ("au moins",
    "at least"), ``approx`` ("environ", "approximately", "about"; ``tolerance`` is the
    relative half-width, default 0.1), ``le`` ("au plus", "no more than", "at most",
    "seuls", "only"), ``lt`` ("moins de", "fewer than"), ``eq`` (an exact figure).
``value``
    The number asserted (a count, or a ratio for ``comparison``).
``source``
    ``{"outlet", "date", "article"}``: who said it, when (``YYYY-MM-DD`` or ``YYYY-MM``) and the article
    file it was read in (or a note that it comes from a report outside the articles).
``quote``
    ``{"fr", "en"}``: a short quote in the original French and its English translation.
``assessable`` / ``reason``
    ``assessable`` defaults to True; a claim an image of this AOI cannot test has
    ``assessable: false`` and a ``reason``.
``notes``
    Optional free text.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

from geo_evidence.errors import ClaimError

SAFE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
KINDS = ("count_at_date", "period_statistic", "comparison")
COMPARATORS = ("gt", "ge", "approx", "le", "lt", "eq")
METRICS = ("railcars",)
CAR_TYPES = ("box", "tank", "gondola", "flat", "hopper", "locomotive", "unknown")
DEFAULT_APPROX_TOLERANCE = 0.1

_REQUIRED = ("id", "aoi", "metric", "source", "quote")
_ALLOWED = {
    "id", "aoi", "metric", "car_type", "kind", "comparator", "value", "tolerance", "date",
    "tolerance_days", "period", "statistic", "baseline", "source", "quote", "assessable",
    "reason", "notes",
}
_KIND_FIELDS = {
    "count_at_date": ("date",),
    "period_statistic": ("period", "statistic"),
    "comparison": ("date", "baseline"),
}


def _fail(claim_id: Any, field: str, problem: str, fix: str, *, label: str = "") -> None:
    where = f"{label}: " if label else ""
    raise ClaimError(f"{where}claim {claim_id!r}, field {field!r}: {problem}; {fix}.")


def _check_date(value: Any, cid: Any, field: str, *, label: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        _fail(cid, field, f"{value!r} is not a date", "write it as YYYY-MM-DD, e.g. 2023-10-05", label=label)
    try:
        date.fromisoformat(value)
    except ValueError:
        _fail(cid, field, f"{value!r} is not a calendar date", "check the month and the day", label=label)
    return value


def _check_statistic(value: Any, cid: Any, field: str, *, label: str) -> str:
    if value in ("max", "min", "median", "mean"):
        return value
    if isinstance(value, str) and re.fullmatch(r"p(\d{1,2}(\.\d+)?|100)", value):
        return value
    _fail(cid, field, f"statistic {value!r} is unknown", "use 'max', 'median', 'mean', 'min' or 'pNN' such as 'p90'", label=label)


def _check_number(value: Any, cid: Any, field: str, *, label: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < minimum:
        _fail(cid, field, f"{value!r} is not a number >= {minimum:g}", "give a number such as 70", label=label)
    return value


def validate_claim(claim: Any, *, aoi: str | None = None, label: str = "", index: int | None = None) -> dict:
    """Check one claim record and return it with defaults filled in.

    Parameters
    ----------
    claim : dict
        The record (see the module docstring for its fields).
    aoi : str, optional
        The AOI id the claim must name (the claims file's ``aoi``).
    label : str
        Where the record came from, for messages (a file name).

    Raises
    ------
    ClaimError
        Naming the claim id, the field and the fix.
    """
    if not isinstance(claim, dict):
        raise ClaimError(f"{label + ': ' if label else ''}claim #{index} is not a JSON object; write each claim as {{\"id\": ..., ...}}.")
    cid = claim.get("id", f"#{index}" if index is not None else None)
    for field in _REQUIRED:
        if field not in claim:
            _fail(cid, field, "is missing", f"add {field!r} (see geo_evidence.claims for the fields)", label=label)
    unknown = sorted(set(claim) - _ALLOWED)
    if unknown:
        _fail(cid, unknown[0], "is not a claim field", f"remove it or use one of {', '.join(sorted(_ALLOWED))}", label=label)
    if not isinstance(cid, str) or not SAFE_ID.match(cid):
        _fail(cid, "id", "is not a safe identifier", "use lower-case letters, digits, '-', '_' and '.'", label=label)
    if not isinstance(claim["aoi"], str) or (aoi is not None and claim["aoi"] != aoi):
        _fail(cid, "aoi", f"{claim['aoi']!r} is not this file's AOI {aoi!r}", f"set it to {aoi!r} or move the claim to the file of its AOI", label=label)

    out = dict(claim)
    assessable = out.setdefault("assessable", True)
    if not isinstance(assessable, bool):
        _fail(cid, "assessable", f"{assessable!r} is not true or false", "write true or false", label=label)
    if not assessable and not (isinstance(out.get("reason"), str) and out["reason"].strip()):
        _fail(cid, "reason", "is missing for a claim that is not assessable", "say in one sentence why an image of this AOI cannot test it", label=label)
    out.setdefault("reason", None)

    src = out["source"]
    if not isinstance(src, dict) or not all(isinstance(src.get(k), str) and src.get(k) for k in ("outlet", "date", "article")):
        _fail(cid, "source", "needs 'outlet', 'date' and 'article' strings", 'write {"outlet": ..., "date": "YYYY-MM-DD", "article": "004_....txt"}', label=label)
    # A publication is often known only to the month ("2023-10").
    if not (isinstance(src["date"], str) and re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", src["date"])):
        _check_date(src["date"], cid, "source.date", label=label)
    quote = out["quote"]
    if not isinstance(quote, dict) or not all(isinstance(quote.get(k), str) and quote.get(k).strip() for k in ("fr", "en")):
        _fail(cid, "quote", "needs 'fr' (the original) and 'en' (a translation)", 'write {"fr": "...", "en": "..."}', label=label)
    for lang in ("fr", "en"):
        if len(quote[lang]) > 400:
            _fail(cid, f"quote.{lang}", f"is {len(quote[lang])} characters long", "keep a short quote (one sentence at most)", label=label)

    if "comparator" in out and out["comparator"] not in COMPARATORS:
        _fail(cid, "comparator", f"{out['comparator']!r} is unknown", f"use one of {', '.join(COMPARATORS)}", label=label)
    if "kind" in out and out["kind"] not in KINDS:
        _fail(cid, "kind", f"{out['kind']!r} is unknown", f"use one of {', '.join(KINDS)}", label=label)
    if "value" in out:
        _check_number(out["value"], cid, "value", label=label)
    for field in ("date",):
        if field in out:
            _check_date(out[field], cid, field, label=label)

    if not assessable:
        # A claim outside the images still names its metric; no further fields are needed.
        if not isinstance(out["metric"], str) or not out["metric"]:
            _fail(cid, "metric", "is empty", "name what the claim counts, e.g. 'containers'", label=label)
        return out

    if out["metric"] not in METRICS:
        _fail(cid, "metric", f"{out['metric']!r} cannot be measured on the images", "use 'railcars' (with 'car_type' for one type) or mark the claim assessable: false with a reason", label=label)
    car_type = out.setdefault("car_type", None)
    if car_type is not None and car_type not in CAR_TYPES:
        _fail(cid, "car_type", f"{car_type!r} is unknown", f"use one of {', '.join(CAR_TYPES)} (ore cars are 'gondola')", label=label)
    for field in ("kind", "comparator", "value"):
        if field not in out:
            _fail(cid, field, "is missing", f"add {field!r}; an assessable claim needs kind, comparator and value", label=label)
    for field in _KIND_FIELDS[out["kind"]]:
        if field not in out:
            _fail(cid, field, f"is missing for kind {out['kind']!r}", f"add {field!r}", label=label)

    if out["comparator"] == "approx":
        tol = out.setdefault("tolerance", DEFAULT_APPROX_TOLERANCE)
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < 1:
            _fail(cid, "tolerance", f"{tol!r} is not a relative tolerance in (0, 1)", "write e.g. 0.1 for ±10 %", label=label)
    elif "tolerance" in out:
        _fail(cid, "tolerance", f"only applies to comparator 'approx', not {out['comparator']!r}", "remove it", label=label)

    if out["kind"] in ("count_at_date", "comparison"):
        td = out.setdefault("tolerance_days", 0)
        if isinstance(td, bool) or not isinstance(td, int) or td < 0:
            _fail(cid, "tolerance_days", f"{td!r} is not a whole number of days >= 0", "write e.g. 0 or 2", label=label)
    if out["kind"] == "period_statistic":
        _check_statistic(out["statistic"], cid, "statistic", label=label)
        period = out["period"]
        if not isinstance(period, dict):
            _fail(cid, "period", f"{period!r} is not an object", 'write {"start": ..., "end": ...} or {"years": 5, "before": "2023-10-05"}', label=label)
        if "before" in period:
            _check_date(period["before"], cid, "period.before", label=label)
            yrs = period.get("years")
            if isinstance(yrs, bool) or not isinstance(yrs, int) or yrs < 1 or set(period) - {"before", "years"}:
                _fail(cid, "period.years", f"{yrs!r} is not a whole number of years >= 1", 'write {"years": 5, "before": "2023-10-05"}', label=label)
        else:
            if set(period) != {"start", "end"}:
                _fail(cid, "period", f"has keys {sorted(period)}", 'write {"start": ..., "end": ...} or {"years": 5, "before": "2023-10-05"}', label=label)
            _check_date(period["start"], cid, "period.start", label=label)
            _check_date(period["end"], cid, "period.end", label=label)
            if period["end"] < period["start"]:
                _fail(cid, "period", f"ends ({period['end']}) before it starts ({period['start']})", "swap start and end", label=label)
    if out["kind"] == "comparison":
        base = out["baseline"]
        if not isinstance(base, dict) or set(base) - {"years", "statistic"}:
            _fail(cid, "baseline", f"{base!r} is not a baseline", 'write {"years": 5, "statistic": "max"}', label=label)
        yrs = base.setdefault("years", 5)
        if isinstance(yrs, bool) or not isinstance(yrs, int) or yrs < 1:
            _fail(cid, "baseline.years", f"{yrs!r} is not a whole number of years >= 1", "write e.g. 5", label=label)
        _check_statistic(base.setdefault("statistic", "max"), cid, "baseline.statistic", label=label)
    return out


def validate_claims(data: Any, *, aoi: str | None = None, label: str = "claims") -> list[dict]:
    """Validate a parsed claims file (``{"aoi", "claims"}``) and return its claims.

    Parameters
    ----------
    data : dict
        The parsed file.
    aoi : str, optional
        The AOI id the file must be about. Without it, the file's ``aoi`` must name a
        bundled AOI.
    """
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list) or "aoi" not in data:
        raise ClaimError(f"{label}: a claims file is a JSON object {{\"aoi\": \"<id>\", \"claims\": [...]}}; wrap the claims in one.")
    file_aoi = data["aoi"]
    if aoi is not None and file_aoi != aoi:
        raise ClaimError(f"{label}: claims file is about AOI {file_aoi!r}, not {aoi!r}; pass the claims file of {aoi!r} (--claims FILE).")
    if aoi is None:
        from geo_evidence.aoi import list_aois

        known = list_aois()
        if file_aoi not in known:
            raise ClaimError(f"{label}: AOI {file_aoi!r} is not a bundled AOI ({', '.join(known)}); fix 'aoi' or give the AOI file with --aoi PATH.")
    extra = sorted(set(data) - {"aoi", "claims", "description", "notes"})
    if extra:
        raise ClaimError(f"{label}: unknown top-level field {extra[0]!r}; a claims file holds 'aoi', 'claims' and optional 'description' or 'notes'.")
    claims, seen = [], set()
    for i, claim in enumerate(data["claims"]):
        rec = validate_claim(claim, aoi=file_aoi, label=label, index=i)
        if rec["id"] in seen:
            _fail(rec["id"], "id", "is used by two claims", "give each claim a unique id", label=label)
        seen.add(rec["id"])
        claims.append(rec)
    return claims


def claims_path(aoi: str) -> Path:
    """The bundled claims file of an AOI id (``aoi/<aoi>.claims.json``)."""
    from geo_evidence._resources import aoi_dir

    return aoi_dir() / f"{aoi}.claims.json"


def load_claims(source: str | Path, *, aoi: str | None = None) -> list[dict]:
    """Load and validate a claims file, by path or by bundled AOI id.

    Parameters
    ----------
    source : str or Path
        A path to a ``*.claims.json`` file, or a bundled AOI id (``"tumangang"``).
    aoi : str, optional
        The AOI id the file must be about (required for AOIs that are not bundled).

    Raises
    ------
    ClaimError
        Missing or unreadable file, invalid JSON, or any invalid claim.
    """
    text = str(source)
    if isinstance(source, Path) or text.endswith(".json") or "/" in text:
        path = Path(text).expanduser()
    else:
        from geo_evidence.aoi import SAFE_NAME

        if not SAFE_NAME.match(text):
            raise ClaimError(f"{text!r} is neither a claims file path nor an AOI name; give a path ending in .claims.json.")
        path = claims_path(text)
        aoi = aoi or text
    if not path.is_file():
        raise ClaimError(f"claims file {str(path)!r} does not exist; write one (see aoi/tumangang.claims.json) or pass --claims FILE.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClaimError(f"claims file {str(path)!r} is not valid JSON ({exc}); fix the JSON syntax.") from None
    return validate_claims(data, aoi=aoi, label=path.name)
