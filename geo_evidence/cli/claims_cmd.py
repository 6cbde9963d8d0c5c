"""``geoev claims``: check the registered claims of an AOI, list them, extract candidates from text."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from geo_evidence.cli._options import aoi_option, format_option
from geo_evidence.cli.series_cmd import out_option, results_option, scenes_option

log = logging.getLogger(__name__)


@click.group("claims")
def claims() -> None:
    """Check public claims against the counts; find candidate claims in articles."""


def _claims_file(aoi: str, aoi_id: str, claims_file: Path | None) -> Path:
    if claims_file is not None:
        return claims_file
    text = str(aoi)
    if text.endswith((".geojson", ".json")):
        # A user's own AOI file: its claims sit beside it as <stem>.claims.json.
        p = Path(text)
        return p.with_name(p.name.rsplit(".", 1)[0] + ".claims.json")
    from geo_evidence.claims import claims_path

    return claims_path(aoi_id)


def _fmt(x) -> str:
    if x is None:
        return "-"
    return f"{int(x)}" if float(x).is_integer() else f"{x:.2f}".rstrip("0").rstrip(".")


def _counts_used(v: dict) -> str:
    """The measured interval and the scene (or baseline) it came from, in a few words."""
    if v["verdict"] == "not_assessable":
        return "-"
    parts = []
    used = [s for s in v["scenes"] if s.get("used")]
    m = v.get("measured")
    if m and v["claim"].get("kind") != "period_statistic":
        iv = _fmt(m["value"]) if m["low"] == m["high"] else f"{_fmt(m['value'])} ({_fmt(m['low'])}–{_fmt(m['high'])})"
        parts.append(f"{iv} on {used[0]['datetime'][:10]}" if used else iv)
    b = v.get("baseline")
    if b and b.get("value") is not None:
        parts.append(f"{b['statistic']} {_fmt(b['value'])} ({_fmt(b['low'])}–{_fmt(b['high'])}) over {b['n_scenes']} scenes")
    if not parts:
        unused = [s for s in v["scenes"] if not s.get("used")]
        return f"none ({len(unused)} unusable)" if unused else "none"
    return "; ".join(parts)


@claims.command("check")
@aoi_option
@results_option
@click.option("--claims", "claims_file", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Claims file (default: the AOI's aoi/<aoi>.claims.json).")
@out_option
@scenes_option
@click.option("--today", "today", default=None, metavar="YYYY-MM-DD", help="Evaluation day (default: today, UTC).")
@format_option
def check(aoi, results, claims_file, out, scenes, today, fmt) -> None:
    """Verdicts on every claim of an AOI: supported, contradicted, inconclusive or not assessable."""
    from geo_evidence._io import atomic_write_json
    from geo_evidence.claims import evaluate_claims, load_claims
    from geo_evidence.cli.series_cmd import aoi_id_of, records_for

    aoi_id = aoi_id_of(aoi)
    # Load the claims before counting: a typo in the claims file should not cost a count.
    registered = load_claims(_claims_file(aoi, aoi_id, claims_file), aoi=aoi_id)
    aoi_id, records, target = records_for(aoi, results=results, out=out, scenes=scenes)
    verdicts = evaluate_claims(registered, records, today=today)
    payload = {"aoi": aoi_id, "simulated": any(r.get("simulated") for r in records), "verdicts": verdicts}
    path = atomic_write_json(target / "verdicts.json", payload)
    click.echo(f"wrote {path}", err=True)

    if fmt == "json":
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    if payload["simulated"]:
        click.echo("SIMULATED scenes: verdicts below rest on simulated imagery, not on real acquisitions.")
    rows = [(v["claim_id"], v["verdict"], _counts_used(v), _fmt(v["threshold"]), v["reason"]) for v in verdicts]
    heads = ("claim", "verdict", "counts used", "threshold", "reason")
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(heads[:4])]
    click.echo("  ".join(h.ljust(w) for h, w in zip(heads[:4], widths)) + "  reason")
    click.echo("  ".join("-" * w for w in widths) + "  ------")
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    tally = {}
    for v in verdicts:
        tally[v["verdict"]] = tally.get(v["verdict"], 0) + 1
    click.echo("\n" + ", ".join(f"{n} {k}" for k, n in sorted(tally.items())) if tally else "no claims registered.")


@claims.command("list")
@aoi_option
@click.option("--claims", "claims_file", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE")
@format_option
def list_(aoi, claims_file, fmt) -> None:
    """The registered claims of an AOI (validated)."""
    from geo_evidence.claims import load_claims
    from geo_evidence.cli.series_cmd import aoi_id_of

    aoi_id = aoi_id_of(aoi)
    registered = load_claims(_claims_file(aoi, aoi_id, claims_file), aoi=aoi_id)
    if fmt == "json":
        click.echo(json.dumps({"aoi": aoi_id, "claims": registered}, indent=2, ensure_ascii=False))
        return
    if not registered:
        click.echo(f"no claims registered for {aoi_id}.")
    for c in registered:
        what = c.get("kind") or "not assessable"
        click.echo(f"{c['id']}  [{what}]  {c['quote']['en']}  ({c['source']['outlet']}, {c['source']['date']})")


@claims.command("extract")
@click.argument("text_file", type=click.Path(dir_okay=False, path_type=Path))
@format_option
def extract(text_file, fmt) -> None:
    """Candidate claims (numbers with units, qualifiers, dates, places) in a French or English text file."""
    from geo_evidence.claims import extract_claims_from_file

    found = extract_claims_from_file(text_file)
    if fmt == "json":
        click.echo(json.dumps({"file": str(text_file), "candidates": found}, indent=2, ensure_ascii=False))
        return
    if not found:
        click.echo(f"no candidate claims in {text_file}.")
        return
    for c in found:
        value = "-" if c["value"] is None else _fmt(c["value"])
        # "~" marks a date from a neighbouring sentence or with a borrowed year.
        dates = ", ".join(dict.fromkeys(
            ("" if d["in_sentence"] and not d.get("year_inferred") else "~") + (d["iso"] or d["text"]) for d in c["dates"]
        )) or "-"
        places = ", ".join(p["name"] for p in c["places"]) or "-"
        click.echo(
            f"[{c['span']['start']}:{c['span']['end']}] {c['span']['text']!r}  "
            f"{c['comparator'] or '?'} {value} {c['metric']}"
            + (f" ({c['car_type']})" if c["car_type"] else "")
            + f"  dates: {dates}  places: {places}"
            + ("  [railcars at a known place: assessable?]" if c["assessable_hint"] else "")
        )
