"""``geoev simulate scene`` (one SIMULATED scene) and ``geoev simulate samples``."""

from __future__ import annotations

import json

import click

from geo_evidence.cli._options import aoi_option


def _parse_cars(value: str | None) -> dict[str, int] | None:
    if not value:
        return None
    out = {}
    for part in value.split(","):
        name, _, count = part.partition("=")
        try:
            out[name.strip()] = int(count)
        except ValueError:
            raise click.BadParameter(f"expected TYPE=N[,TYPE=N...], got {value!r}", param_hint="--cars") from None
    return out


@click.group()
def simulate() -> None:
    """Render SIMULATED scenes (with truth) of a yard; regenerate the sample tiles."""


@simulate.command("scene")
@aoi_option
@click.option("--date", "when", required=True, help="Acquisition time, ISO 8601 (e.g. 2023-10-05T02:10:00Z).")
@click.option("--gsd", "gsd_m", type=float, default=0.5, show_default=True, help="Ground sample distance (m), 0.3 to 10.")
@click.option("--n-cars", type=int, default=None, help="Total railcars in a default type mix (default 20).")
@click.option("--cars", "cars_text", default=None, metavar="TYPE=N,...", help="Exact counts, e.g. gondola=175,tank=66,locomotive=6.")
@click.option("--season", type=click.Choice(["summer", "autumn", "snow"]), default="summer", show_default=True)
@click.option("--sun-azimuth", type=float, default=150.0, show_default=True)
@click.option("--sun-elevation", type=float, default=40.0, show_default=True)
@click.option("--clouds", "cloud_cover", type=float, default=0.0, show_default=True, help="Cloud cover fraction 0..1.")
@click.option("--haze", type=float, default=0.0, show_default=True, help="Haze 0..1.")
@click.option("--misregistration", nargs=3, type=float, default=(0.0, 0.0, 0.0), show_default=True, metavar="DX DY DEG", help="Track shift (m) and rotation (deg) against the AOI lines.")
@click.option("--nodata-edge", type=float, default=0.0, show_default=True, help="Fraction of the extent outside the image footprint.")
@click.option("--pan", "panchromatic", is_flag=True, help="Panchromatic (one band) instead of RGB.")
@click.option("--crs", default=None, help="Output CRS (default the AOI's UTM zone).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--scene-id", default=None, help="File stem (default <aoi>_<date>_sim).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="simulated", show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace existing files.")
def scene(aoi, when, gsd_m, n_cars, cars_text, season, sun_azimuth, sun_elevation, cloud_cover, haze, misregistration, nodata_edge, panchromatic, crs, seed, scene_id, out_dir, overwrite):
    """Render one SIMULATED scene of AOI and write COG + truth + STAC item to --out."""
    from geo_evidence.aoi import load_aoi
    from geo_evidence.simulate import simulate_scene, write_scene

    a = load_aoi(aoi)
    scene = simulate_scene(
        a, when=when, gsd_m=gsd_m, n_cars=n_cars, cars=_parse_cars(cars_text), season=season,
        sun_azimuth=sun_azimuth, sun_elevation=sun_elevation, cloud_cover=cloud_cover, haze=haze,
        misregistration_m=misregistration[:2], misregistration_deg=misregistration[2],
        nodata_edge=nodata_edge, panchromatic=panchromatic, crs=crs, seed=seed,
    )
    sid = scene_id or f"{a.id}_{scene.params['when'][:10]}_sim"
    paths = write_scene(scene, out_dir, scene_id=sid, overwrite=overwrite)
    click.echo(json.dumps({"scene_id": sid, "cars": len(scene.truth), "visible": sum(t["visible"] for t in scene.truth), **{k: str(v) for k, v in paths.items()}}, indent=2))


@simulate.command("samples")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="Folder (default the checkout's sample_tiles/).")
@click.option("--aoi", "aois", multiple=True, help="Only these AOIs (repeatable); default all.")
def samples(out_dir, aois):
    """Regenerate the bundled SIMULATED sample tiles (atomically, per AOI)."""
    from geo_evidence.simulate.samples import SAMPLE_AOIS, build_samples

    for name in aois:
        if name not in SAMPLE_AOIS:
            raise click.BadParameter(f"no sample series for {name!r}; known: {', '.join(SAMPLE_AOIS)}", param_hint="--aoi")
    written = build_samples(out_dir, aois=tuple(aois) or SAMPLE_AOIS, progress=lambda sid: click.echo(f"rendering {sid}", err=True))
    for aoi_id, path in written.items():
        click.echo(f"{aoi_id}\t{path}")
