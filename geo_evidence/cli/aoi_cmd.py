"""``geoev aoi list`` and ``geoev aoi show NAME``."""

from __future__ import annotations

import json

import click

from geo_evidence.cli._options import format_option


@click.group()
def aoi() -> None:
    """List and inspect areas of interest."""


@aoi.command("list")
def list_() -> None:
    """Names of the bundled AOIs."""
    from geo_evidence.aoi import list_aois

    for name in list_aois():
        click.echo(name)


@aoi.command("show")
@click.argument("name_or_path")
@format_option
def show(name_or_path: str, fmt: str) -> None:
    """Summary of one AOI: tracks, total track length, yard area, metric CRS."""
    from geo_evidence.aoi import load_aoi

    summary = load_aoi(name_or_path).summary()
    if fmt == "json":
        click.echo(json.dumps(summary, indent=2))
        return
    rows = [
        ("id", summary["id"]),
        ("name", summary["name"]),
        ("crs", summary["crs"]),
        ("tracks", f"{summary['tracks']} ({', '.join(summary['track_names'])})"),
        ("track length", f"{summary['track_length_m']:,.0f} m"),
        ("yard area", f"{summary['yard_area_m2']:,.0f} m² ({summary['yard_area_ha']} ha)"),
        ("bounds (lon/lat)", ", ".join(f"{v:.5f}" for v in summary["bounds_lonlat"])),
        ("description", summary["description"]),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")
