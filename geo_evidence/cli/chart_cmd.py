"""``geoev chart --aoi NAME [--out DIR]``: static and interactive charts of one AOI's results."""

from __future__ import annotations

import click

from geo_evidence.cli._options import aoi_option


@click.command()
@aoi_option
@click.option("--out", "out_dir", default="geoev-out", show_default=True, type=click.Path(file_okay=False),
              help="Output folder of `geoev count`; charts go to <out>/<aoi>/charts/.")
@click.option("--compute/--no-compute", default=True, show_default=True,
              help="Run the count and check the claims when the AOI has no results yet.")
def chart(aoi: str, out_dir: str, compute: bool) -> None:
    """Counts per scene with intervals, baselines, claim thresholds and verdicts (PNG, SVG,
    Vega-Lite), and the evidence panels of each claim (PNG). Prints the files written."""
    from geo_evidence.charts import load_results, write_charts

    written = write_charts(load_results(aoi, out_dir=out_dir, compute=compute))
    for path in written["series"].values():
        click.echo(str(path))
    for files in written["claims"].values():
        for path in files.values():
            click.echo(str(path))
