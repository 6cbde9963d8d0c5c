"""``geoev review add|list``: an analyst confirms, corrects or overrides a scene's count."""

from __future__ import annotations

import json

import click

from geo_evidence.cli._options import aoi_option, format_option

out_option = click.option(
    "--out",
    "out_dir",
    default="geoev-out",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Output folder of `geoev count` (holds <aoi>/counts.json and <aoi>/review.json).",
)


def _aoi_id(value: str) -> str:
    from geo_evidence.aoi import load_aoi

    return load_aoi(value).id


def _parse_missed(values: tuple[str, ...]) -> list[dict]:
    out = []
    for text in values:
        # "LON,LAT" is a point; "LON,LAT;LON,LAT;LON,LAT" is a polygon.
        try:
            pairs = [tuple(float(v) for v in p.split(",")) for p in text.split(";") if p.strip()]
        except ValueError:
            raise click.BadParameter(f"{text!r} is not LON,LAT or LON,LAT;LON,LAT;... (degrees).", param_hint="--missed") from None
        if not pairs or any(len(p) != 2 for p in pairs) or len(pairs) == 2:
            raise click.BadParameter(f"{text!r}: give one LON,LAT point or at least three ';'-separated pairs.", param_hint="--missed")
        out.append({"lon": pairs[0][0], "lat": pairs[0][1]} if len(pairs) == 1 else {"polygon": [list(p) for p in pairs]})
    return out


@click.group()
def review() -> None:
    """Analyst review of automatic counts (kept in <out>/<aoi>/review.json)."""


@review.command("add")
@aoi_option
@click.option("--scene", "scene_id", required=True, help="Scene id, as in `geoev count --format json`.")
@click.option("--who", required=True, help="Name of the analyst.")
@click.option("--why", required=True, help="Why: what the analyst saw.")
@click.option("--count", type=click.IntRange(min=0), default=None, help="The analyst's own count (overrides the automatic one).")
@click.option("--low", "count_low", type=click.IntRange(min=0), default=None, help="Lower end of the analyst's interval.")
@click.option("--high", "count_high", type=click.IntRange(min=0), default=None, help="Upper end of the analyst's interval.")
@click.option("--false-detection", "false_detections", multiple=True, metavar="DETECTION_ID", help="A detection that is not a railcar (repeatable).")
@click.option("--missed", multiple=True, metavar="LON,LAT[;LON,LAT;...]", help="A railcar the counter missed: a point or a polygon (repeatable).")
@out_option
def add(aoi, scene_id, who, why, count, count_low, count_high, false_detections, missed, out_dir) -> None:
    """Confirm (no --count/--false-detection/--missed), correct or override one scene's count."""
    from geo_evidence.review import add_review, make_review

    aoi_id = _aoi_id(aoi)
    entry = make_review(
        scene_id,
        who=who,
        why=why,
        count=count,
        count_low=count_low,
        count_high=count_high,
        false_detections=false_detections,
        missed=_parse_missed(missed),
    )
    path = add_review(aoi_id, entry, out_dir=out_dir)
    click.echo(f"review of {scene_id} recorded in {path}", err=True)


@review.command("list")
@aoi_option
@out_option
@format_option
def list_(aoi, out_dir, fmt) -> None:
    """Scenes with automatic and reviewed counts side by side."""
    from geo_evidence.pipeline import load_counts

    records = load_counts(out_dir, _aoi_id(aoi))
    if fmt == "json":
        click.echo(json.dumps(records, indent=2, ensure_ascii=False))
        return
    click.echo(f"{'scene':<36} {'date':<10} {'auto':>6} {'reviewed':>9}  who / why")
    for rec in records:
        auto = rec.get("count_auto", rec.get("count"))
        reviewed = rec.get("count") if rec.get("reviewed") else None
        note = f"{rec['review']['who']}: {rec['review']['why']}" if rec.get("reviewed") else ""
        click.echo(
            f"{rec['scene_id']:<36} {str(rec.get('datetime'))[:10]:<10} "
            f"{'-' if auto is None else auto:>6} {'-' if reviewed is None else reviewed:>9}  {note}"
        )
