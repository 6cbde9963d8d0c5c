"""``geoev count``: count railcars in every scene of one or more AOIs."""

from __future__ import annotations

import json
import sys

import click

from geo_evidence.cli._options import format_option


@click.command()
@click.option("--aoi", "aois", multiple=True, required=True, metavar="NAME_OR_PATH",
              help="Bundled AOI name, AOI GeoJSON path, or 'all'. Repeat for several AOIs.")
@click.option("--scenes", default=None, metavar="PATH_OR_URL",
              help="Folder of GeoTIFFs, STAC catalog path/URL, or stac-api+URL. Default: the AOI's bundled sample tiles.")
@click.option("--collection", default=None, help="STAC API collection to search.")
@click.option("--start", default=None, metavar="DATE", help="Only scenes on or after this ISO date.")
@click.option("--end", default=None, metavar="DATE", help="Only scenes on or before this ISO date.")
@click.option("--out", "out_dir", default="geoev-out", show_default=True, type=click.Path(file_okay=False),
              help="Results folder (one sub-folder per AOI).")
@format_option
@click.option("--no-cache", is_flag=True,
              help="Recount (and re-hash) every scene even when a cached result matches.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Run on a local dask.distributed cluster of N worker processes.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on an existing dask.distributed scheduler (tcp://host:port).")
@click.option("--margin", "margin_m", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Metres read around the AOI (covers track misregistration).")
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr.")
def count(aois, scenes, collection, start, end, out_dir, fmt, no_cache, workers, scheduler, margin_m, progress) -> None:
    """Count railcars per track in every scene of the AOI(s).

    Writes per-scene records, per-car detections (GeoJSON and GeoParquet), counts.json and a
    provenance manifest under OUT/<aoi>/. A scene that fails is reported with its status and
    reason; the other scenes finish, and the exit status is 1.
    """
    from geo_evidence.pipeline import resolve_aois, run_count

    if workers and scheduler:
        raise click.UsageError("give --workers or --scheduler, not both.")
    resolved = resolve_aois(aois)
    bar = {"bar": None}

    def on_start(total: int) -> None:
        if progress and total:
            bar["bar"] = click.progressbar(length=total, label="counting scenes", file=sys.stderr)
            bar["bar"].__enter__()

    def on_result(record: dict) -> None:
        if bar["bar"] is not None:
            bar["bar"].update(1)

    try:
        results = run_count(
            resolved, scenes=scenes, collection=collection, start=start, end=end, out_dir=out_dir, use_cache=not no_cache, workers=workers,
            scheduler=scheduler, margin_m=margin_m, on_result=on_result, on_start=on_start,
        )
    finally:
        if bar["bar"] is not None:
            bar["bar"].__exit__(None, None, None)

    if fmt == "json":
        payload = [{"aoi": r.aoi, "simulated": all(x.get("simulated") for x in r.records), "records": r.records} for r in results]
        click.echo(json.dumps(payload[0] if len(payload) == 1 else {"aois": payload}, indent=2, ensure_ascii=False))
    else:
        for r in results:
            _print_table(r)
    failed = [(r.aoi, rec) for r in results for rec in r.failed]
    for aoi_id, rec in failed:
        click.echo(f"geoev: scene {rec['scene_id']} ({aoi_id}): {rec['status']}: {rec['message']}", err=True)
    if failed:
        total = sum(len(r.records) for r in results)
        click.echo(f"geoev: error: {len(failed)} of {total} scenes failed; the other results are written.", err=True)
        sys.exit(1)


def _print_table(result) -> None:
    simulated = bool(result.records) and all(r.get("simulated") for r in result.records)
    title = f"AOI {result.aoi}: {len(result.records)} scenes ({result.computed} counted, {result.cached} from cache)"
    click.echo(title + ("  [SIMULATED imagery]" if simulated else ""))
    header = f"{'date':<10}  {'scene':<34} {'gsd':>5}  {'count':>5}  {'interval':>11}  {'obscured':>8}  {'method':<10}  status"
    click.echo(header)
    click.echo("-" * len(header))
    for r in result.records:
        date = (r["datetime"] or "unknown")[:10]
        if r["count"] is None:
            counts = f"{'-':>5}  {'-':>11}  {'-':>8}  {'-':<10}"
        else:
            counts = (f"{r['count']:>5}  {'[' + str(r['count_low']) + ', ' + str(r['count_high']) + ']':>11}  "
                      f"{r['obscured_fraction']:>8.0%}  {r['method']:<10}")
        gsd = f"{r['gsd_m']:.1f}" if r.get("gsd_m") else "-"
        click.echo(f"{date:<10}  {r['scene_id'][:34]:<34} {gsd:>5}  {counts}  {r['status']}")
    click.echo(f"results: {result.out_dir}/counts.json  manifest: {result.manifest}")
    click.echo("")
