"""Candidate claims found in French or English text, for an analyst to review.

:func:`extract_claims` looks for a number followed by a unit the project cares about
(``70 wagons``, ``plus d'un millier de conteneurs``, ``des millions d'obus``, ``approximately
73 freight railcars``), with the qualifier before it (``plus de``, ``au moins``, ``environ``,
``seuls``, ``more than``, ``at least``, ``approximately``, ``only``...) and, from the same
sentence, dates (``5 octobre 2023``, ``Oct. 5, 2023``, ``2023-10-05``), places (Tumangang,
Rajin, Khasan...), a trailing period ("au cours des cinq dernières années") and comparison
words ("sans précédent", "unprecedented"). Every candidate carries character offsets into
the text (Python ``str`` indices) so that a reviewer can see the words it came from.

It is a reading aid, not an oracle: it proposes, the analyst writes the claim record.
"""

from __future__ import annotations

import re
from pathlib import Path

from geo_evidence.errors import ClaimError

# --------------------------------------------------------------------------- numbers

_FR_UNITS = {
    "zéro": 0, "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6,
    "sept": 7, "huit": 8, "neuf": 9, "dix": 10, "onze": 11, "douze": 12, "treize": 13,
    "quatorze": 14, "quinze": 15, "seize": 16, "vingt": 20, "vingts": 20, "trente": 30,
    "quarante": 40, "cinquante": 50, "soixante": 60,
}
_EN_UNITS = {
    "zero": 0, "one": 1, "a": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}
_HUNDRED = {"cent", "cents", "hundred"}
_SCALES = {
    "mille": 1000, "thousand": 1000, "millier": 1000, "milliers": 1000, "thousands": 1000,
    "million": 10**6, "millions": 10**6, "milliard": 10**9, "milliards": 10**9,
    "billion": 10**9, "billions": 10**9,
}
# Collective nouns: "une centaine", "des dizaines", "hundreds", "dozens".
_COLLECTIVE = {"dizaine": 10, "dizaines": 10, "centaine": 100, "centaines": 100, "dozen": 12, "dozens": 12, "hundreds": 100}
# Plural scale words with no count before them ("des millions", "thousands") say "more than".
_PLURAL_IMPLIES_GT = {"milliers", "thousands", "millions", "milliards", "billions", "dizaines", "centaines", "dozens", "hundreds"}
_APPROX_WORDS = {"millier", "milliers", "dizaine", "dizaines", "centaine", "centaines", "dozen", "dozens"}

_WORDS = sorted({*_FR_UNITS, *_EN_UNITS, *_HUNDRED, *_SCALES, *_COLLECTIVE, "et", "and"} - {"a"}, key=len, reverse=True)
_WORD_RE = "(?:" + "|".join(_WORDS) + ")"
_SPELLED = rf"(?:(?:\b(?:une?|a)\s+)?\b{_WORD_RE}\b(?:[\s-]+{_WORD_RE}\b)*)"
_DIGITS = r"(?:\d{1,3}(?:[ \u00a0\u202f.,]\d{3})+(?![\d])|\d+(?:[.,]\d+)?)"
_NUMBER = rf"(?:{_DIGITS}(?:\s+(?:millions?|milliards?|billions?|mille|thousand))?|{_SPELLED})"


def parse_number(text: str) -> tuple[float | None, bool]:
    """The value of a number phrase and whether it is only approximate.

    ``"1 000"`` → 1000, ``"1,000"`` → 1000, ``"soixante-treize"`` → 73,
    ``"quatre-vingt-dix"`` → 90, ``"un millier"`` → (1000, approximate),
    ``"millions"`` → (1000000, approximate), ``"2,5 millions"`` → 2500000.
    """
    raw = text.strip().lower()
    m = re.fullmatch(rf"({_DIGITS})(?:\s+(\w+))?", raw)
    if m:
        digits = m.group(1)
        if re.fullmatch(r"\d{1,3}(?:[ \u00a0\u202f.,]\d{3})+", digits):
            value = float(re.sub(r"[ \u00a0\u202f.,]", "", digits))
        else:
            value = float(digits.replace(",", "."))
        scale = m.group(2)
        if scale:
            value *= _SCALES.get(scale, 1)
        return value, False
    words = [w for w in re.split(r"[\s-]+", raw) if w and w not in ("et", "and")]
    total, current, approx, last = 0, 0, False, None
    for w in words:
        if w in ("un", "une", "a", "one") and last is None:
            current += 1
        elif w in _FR_UNITS or w in _EN_UNITS:
            v = _FR_UNITS.get(w, _EN_UNITS.get(w))
            if w in ("vingt", "vingts") and last == "quatre":
                current += 80 - 4  # quatre-vingt(s): 4 × 20
            else:
                current += v
        elif w in _HUNDRED:
            current = (current or 1) * 100
        elif w in _SCALES:
            approx = approx or w in _APPROX_WORDS or (w in _PLURAL_IMPLIES_GT and current == 0)
            total += (current or 1) * _SCALES[w]
            current = 0
        elif w in _COLLECTIVE:
            approx = True
            current = (current or 1) * _COLLECTIVE[w]
        else:
            return None, False
        last = w
    value = total + current
    return (float(value) if words else None), approx


# --------------------------------------------------------------------------- units, qualifiers

# (pattern, canonical unit, metric, car type); longest first so "wagons-citernes" wins.
_UNITS = [
    (r"wagons?[- ]citernes?", "wagons-citernes", "railcars", "tank"),
    (r"wagons?\s+couverts?", "wagons couverts", "railcars", "box"),
    (r"wagons?\s+(?:de|à)\s+minerai", "wagons de minerai", "railcars", "gondola"),
    (r"wagons?[- ]trémies?", "wagons-trémies", "railcars", "hopper"),
    (r"wagons?\s+de\s+marchandises", "wagons de marchandises", "railcars", None),
    (r"wagons?", "wagons", "railcars", None),
    (r"locomotives?", "locomotives", "railcars", "locomotive"),
    (r"(?:freight\s+)?rail\s?cars?", "railcars", "railcars", None),
    (r"freight\s+cars?", "freight cars", "railcars", None),
    (r"tank\s?cars?", "tank cars", "railcars", "tank"),
    (r"box\s?cars?", "box cars", "railcars", "box"),
    (r"ore\s+cars?", "ore cars", "railcars", "gondola"),
    (r"gondolas?", "gondolas", "railcars", "gondola"),
    (r"flat\s?cars?", "flat cars", "railcars", "flat"),
    (r"hopper\s+cars?", "hopper cars", "railcars", "hopper"),
    (r"conteneurs?", "conteneurs", "containers", None),
    (r"containers?", "containers", "containers", None),
    (r"obus", "obus", "shells", None),
    (r"(?:artillery\s+)?shells?", "shells", "shells", None),
    (r"roquettes?", "roquettes", "rockets", None),
    (r"rockets?", "rockets", "rockets", None),
]
_UNIT_RE = "(?:" + "|".join(p for p, *_ in _UNITS) + ")"

# (pattern, canonical qualifier, comparator); longest first ("pas plus de" before "plus de").
_QUALIFIERS = [
    (r"pas\s+plus\s+d(?:e\s+|['’]\s*)", "pas plus de", "le"),
    (r"plus\s+d(?:e\s+|['’]\s*)", "plus de", "gt"),
    (r"moins\s+d(?:e\s+|['’]\s*)", "moins de", "lt"),
    (r"près\s+d(?:e\s+|['’]\s*)", "près de", "approx"),
    (r"au\s+moins\s+", "au moins", "ge"),
    (r"au\s+plus\s+", "au plus", "le"),
    (r"jusqu['’]à\s+", "jusqu'à", "le"),
    (r"environ\s+", "environ", "approx"),
    (r"approximativement\s+", "approximativement", "approx"),
    (r"quelque\s+", "quelque", "approx"),
    (r"seul(?:e)?s?\s+", "seuls", "le"),
    (r"seulement\s+", "seulement", "le"),
    (r"no\s+more\s+than\s+", "no more than", "le"),
    (r"more\s+than\s+", "more than", "gt"),
    (r"fewer\s+than\s+", "fewer than", "lt"),
    (r"less\s+than\s+", "less than", "lt"),
    (r"at\s+least\s+", "at least", "ge"),
    (r"at\s+most\s+", "at most", "le"),
    (r"up\s+to\s+", "up to", "le"),
    (r"approximately\s+", "approximately", "approx"),
    (r"about\s+", "about", "approx"),
    (r"around\s+", "around", "approx"),
    (r"roughly\s+", "roughly", "approx"),
    (r"nearly\s+", "nearly", "approx"),
    (r"almost\s+", "almost", "approx"),
    (r"some\s+", "some", "approx"),
    (r"over\s+", "over", "gt"),
    (r"only\s+", "only", "le"),
]
_QUAL_RE = "(?:" + "|".join(p for p, *_ in _QUALIFIERS) + ")"

_CLAIM_RE = re.compile(
    rf"(?<![\w-])(?P<qual>{_QUAL_RE})?(?:des\s+)?(?P<num>{_NUMBER})\s*(?:(?:de|of)\s+|d['’]\s*)?(?P<unit>{_UNIT_RE})(?![\w])",
    re.IGNORECASE,
)
# A qualified number with no unit after it ("where only 20 had been visible"): the unit is
# taken from another candidate of the same sentence.
_OTHER_UNITS = r"(?:%|pour\s*cent|percent|ans|années|jours|days|years|months|mois|semaines|weeks|heures|hours|km|kilomètres|miles|mètres|metres|meters|tonnes|tons)"
_BARE_RE = re.compile(
    rf"(?<![\w-])(?P<qual>{_QUAL_RE})(?P<num>{_DIGITS})(?![\w%])(?!\s*{_OTHER_UNITS}(?![\w]))", re.IGNORECASE
)

# --------------------------------------------------------------------------- dates, places

_FR_MONTHS = {
    "janvier": 1, "février": 2, "fevrier": 2, "mars": 3, "avril": 4, "mai": 5, "juin": 6,
    "juillet": 7, "août": 8, "aout": 8, "septembre": 9, "octobre": 10, "novembre": 11,
    "décembre": 12, "decembre": 12,
}
_EN_MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9,
    "sept": 9, "oct": 10, "nov": 11, "dec": 12,
}
_MONTHS = {**_EN_MONTHS, **_FR_MONTHS}
_MONTH_RE = "(?:" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DATE_RES = [
    re.compile(r"\b(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})\b"),
    re.compile(rf"\b(?P<day>\d{{1,2}})(?:er)?\s+(?P<month>{_MONTH_RE})(?:\s+(?P<year>\d{{4}}))?(?![\w])", re.IGNORECASE),
    re.compile(rf"(?<![\w])(?P<month>{_MONTH_RE})\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(?P<year>\d{{4}}))?\b", re.IGNORECASE),
    re.compile(rf"(?<![\w])(?P<month>{_MONTH_RE})\s+(?P<year>\d{{4}})\b", re.IGNORECASE),
    re.compile(r"\b(?P<year>\d{4})-(?P<month>\d{2})\b(?!-\d)"),
]

#: Places the project knows, with the bundled AOI each belongs to (None: not a yard we have).
PLACES = {
    "tumangang": "tumangang", "tumen": "tumangang", "khasan": "khasan", "hassan": "khasan",
    "rajin": None, "najin": None, "rason": None, "vostochny": None, "vostotchny": None,
    "vladivostok": None,
}
_PLACE_RE = re.compile(r"\b(" + "|".join(PLACES) + r")\b", re.IGNORECASE)

_NUM_OR_WORD = rf"(?:\d+|{_WORD_RE})"
_PERIOD_RES = [
    re.compile(rf"(?:au\s+cours|lors|pendant|durant)\s+des\s+(?P<n>{_NUM_OR_WORD})\s+(?:dernières|précédentes)\s+années", re.IGNORECASE),
    re.compile(rf"(?:in|over|during)\s+the\s+(?:previous|past|last|preceding)\s+(?P<n>{_NUM_OR_WORD})\s+years", re.IGNORECASE),
    re.compile(rf"depuis\s+(?P<n>{_NUM_OR_WORD})\s+ans", re.IGNORECASE),
]
_COMPARISON_RE = re.compile(r"sans\s+précédent|unprecedented|jamais\s+vu|never\s+seen|far\s+greater|record", re.IGNORECASE)

_FR_HINTS = re.compile(r"\b(le|la|les|des|du|de|et|à|une|dans|été|ont|sur)\b", re.IGNORECASE)
_EN_HINTS = re.compile(r"\b(the|of|and|to|in|was|were|has|have|on|at|that)\b", re.IGNORECASE)

# Words ending with "." that do not end a sentence.
_ABBREV = {"m", "mme", "dr", "st", "oct", "sept", "sep", "nov", "dec", "déc", "jan", "feb", "fév", "aug", "apr", "mr", "mrs", "gen", "no", "vs", "etc"}


def _sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) spans of sentences: split at newlines and at . ! ? before a capital."""
    spans = []
    start = 0
    for m in re.finditer(r"\n+|[.!?…]+[»\"”’)]*(?=\s+[«\"“A-ZÀ-ÖØ-Þ]|\s*$)", text):
        end = m.end() if m.group().strip() else m.start()
        if m.group().startswith("."):
            word = re.search(r"(\w+)$", text[start:m.start()])
            if word and (word.group(1).lower() in _ABBREV or len(word.group(1)) == 1 and word.group(1).isupper()):
                continue
        if text[start:end].strip():
            s = start + (len(text[start:end]) - len(text[start:end].lstrip()))
            spans.append((s, end))
        start = m.end()
    if text[start:].strip():
        s = start + (len(text[start:]) - len(text[start:].lstrip()))
        spans.append((s, len(text.rstrip())))
    return spans


def _qualifier(text: str | None) -> tuple[str | None, str | None]:
    if not text:
        return None, None
    for pattern, canonical, comparator in _QUALIFIERS:
        if re.fullmatch(pattern, text, re.IGNORECASE):
            return canonical, comparator
    return text.strip(), None


def _unit(text: str) -> tuple[str, str, str | None]:
    for pattern, canonical, metric, car_type in _UNITS:
        if re.fullmatch(pattern, text, re.IGNORECASE):
            return canonical, metric, car_type
    return text, "unknown", None


def find_dates(text: str, *, start: int = 0, end: int | None = None) -> list[dict]:
    """Dates in ``text[start:end]``: ``text``, ``start``, ``end``, ``year``/``month``/``day``
    (None where the text leaves them out) and ``iso`` when all three are known."""
    end = len(text) if end is None else end
    found: list[dict] = []
    for rx in _DATE_RES:
        for m in rx.finditer(text, start, end):
            if any(f["start"] < m.end() and m.start() < f["end"] for f in found):
                continue  # a longer form already matched here
            month_txt = m.group("month").rstrip(".").lower()
            month = int(month_txt) if month_txt.isdigit() else _MONTHS.get(month_txt)
            gd = m.groupdict()
            day = int(gd["day"]) if gd.get("day") else None
            year = int(gd["year"]) if gd.get("year") else None
            if not month or not 1 <= month <= 12 or (day is not None and not 1 <= day <= 31):
                continue
            iso = f"{year:04d}-{month:02d}-{day:02d}" if year and day else None
            found.append({"text": m.group(), "start": m.start(), "end": m.end(), "year": year, "month": month, "day": day, "iso": iso})
    return sorted(found, key=lambda d: d["start"])


def find_places(text: str, *, start: int = 0, end: int | None = None) -> list[dict]:
    """Known places (see :data:`PLACES`) in ``text[start:end]`` with their AOI."""
    end = len(text) if end is None else end
    return [
        {"text": m.group(), "start": m.start(), "end": m.end(), "name": m.group().capitalize(), "aoi": PLACES[m.group().lower()]}
        for m in _PLACE_RE.finditer(text, start, end)
    ]


def _period(text: str, start: int, end: int) -> dict | None:
    for rx in _PERIOD_RES:
        m = rx.search(text, start, end)
        if m:
            n, _ = parse_number(m.group("n"))
            return {"text": m.group(), "start": m.start(), "end": m.end(), "years": int(n) if n else None}
    return None


def _infer_year(found: dict, full_dates: list[dict]) -> dict:
    """"5 octobre" takes its year from the nearest full date of the same month in the text,
    flagged ``year_inferred`` (articles give the year once, then drop it)."""
    out = dict(found, year_inferred=False)
    if found["year"] is None and found["day"] is not None:
        same = [d for d in full_dates if d["month"] == found["month"]]
        if same:
            near = min(same, key=lambda d: abs(d["start"] - found["start"]))
            out.update(year=near["year"], iso=f"{near['year']:04d}-{found['month']:02d}-{found['day']:02d}", year_inferred=True)
    return out


def _language(sentence: str) -> str:
    fr, en = len(_FR_HINTS.findall(sentence)), len(_EN_HINTS.findall(sentence))
    return "fr" if fr >= en else "en"


def extract_claims(text: str, *, context_sentences: int = 2) -> list[dict]:
    """Candidate claims in French or English text.

    Parameters
    ----------
    text : str
        The article text.
    context_sentences : int
        When a candidate's sentence holds no date, dates from up to this many sentences
        before it are attached with ``in_sentence: false`` (articles often give the date
        one sentence earlier).

    Returns
    -------
    list of dict
        One per number + unit, in text order (``kind: "count"``), plus one per sentence that
        compares without a number ("un nombre sans précédent de wagons", ``kind:
        "comparison"``, ``value`` None, ``comparator`` ``gt``). Each has ``span`` (start, end, text of the phrase),
        ``quote`` (start, end, text of its sentence), ``qualifier`` (canonical, e.g.
        ``"plus de"``) and ``comparator`` (``gt``, ``ge``, ``approx``, ``le``, ``lt`` or
        None), ``number`` (the text), ``value`` (float), ``approximate`` (a collective such
        as "un millier"), ``unit``, ``metric`` (``railcars``, ``containers``, ``shells``,
        ``rockets``), ``car_type``, ``unit_inferred``, ``dates`` (each with
        ``in_sentence`` and ``year_inferred``: "5 octobre" borrows the year of the nearest
        full date of that month in the text), ``places``,
        ``period`` (e.g. five years), ``comparison`` (e.g. "sans précédent"),
        ``language``, and ``assessable_hint`` (railcars at a known place: an image may test it).
    """
    if not isinstance(text, str):
        raise ClaimError(f"extract_claims needs text (str), got {type(text).__name__}; decode the file first.")
    sentences = _sentences(text)
    full_dates = [d for d in find_dates(text) if d["iso"]]
    out: list[dict] = []
    for si, (s0, s1) in enumerate(sentences):
        found = []
        for m in _CLAIM_RE.finditer(text, s0, s1):
            value, approx = parse_number(m.group("num"))
            if value is None:
                continue
            qual, comparator = _qualifier(m.group("qual"))
            num_word = m.group("num").strip().lower().split()[-1]
            if comparator is None and num_word in _PLURAL_IMPLIES_GT:
                comparator = "gt"  # "des millions d'obus": more than one million
            elif comparator is None and approx:
                comparator = "approx"  # "un millier", "une centaine"
            unit, metric, car_type = _unit(m.group("unit"))
            found.append(
                {
                    "kind": "count",
                    "span": {"start": m.start(), "end": m.end(), "text": m.group()},
                    "qualifier": qual,
                    "comparator": comparator,
                    "number": m.group("num").strip(),
                    "value": value,
                    "approximate": approx,
                    "unit": unit,
                    "metric": metric,
                    "car_type": car_type,
                    "unit_inferred": False,
                }
            )
        if found:
            for m in _BARE_RE.finditer(text, s0, s1):
                if any(f["span"]["start"] < m.end() and m.start() < f["span"]["end"] for f in found):
                    continue
                value, _ = parse_number(m.group("num"))
                qual, comparator = _qualifier(m.group("qual"))
                prev = min(found, key=lambda f: abs(f["span"]["start"] - m.start()))
                found.append(
                    {
                        "kind": "count",
                        "span": {"start": m.start(), "end": m.end(), "text": m.group()},
                        "qualifier": qual,
                        "comparator": comparator,
                        "number": m.group("num"),
                        "value": value,
                        "approximate": False,
                        "unit": prev["unit"],
                        "metric": prev["metric"],
                        "car_type": prev["car_type"],
                        "unit_inferred": True,
                    }
                )
        comp = _COMPARISON_RE.search(text, s0, s1)
        if comp:
            unit_m = re.search(rf"(?<![\w-]){_UNIT_RE}(?![\w])", text[s0:s1], re.IGNORECASE)
            if unit_m and not any(f["span"]["start"] <= s0 + unit_m.start() < f["span"]["end"] for f in found):
                u0, u1 = s0 + unit_m.start(), s0 + unit_m.end()
                a, b = min(comp.start(), u0), max(comp.end(), u1)
                unit, metric, car_type = _unit(unit_m.group())
                found.append(
                    {
                        "kind": "comparison",
                        "span": {"start": a, "end": b, "text": text[a:b]},
                        "qualifier": comp.group(),
                        "comparator": "gt",
                        "number": None,
                        "value": None,
                        "approximate": False,
                        "unit": unit,
                        "metric": metric,
                        "car_type": car_type,
                        "unit_inferred": False,
                    }
                )
        if not found:
            continue
        dates = [dict(d, in_sentence=True) for d in find_dates(text, start=s0, end=s1)]
        if not dates:
            for pj in range(max(0, si - context_sentences), si):
                dates += [dict(d, in_sentence=False) for d in find_dates(text, start=sentences[pj][0], end=sentences[pj][1])]
        dates = [_infer_year(d, full_dates) for d in dates]
        places = find_places(text, start=s0, end=s1)
        period = _period(text, s0, s1)
        lang = _language(text[s0:s1])
        for cand in sorted(found, key=lambda f: f["span"]["start"]):
            cand.update(
                quote={"start": s0, "end": s1, "text": text[s0:s1]},
                dates=dates,
                places=places,
                period=period,
                comparison=comp.group() if comp else None,
                language=lang,
                assessable_hint=cand["metric"] == "railcars" and any(p["aoi"] for p in places),
            )
            out.append(cand)
    return out


def read_text_file(path: str | Path) -> str:
    """The text of a UTF-8 (or UTF-16 with BOM) text file; anything else is refused.

    Raises
    ------
    ClaimError
        The file is missing, binary (NUL bytes) or not decodable as text.
    """
    p = Path(path)
    if not p.is_file():
        raise ClaimError(f"text file {str(path)!r} does not exist; give the path of a .txt article.")
    data = p.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    if b"\x00" in data:
        raise ClaimError(f"{str(path)!r} is not a text file (it holds binary data); give a UTF-8 .txt file (save the article as plain text).")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ClaimError(
            f"{str(path)!r} is not UTF-8 text (byte {exc.start} cannot be decoded); re-save it as UTF-8 plain text."
        ) from None


def extract_claims_from_file(path: str | Path, **kwargs) -> list[dict]:
    """:func:`extract_claims` on a text file (see :func:`read_text_file`)."""
    return extract_claims(read_text_file(path), **kwargs)
