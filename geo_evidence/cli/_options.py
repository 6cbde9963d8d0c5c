"""Options shared by several commands."""

from __future__ import annotations

import click

aoi_option = click.option(
    "--aoi",
    "aoi",
    required=True,
    metavar="NAME_OR_PATH",
    help="A bundled AOI name (see `geoev aoi list`) or a path to an AOI GeoJSON file.",
)

format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format on stdout.",
)
