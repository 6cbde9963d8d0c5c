"""``geoev series --aoi NAME``: the railcar time series, its NetCDF/CSV and a baseline."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import click

from geo_evidence.cli._options import aoi_option, format_option

log = logging.getLogger(__name__)

results_option = click.option(
    "--results",
    "results",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="COUNTS_JSON",
    help="Use this counts.json ({'aoi', 'records'}) of an earlier `geoev count` instead of running the count.",
)
out_option = click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Results folder; outputs go to DIR/<aoi>/ (default: beside --results, else geoev-out).",
)
scenes_option = click.option(
    "--scenes",
    "scenes",
    default=None,
    metavar="SOURCE",
    help="Scene source for the count (folder, STAC catalog or API); default: the AOI's sample tiles.",
)


def aoi_id_of(name_or_path: str) -> str:
    """The id of ``--aoi`` (validating the AOI file)."""
    from geo_evidence.aoi import load_aoi

    return load_aoi(name_or_path).id


def records_for(aoi: str, *, results: Path | None, out: Path | None, scenes: str | None) -> tuple[str, list[dict], Path]:
    """(aoi id, records, output folder) from ``--results`` or from the count pipeline.

    With ``--results``, a file named ``counts.json`` inside ``<dir>/<aoi>/`` is read through
    the pipeline so that the analyst's ``review.json`` beside it is applied.
    """
    from geo_evidence.errors import SeriesError

    aoi_id = aoi_id_of(aoi)
    if results is None:
        from geo_evidence.pipeline import DEFAULT_OUT, ensure_counts

        base = out if out is not None else Path(DEFAULT_OUT)
        return aoi_id, ensure_counts(aoi, scenes=scenes, out_dir=base), base / aoi_id
    if not results.is_file():
        raise SeriesError(f"results file {str(results)!r} does not exist; give the counts.json written by `geoev count --out DIR`.")
    try:
        data = json.loads(results.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SeriesError(f"results file {str(results)!r} is not JSON ({exc}); give the counts.json written by `geoev count`.") from None
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        raise SeriesError(f"results file {str(results)!r} has no 'records' list; give the counts.json written by `geoev count`.")
    file_aoi = data.get("aoi")
    if file_aoi is not None and file_aoi != aoi_id:
        raise SeriesError(f"results file {str(results)!r} is about AOI {file_aoi!r}, not {aoi_id!r}; pass --aoi {file_aoi} or that AOI's counts.json.")
    records = data["records"]
    if results.name == "counts.json" and results.parent.name == aoi_id and (results.parent / "review.json").is_file():
        from geo_evidence.pipeline import load_counts

        records = load_counts(results.parent.parent, aoi_id)
    target = (out / aoi_id) if out is not None else results.parent
    return aoi_id, records, target


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{int(x)}" if float(x).is_integer() else f"{x:.1f}"


def _interval(lo, hi) -> str:
    return _fmt(lo) if lo == hi else f"{_fmt(lo)}–{_fmt(hi)}"


@click.command("series")
@aoi_option
@results_option
@out_option
@scenes_option
@click.option("--end", "end", default=None, metavar="YYYY-MM-DD", help="Baseline: the day it leads up to (default: the day of the highest count).")
@click.option("--years", "years", type=click.IntRange(min=1), default=5, show_default=True, help="Baseline: trailing window in years.")
@click.option("--statistic", "statistic", default="max", show_default=True, help="Baseline: max, median, mean, min or pNN (e.g. p90).")
@format_option
def series(aoi, results, out, scenes, end, years, statistic, fmt) -> None:
    """Build the time series of an AOI, write series.nc / series.csv and print a baseline."""
    import numpy as np

    from geo_evidence.series import anomaly, baseline, build_series, save_series, scene_rows

    aoi_id, records, target = records_for(aoi, results=results, out=out, scenes=scenes)
    ds = build_series(records, aoi=aoi_id)
    paths = save_series(ds, target)
    for p in paths.values():
        click.echo(f"wrote {p}", err=True)

    rows = scene_rows(ds)
    if end is None:
        counts = ds["count"].where(ds["usable"]).values
        if np.isfinite(counts).any():
            end = rows[int(np.nanargmax(counts))]["day"].isoformat()
    base = baseline(ds, end=end, years=years, statistic=statistic) if end else None
    peak = anomaly(ds, end, base) if base else None

    if fmt == "json":
        payload = {
            "aoi": aoi_id,
            "simulated": bool(ds.attrs["simulated"]),
            "files": {k: str(v) for k, v in paths.items()},
            "scenes": [{k: v for k, v in r.items() if k != "day"} for r in rows],
            "baseline": base,
            "anomaly": peak,
        }
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return

    if ds.attrs["simulated"]:
        click.echo("SIMULATED scenes: these counts come from simulated imagery, not from real acquisitions.")
    header = f"{'date':<10}  {'scene':<32}  {'status':<11}  {'gsd m':>5}  {'count':>5}  {'interval':>9}  {'obscured':>8}"
    click.echo(header)
    click.echo("-" * len(header))
    for r in rows:
        flag = "" if r["usable"] else "  (not used)"
        obsc = "-" if r["obscured_fraction"] is None else f"{r['obscured_fraction'] * 100:.0f} %"
        click.echo(
            f"{r['day'].isoformat():<10}  {r['scene_id'][:32]:<32}  {r['status']:<11}  {_fmt(r['gsd_m']):>5}  "
            f"{_fmt(r['count']):>5}  {_interval(r['count_low'], r['count_high']):>9}  {obsc:>8}{flag}"
        )
    if base is None:
        click.echo("\nbaseline: no usable scene.")
        return
    click.echo("")
    if base["value"] is None:
        click.echo(f"baseline ({statistic}, {base['start']} to {base['end']}): no usable scene in the window.")
    else:
        click.echo(
            f"baseline ({statistic} over {base['n_scenes']} scene(s), {base['start']} to {base['end']}): "
            f"{_fmt(base['value'])} ({_interval(base['low'], base['high'])})"
        )
    if peak and peak["count"] is not None and base["value"] is not None:
        ratio = "-" if peak["ratio"] is None else f"{peak['ratio']:.2f}×"
        above = "wholly above" if peak["margin"] > 0 else "not wholly above"
        click.echo(
            f"{peak['date']}: {_fmt(peak['count'])} ({_interval(peak['low'], peak['high'])}), {ratio} the baseline; "
            f"its interval is {above} the baseline's (margin {_fmt(peak['margin'])})."
        )
