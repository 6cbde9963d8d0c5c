"""The ``geoev`` command line: thin; it parses, calls the library and formats.

One module per command group (``aoi``, ``count``, ``simulate``, ...). Every
:class:`~geo_evidence.errors.GeoEvidenceError` becomes one line on stderr and exit status 1;
usage mistakes are click's own (exit status 2). Results go to stdout, logs to stderr.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys

import click

from geo_evidence import __version__
from geo_evidence.errors import GeoEvidenceError

# command name -> "module:attribute"; imported only when the command runs, so that
# `geoev --help` and `geoev aoi list` stay fast.
_COMMANDS = {
    "aoi": "geo_evidence.cli.aoi_cmd:aoi",
    "scenes": "geo_evidence.cli.scenes_cmd:scenes",
    "simulate": "geo_evidence.cli.simulate_cmd:simulate",
    "count": "geo_evidence.cli.count_cmd:count",
    "claims": "geo_evidence.cli.claims_cmd:claims",
    "series": "geo_evidence.cli.series_cmd:series",
    "verify": "geo_evidence.cli.verify_cmd:verify",
    "chart": "geo_evidence.cli.chart_cmd:chart",
    "site": "geo_evidence.cli.site_cmd:site",
    "review": "geo_evidence.cli.review_cmd:review",
}


def _available() -> dict[str, str]:
    out = {}
    for name, target in _COMMANDS.items():
        module = target.split(":")[0]
        if importlib.util.find_spec(module) is not None:
            out[name] = target
    return out


class _Geoev(click.Group):
    """A lazy group that turns library errors into one clear line."""

    def list_commands(self, ctx):
        return sorted(_available())

    def get_command(self, ctx, name):
        target = _available().get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GeoEvidenceError as exc:
            click.echo(f"geoev: error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_Geoev, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="geoev")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
def main(verbose: int, quiet: bool) -> None:
    """geo_evidence: check public claims about rail yards against satellite imagery."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="geoev: %(levelname)s: %(message)s", stream=sys.stderr)
