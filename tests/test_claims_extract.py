"""Candidate claims from French and English text; `geoev claims extract`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from geo_evidence.claims import extract_claims, extract_claims_from_file, parse_number
from geo_evidence.cli import main
from geo_evidence.errors import ClaimError

ARTICLES = Path(__file__).resolve().parents[2] / "shared" / "articles"


def only(cands, **kw):
    hits = [c for c in cands if all(c[k] == v for k, v in kw.items())]
    assert len(hits) == 1, (kw, [c["span"]["text"] for c in cands])
    return hits[0]


@pytest.mark.parametrize(
    "text,value,approximate",
    [
        ("70", 70, False),
        ("1 000", 1000, False),
        ("1\u202f000", 1000, False),
        ("1,000", 1000, False),
        ("2,5 millions", 2_500_000, False),
        ("soixante-treize", 73, False),
        ("soixante-dix", 70, False),
        ("quatre-vingt-dix", 90, False),
        ("cent soixante-quinze", 175, False),
        ("vingt et un", 21, False),
        ("mille", 1000, False),
        ("un millier", 1000, True),
        ("millions", 1_000_000, True),
        ("seventy-three", 73, False),
        ("one hundred seventy-five", 175, False),
    ],
)
def test_parse_number(text, value, approximate):
    assert parse_number(text) == (value, approximate)


def test_french_passage():
    text = ("Selon le CSIS, les images du 5 octobre 2023 montrent plus de 70 wagons à Tumangang. "
            "Auparavant, seuls vingt wagons y avaient été vus au cours des cinq dernières années.")
    cands = extract_claims(text)
    more = only(cands, value=70.0)
    assert (more["qualifier"], more["comparator"], more["unit"], more["metric"]) == ("plus de", "gt", "wagons", "railcars")
    assert more["span"]["text"] == "plus de 70 wagons" == text[more["span"]["start"]:more["span"]["end"]]
    assert more["dates"][0]["iso"] == "2023-10-05" and more["dates"][0]["in_sentence"] is True
    assert [p["name"] for p in more["places"]] == ["Tumangang"] and more["assessable_hint"] is True
    assert more["quote"]["text"].startswith("Selon le CSIS") and more["quote"]["text"].endswith("Tumangang.")
    assert more["language"] == "fr"
    seuls = only(cands, value=20.0)
    assert (seuls["qualifier"], seuls["comparator"], seuls["span"]["text"]) == ("seuls", "le", "seuls vingt wagons")
    assert seuls["period"]["years"] == 5
    # The date sits in the previous sentence: attached, but flagged as context.
    assert seuls["dates"][0]["iso"] == "2023-10-05" and seuls["dates"][0]["in_sentence"] is False


def test_french_qualifiers_and_units():
    text = ("Au moins 73 wagons étaient là. Environ soixante-treize wagons-citernes. "
            "La Corée du Nord a livré plus d'un millier de conteneurs. "
            "La Russie cherche des millions d'obus d'artillerie.")
    cands = extract_claims(text)
    assert [(c["qualifier"], c["comparator"], c["value"], c["metric"]) for c in cands] == [
        ("au moins", "ge", 73.0, "railcars"),
        ("environ", "approx", 73.0, "railcars"),
        ("plus de", "gt", 1000.0, "containers"),
        (None, "gt", 1_000_000.0, "shells"),
    ]
    assert cands[1]["car_type"] == "tank"
    assert cands[2]["span"]["text"] == "plus d'un millier de conteneurs"
    assert cands[3]["span"]["text"] == "des millions d'obus"


def test_english_passage():
    text = ("Planet imagery of Oct. 5, 2023 showed approximately 73 freight railcars at Tumangang, "
            "where only 20 had been visible in the previous five years. "
            "Officials said at least seventy-three rail cars and more than 1,000 containers were involved.")
    cands = extract_claims(text)
    approx = only(cands, qualifier="approximately")
    assert (approx["comparator"], approx["value"], approx["unit"]) == ("approx", 73.0, "railcars")
    assert approx["span"]["text"] == "approximately 73 freight railcars"
    assert approx["dates"][0]["iso"] == "2023-10-05" and approx["language"] == "en"
    bare = only(cands, qualifier="only")
    # "only 20" has no unit of its own: the sentence's unit is borrowed, and says so.
    assert (bare["comparator"], bare["value"], bare["metric"], bare["unit_inferred"]) == ("le", 20.0, "railcars", True)
    assert bare["period"]["years"] == 5
    assert only(cands, qualifier="at least")["value"] == 73.0
    containers = only(cands, metric="containers")
    assert (containers["qualifier"], containers["value"], containers["span"]["text"]) == ("more than", 1000.0, "more than 1,000 containers")


def test_bare_number_with_another_unit_is_not_a_railcar_count():
    text = "Plus de 70 wagons sont arrivés en plus de 5 jours, soit plus de 40 % du trafic."
    assert [c["span"]["text"] for c in extract_claims(text)] == ["Plus de 70 wagons"]


def test_comparison_without_number():
    text = "Les images ont montré un nombre sans précédent de wagons à Tumangang."
    (c,) = extract_claims(text)
    assert c["kind"] == "comparison" and c["value"] is None and c["comparator"] == "gt"
    assert c["span"]["text"] == "sans précédent de wagons" and c["metric"] == "railcars"


def test_text_without_claims():
    assert extract_claims("Kirby a refusé de détailler comment les responsables avaient recueilli ces renseignements.") == []


def test_non_text_file_is_refused(tmp_path):
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(ClaimError, match="not a text file"):
        extract_claims_from_file(binary)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("plus de 70 wagons à Tumangang".encode("latin-1"))
    with pytest.raises(ClaimError, match="not UTF-8 text"):
        extract_claims_from_file(latin1)
    out = CliRunner().invoke(main, ["claims", "extract", str(binary)])
    assert out.exit_code == 1 and "not a text file" in out.output and "Traceback" not in out.output


def test_cli_extract_json(tmp_path):
    article = tmp_path / "a.txt"
    text = "Au lendemain du sommet, plus de 70 wagons ont été identifiés à Tumangang le 5 octobre 2023.\n"
    article.write_text(text, encoding="utf-8")
    out = CliRunner().invoke(main, ["claims", "extract", str(article), "--format", "json"])
    assert out.exit_code == 0, out.output
    (c,) = json.loads(out.stdout)["candidates"]
    assert text[c["span"]["start"]:c["span"]["end"]] == "plus de 70 wagons"
    table = CliRunner().invoke(main, ["claims", "extract", str(article)])
    assert "'plus de 70 wagons'  gt 70 railcars  dates: 2023-10-05  places: Tumangang" in table.output


@pytest.mark.skipif(not ARTICLES.is_dir(), reason="the source articles are kept outside the repository")
def test_the_five_articles():
    found = {p.name[:3]: extract_claims_from_file(p) for p in sorted(ARTICLES.glob("0*.txt"))}
    assert len(found) == 5
    spans = {k: [c["span"]["text"] for c in v] for k, v in found.items()}
    # 004: the Tumangang railcars and the White House containers, each with its qualifier.
    for phrase in ("plus de 70 wagons", "seuls 20 wagons", "plus de 1 000 conteneurs", "plus d'un millier de conteneurs",
                   "plus de mille conteneurs"):
        assert phrase in spans["004"], phrase
    (seventy,) = [c for c in found["004"] if c["span"]["text"] == "plus de 70 wagons"]
    assert seventy["assessable_hint"] is True and "2023-10-05" in [d["iso"] for d in seventy["dates"]]
    assert seventy["period"]["years"] == 5
    # "le 5 octobre" (no year) two sentences earlier borrows 2023 from "5 octobre 2023".
    (unprecedented,) = [c for c in found["004"] if c["span"]["text"] == "sans précédent de wagons"]
    assert [(d["iso"], d["year_inferred"]) for d in unprecedented["dates"]] == [("2023-10-05", True)]
    # 003: "millions" of shells; 000-002 hold no counted railcars, containers or shells.
    assert spans["003"] == ["des millions d'obus"]
    assert spans["000"] == spans["001"] == spans["002"] == []
