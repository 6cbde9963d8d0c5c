"""Build the static claim site from count results, verdicts and the provenance manifest.

Layout of the site folder::

    index.html                     every claim with its verdict badge, per AOI
    <aoi>/<claim>.html             one page per claim (ClaimReview JSON-LD inside)
    <aoi>/charts/*.png|svg|json    static charts, evidence panels, Vega-Lite specs
    static/                        style sheet, site script, vendored Vega (offline)
    .geoev-site.json               marks the folder as a geoev site (safe to replace)

All text that comes from claims, articles, AOI files or reviews goes through Jinja2 with
autoescaping; JSON inside ``<script>`` blocks is written with ``<``, ``>``, ``&`` and
``'`` as ``\\u`` escapes, so nothing in a quote can close the block. The site is built in
a temporary folder beside ``out`` and moved into place at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from geo_evidence import __version__
from geo_evidence.charts import (
    SIMULATED_LABEL,
    VERDICT_COLOURS,
    VERDICT_LABELS,
    busiest_baseline_scene,
    claim_scene,
    comparator_symbol,
    load_results,
    safe_name,
    series_spec,
    write_charts,
)
from geo_evidence.errors import OutputExistsError, SceneSourceError

__all__ = ["SITE_MARKER", "build_site", "claim_review_jsonld"]

#: File whose presence marks a folder as a site this module wrote (and may replace).
SITE_MARKER = ".geoev-site.json"

#: schema.org ratings: 1 = false ... 5 = true; not assessable has no rating value.
_RATING = {"supported": 5, "inconclusive": 3, "contradicted": 1}

_METHOD_TEXT = {
    "individual": (
        "At about 1.2 m per pixel or finer, each railcar is outlined individually along the "
        "digitised tracks; the count is the number of outlines and its interval widens with "
        "outlines the counter was unsure of (low contrast, partly hidden, touching cars)."
    ),
    "length": (
        "Between about 1.2 m and 5 m per pixel single cars cannot be separated: the counter "
        "measures the occupied length of each track and divides it by a typical car length "
        "(about 15 m with the coupling gap); the interval covers the spread of car lengths."
    ),
    "occupancy": (
        "Coarser than about 5 m per pixel only track occupancy can be seen; the count is a "
        "rough figure with a wide interval and should not be read as precise."
    ),
}


def _package_dir(name: str) -> Path:
    return Path(str(resources.files("geo_evidence.site") / name))


def _env():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_package_dir("templates"))),
        autoescape=True,  # every template is HTML: escape everything not marked safe
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["verdict_label"] = lambda v: VERDICT_LABELS.get(v, str(v).replace("_", " "))
    env.filters["fmt_count"] = _fmt_count
    env.filters["fmt_date"] = lambda v: str(v)[:10] if v else "–"
    env.filters["fmt_datetime"] = lambda v: str(v)[:16].replace("T", " ") + " UTC" if v else "–"
    env.filters["pct"] = lambda v: "–" if v is None else f"{float(v) * 100:.0f} %"
    env.filters["pretty_json"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    env.globals["VERDICT_COLOURS"] = VERDICT_COLOURS
    env.globals["SIMULATED_LABEL"] = SIMULATED_LABEL
    return env


def _fmt_count(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value}"


def _is_site(folder: Path) -> bool:
    marker = folder / SITE_MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("generator") == "geo_evidence"
    except ValueError:
        return False


def _check_out(out: Path, *, force: bool) -> None:
    if not out.exists() or force:
        return
    if not out.is_dir():
        raise OutputExistsError(f"--out {str(out)!r} is a file; give a folder for the site, or --force to replace it.")
    if any(out.iterdir()) and not _is_site(out):
        raise OutputExistsError(
            f"--out {str(out)!r} exists and is not a geoev site (no {SITE_MARKER}); "
            "give a new or empty folder, or --force to replace its contents."
        )


def claim_review_jsonld(verdict: Mapping, *, published: str, url: str | None = None) -> dict:
    """schema.org ``ClaimReview`` for one verdict (a dict ready for ``json.dumps``).

    ``reviewRating.alternateName`` is the verdict (``supported``, ``contradicted``,
    ``inconclusive``, ``not_assessable``); ``itemReviewed`` is the ``Claim`` with its
    source as author and appearance.
    """
    claim = verdict.get("claim") or {}
    source = claim.get("source") or {}
    quote = claim.get("quote") or {}
    rating: dict[str, Any] = {
        "@type": "Rating",
        "alternateName": verdict.get("verdict"),
        "bestRating": 5,
        "worstRating": 1,
        "ratingExplanation": verdict.get("reason"),
    }
    if verdict.get("verdict") in _RATING:
        rating["ratingValue"] = _RATING[verdict["verdict"]]
    appearance: dict[str, Any] = {"@type": "CreativeWork", "publisher": {"@type": "Organization", "name": source.get("outlet")}}
    if source.get("date"):
        appearance["datePublished"] = str(source["date"])
    if source.get("article"):
        appearance["name"] = str(source["article"])
    item: dict[str, Any] = {
        "@type": "Claim",
        "author": {"@type": "Organization", "name": source.get("outlet")},
        "appearance": appearance,
        "text": quote.get("fr") or quote.get("en"),
    }
    if source.get("date"):
        item["datePublished"] = str(source["date"])
    out: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "ClaimReview",
        "claimReviewed": quote.get("en") or quote.get("fr") or str(verdict.get("claim_id")),
        "datePublished": published,
        "author": {"@type": "Organization", "name": "geo_evidence"},
        "reviewRating": rating,
        "itemReviewed": item,
    }
    if url:
        out["url"] = url
    return out


def _method_notes(records: Sequence[Mapping]) -> list[dict]:
    notes = []
    for method in ("individual", "length", "occupancy"):
        gsds = sorted({float(r["gsd_m"]) for r in records if r.get("method") == method and isinstance(r.get("gsd_m"), (int, float))})
        if gsds:
            span = f"{gsds[0]:.2f} m" if len(gsds) == 1 else f"{gsds[0]:.2f}–{gsds[-1]:.2f} m"
            n = sum(1 for r in records if r.get("method") == method)
            notes.append({"method": method, "gsd": span, "scenes": n, "text": _METHOD_TEXT[method]})
    return notes


def _provenance(manifest: Mapping | None, records: Sequence[Mapping]) -> dict:
    manifest = manifest or {}
    scenes = manifest.get("scenes")
    if not scenes:
        scenes = [{"id": r.get("scene_id"), "datetime": r.get("datetime"), "sha256": r.get("scene_checksum")} for r in records]
    return {
        "present": bool(manifest),
        "aoi": manifest.get("aoi") or {},
        "claims": manifest.get("claims") or {},
        "scene_source": manifest.get("scene_source"),
        "scenes": [{"id": s.get("id"), "datetime": s.get("datetime"), "sha256": s.get("sha256")} for s in scenes],
        "software": manifest.get("software") or {},
        "parameters": manifest.get("parameters"),
        "command": manifest.get("command"),
        "started": manifest.get("started"),
        "finished": manifest.get("finished"),
        "n_outputs": len(manifest.get("outputs") or []),
    }


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def _claim_view(verdict: Mapping, records: Sequence[Mapping], charts: Mapping, page_dir: Path) -> dict:
    claim = verdict.get("claim") or {}
    cid = str(verdict.get("claim_id"))
    scene = claim_scene(verdict, records) if claim.get("date") else None  # a period claim has no claim date
    busiest = busiest_baseline_scene(verdict, records)
    threshold = verdict.get("threshold")
    if threshold is None and claim.get("kind") != "comparison":
        threshold = claim.get("value")
    files = {k: _rel(Path(v), page_dir) for k, v in charts.items()}
    return {
        "id": cid,
        "page": f"{safe_name(cid)}.html",
        "verdict": verdict.get("verdict"),
        "reason": verdict.get("reason"),
        "claim": claim,
        "quote": claim.get("quote") or {},
        "source": claim.get("source") or {},
        "comparator": comparator_symbol(claim.get("comparator")),
        "threshold": threshold,
        "baseline": verdict.get("baseline"),
        "scenes": verdict.get("scenes") or [],
        "claim_scene": scene,
        "busiest": busiest,
        "files": files,
    }


def build_site(
    aois: str | Sequence[str],
    *,
    out: str | Path,
    out_dir: str | Path = "geoev-out",
    force: bool = False,
    compute: bool = True,
    now: datetime | None = None,
) -> Path:
    """Build the claim site for one or more AOIs into ``out`` (atomically).

    Parameters
    ----------
    aois : str or list of str
        AOI names or paths; ``"all"`` means every bundled AOI that has results in
        ``out_dir`` or a claims file.
    out : path
        The site folder. If it exists, it must be empty or a previous geoev site
        (it is then replaced) unless ``force``.
    out_dir : path
        Where ``geoev count`` wrote its results (``<out_dir>/<aoi>/counts.json`` ...).
    force : bool
        Replace ``out`` even when it is not a geoev site.
    compute : bool
        Run the count (and evaluate claims) for AOIs without results; otherwise refuse.
    now : datetime, optional
        Build time written on the pages (default: now, UTC).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    OutputExistsError
        ``out`` holds something that is not a geoev site and ``force`` is not set.
    """
    from geo_evidence.aoi import list_aois

    out = Path(out).resolve()
    _check_out(out, force=force)
    if isinstance(aois, str):
        aois = [aois]
    names = list(aois)
    if names == ["all"]:
        from geo_evidence._resources import aoi_dir

        # Every bundled AOI with results; with compute, also those with claims to check.
        names = [
            n for n in list_aois()
            if (Path(out_dir) / n / "counts.json").is_file() or (compute and (aoi_dir() / f"{n}.claims.json").is_file())
        ]
        if not names:
            raise SceneSourceError(f"no AOI has results in {str(out_dir)!r}; run `geoev count --aoi NAME --out {out_dir}` first.")
    results = [load_results(n, out_dir=out_dir, compute=compute) for n in names]
    built = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        _render(results, tmp, built=built)
        _publishable(tmp)
        _check_out(out, force=force)
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _publishable(root: Path) -> None:
    # mkdtemp/mkstemp create private (0700/0600) entries; a static site must be readable
    # by the web server, so use the modes an ordinary mkdir/open would give.
    umask = os.umask(0)
    os.umask(umask)
    for folder, dirs, files in os.walk(root):
        os.chmod(folder, 0o777 & ~umask)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o666 & ~umask)


def _move_into_place(tmp: Path, out: Path) -> None:
    # Two renames: readers see the old site or the new one, never half of one.
    old = None
    if out.exists() or out.is_symlink():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.rename(out, old)
    os.rename(tmp, out)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()


def _render(results: Sequence[Mapping], root: Path, *, built: datetime) -> None:
    env = _env()
    # The vendor README and LICENSE files travel with the scripts they describe.
    shutil.copytree(_package_dir("static"), root / "static", ignore=shutil.ignore_patterns("__pycache__"))
    published = built.date().isoformat()
    stamp = built.isoformat(timespec="seconds")
    index_aois = []
    simulated_any = False
    for res in results:
        aoi = res["aoi"]
        adir = root / aoi.id
        charts = write_charts(res, chart_dir=adir / "charts")
        records, verdicts, simulated = res["records"], res["verdicts"], res["simulated"]
        simulated_any |= simulated
        reviewed = [r for r in records if r.get("reviewed")]
        common = {
            "aoi": aoi,
            "aoi_summary": aoi.summary(),
            "records": records,
            "reviewed_count": len(reviewed),
            "simulated": simulated,
            "methods": _method_notes(records),
            "provenance": _provenance(res["manifest"], records),
            "built": stamp,
            "version": __version__,
            "static": "../static",
            "home": "../index.html",
        }
        claims_view = []
        for v in verdicts:
            cid = str(v.get("claim_id"))
            files = dict(charts["claims"].get(cid, {}))
            files["svg"] = charts["series"]["svg"]  # the SVG holds every claim of the AOI
            view = _claim_view(v, records, files, adir)
            spec = series_spec(records, verdicts, title=f"{aoi.name}: claim {cid}", simulated=simulated,
                               claim_id=v.get("claim_id"), schema=False)
            html = env.get_template("claim.html").render(
                **common,
                title=f"Claim {cid}",
                c=view,
                spec=spec,
                jsonld=claim_review_jsonld(v, published=published),
            )
            (adir / view["page"]).write_text(html, encoding="utf-8")
            claims_view.append(view)
        index_aois.append({
            "aoi": aoi,
            "claims": claims_view,
            "simulated": simulated,
            "n_scenes": len(records),
            "reviewed_count": len(reviewed),
            "series_png": _rel(Path(charts["series"]["png"]), root),
            "series_svg": _rel(Path(charts["series"]["svg"]), root),
            "records": records,
        })
    index = env.get_template("index.html").render(
        title="Claims checked against satellite imagery",
        aois=index_aois,
        simulated=simulated_any,
        built=stamp,
        version=__version__,
        static="static",
        home="index.html",
    )
    (root / "index.html").write_text(index, encoding="utf-8")
    (root / SITE_MARKER).write_text(
        json.dumps({"generator": "geo_evidence", "version": __version__, "built": stamp, "aois": [r["aoi"].id for r in results]}, indent=2) + "\n",
        encoding="utf-8",
    )
