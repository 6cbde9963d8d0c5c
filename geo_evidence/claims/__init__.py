"""Claims registry, verdicts and claim extraction.

- records and loading (``aoi/<aoi>.claims.json``): :func:`load_claims`,
  :func:`validate_claims`, :func:`validate_claim`, :func:`claims_path`;
- verdicts from per-scene count records: :func:`evaluate_claim`, :func:`evaluate_claims`
  (the comparator semantics, ``approx`` and ``le`` included, are in
  :mod:`geo_evidence.claims._evaluate`);
- candidates from French or English text: :func:`extract_claims`,
  :func:`extract_claims_from_file`.

The claim record's fields are described in :mod:`geo_evidence.claims._records`.
"""

from __future__ import annotations

from geo_evidence.claims._evaluate import VERDICTS, approx_band, evaluate_claim, evaluate_claims, judge
from geo_evidence.claims._extract import extract_claims, extract_claims_from_file, parse_number, read_text_file
from geo_evidence.claims._records import (
    CAR_TYPES,
    COMPARATORS,
    KINDS,
    claims_path,
    load_claims,
    validate_claim,
    validate_claims,
)
from geo_evidence.errors import ClaimError

__all__ = [
    "CAR_TYPES",
    "COMPARATORS",
    "KINDS",
    "VERDICTS",
    "ClaimError",
    "approx_band",
    "claims_path",
    "evaluate_claim",
    "evaluate_claims",
    "extract_claims",
    "extract_claims_from_file",
    "judge",
    "load_claims",
    "parse_number",
    "read_text_file",
    "validate_claim",
    "validate_claims",
]
