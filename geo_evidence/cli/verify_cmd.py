"""``geoev verify MANIFEST``: re-check a count run's inputs and outputs."""

from __future__ import annotations

import json
import sys

import click

from geo_evidence.cli._options import format_option


@click.command()
@click.argument("manifest", type=click.Path(dir_okay=False))
@format_option
def verify(manifest: str, fmt: str) -> None:
    """Re-hash every scene, AOI, claims file and output named in MANIFEST; exit 1 if any changed."""
    from geo_evidence.provenance import verify_manifest

    report = verify_manifest(manifest)
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
    else:
        for p in report["problems"]:
            click.echo(f"{p['status']:<8} {p['kind']:<7} {p['name']}")
        click.echo(f"{report['checked']} files checked, {len(report['problems'])} changed or missing.")
    if not report["ok"]:
        click.echo(f"geoev: error: {manifest} does not match its files (see above).", err=True)
        sys.exit(1)
