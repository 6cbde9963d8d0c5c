"""``geoev site --aoi NAME|all --out DIR``: build the static claim site."""

from __future__ import annotations

import click


@click.command()
@click.option("--aoi", "aois", required=True, multiple=True, metavar="NAME_OR_PATH|all",
              help="AOI to publish (repeatable), or `all` for every bundled AOI with results or claims.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Site folder. An existing folder must be empty or a previous geoev site (replaced), unless --force.")
@click.option("--results", "results", default="geoev-out", show_default=True, type=click.Path(file_okay=False),
              help="Where `geoev count` wrote its results (<results>/<aoi>/counts.json, verdicts.json, manifest.json).")
@click.option("--force", is_flag=True, help="Replace --out even when it is not a geoev site.")
@click.option("--compute/--no-compute", default=True, show_default=True,
              help="Run the count and check the claims of AOIs that have no results yet.")
def site(aois: tuple[str, ...], out: str, results: str, force: bool, compute: bool) -> None:
    """Build the static claim site: index of claims with verdicts, one page per claim.

    The site works from the file system (file://) and from any static host; it makes no
    request to any other host. It is built in a temporary folder and moved into place.
    """
    from geo_evidence.site import build_site

    names = ["all"] if "all" in aois else list(aois)
    path = build_site(names, out=out, out_dir=results, force=force, compute=compute)
    click.echo(str(path / "index.html"))
