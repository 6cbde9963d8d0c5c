"""``geoev scenes list --aoi NAME [--scenes SOURCE]``."""

from __future__ import annotations

import json
import logging

import click

from geo_evidence.cli._options import aoi_option, format_option

log = logging.getLogger(__name__)


@click.group()
def scenes() -> None:
    """List the scenes available for an AOI."""


@scenes.command("list")
@aoi_option
@click.option(
    "--scenes",
    "source",
    metavar="SOURCE",
    default=None,
    help="Folder of GeoTIFFs, STAC catalog.json (path or URL), or stac-api+URL. Default: the AOI's bundled sample tiles.",
)
@click.option("--collection", default=None, help="STAC API collection to search.")
@click.option("--start", default=None, metavar="YYYY-MM-DD", help="First acquisition date to list.")
@click.option("--end", default=None, metavar="YYYY-MM-DD", help="Last acquisition date to list (inclusive).")
@click.option("--checksum/--no-checksum", default=True, show_default=True,
              help="Show the sha256 prefix (computed by reading the file when the catalog gives none).")
@format_option
def list_(aoi: str, source: str | None, collection: str | None, start: str | None, end: str | None,
          checksum: bool, fmt: str) -> None:
    """Scenes of SOURCE over the AOI, by acquisition datetime, with GSD, CRS and checksum."""
    from geo_evidence.aoi import load_aoi
    from geo_evidence.errors import GeoEvidenceError
    from geo_evidence.imagery import default_scene_source, list_scenes, scene_info

    area = load_aoi(aoi)
    src = source or default_scene_source(area.id)
    found = list_scenes(src, aoi=area, collection=collection, start=start, end=end)
    rows = []
    for s in found:
        crs = s.properties.get("proj:code") or (
            f"EPSG:{s.properties['proj:epsg']}" if s.properties.get("proj:epsg") else None
        )
        gsd = s.properties.get("gsd")
        if crs is None or gsd is None:
            # The catalog does not say: ask the file's header (a few KB, even remotely).
            try:
                info = scene_info(s)
                crs = crs or info["crs"] or "NO CRS"
                gsd = gsd if gsd is not None else info["gsd_m"]
            except GeoEvidenceError as exc:
                crs = crs or "UNREADABLE"
                log.warning("scene %s: %s", s.id, exc)
        rows.append({
            "id": s.id,
            "datetime": s.datetime.isoformat() if s.datetime else None,
            "datetime_source": s.datetime_source,
            "gsd_m": gsd,
            "crs": crs,
            "checksum": _checksum(s) if checksum else s.checksum,
            "simulated": s.simulated,
            "href": s.href,
        })
    if fmt == "json":
        click.echo(json.dumps({"aoi": area.id, "source": str(src), "scenes": rows}, indent=2))
        return
    header = ("id", "datetime", "from", "gsd_m", "crs", "sha256", "simulated")
    table = [header]
    for r in rows:
        table.append((
            r["id"],
            r["datetime"] or "NO DATETIME",
            r["datetime_source"] or "-",
            "-" if r["gsd_m"] is None else f"{r['gsd_m']:g}",
            r["crs"] or "-",
            (r["checksum"] or "-")[:12],
            {True: "SIMULATED", False: "no", None: "?"}[r["simulated"]],
        ))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(f"{str(v):<{w}}" for v, w in zip(row, widths)).rstrip())
    undated = sum(1 for r in rows if r["datetime"] is None)
    click.echo(f"{len(rows)} scene(s) from {src}" + (f"; {undated} without an acquisition datetime" if undated else ""), err=True)


def _checksum(scene) -> str | None:
    from geo_evidence.errors import GeoEvidenceError
    from geo_evidence.imagery import scene_checksum

    try:
        return scene_checksum(scene)
    except GeoEvidenceError as exc:  # one unreadable scene must not hide the others
        log.warning("scene %s: %s", scene.id, exc)
        return None
