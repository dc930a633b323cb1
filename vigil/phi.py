"""PHI guard: refuse events that carry direct patient identifiers.

Vigil stores events forever in an append-only store, so an identifier that slips in can never be
removed. The guard follows the HIPAA Safe Harbor list (45 CFR 164.514(b)(2)) where a machine can
recognise an identifier: names (in name-like fields), e-mail addresses, telephone numbers, social
security numbers, medical record numbers, street addresses and birth dates. Free-text names
inside prose cannot be recognised reliably; free text is kept short and out of most schemas.

Findings name the field path and the kind of identifier, never the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# A pseudonymous token: long enough to be a hash or random id, and not a bare number (bare numbers
# are what MRNs, account and phone numbers look like).
PSEUDONYM = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9_-]{16,128}$")

IDENTIFYING_KEYS: dict[str, str] = {
    key: kind
    for kind, keys in {
        "a name": ("name", "first_name", "last_name", "full_name", "patient_name", "surname", "given_name"),
        "an e-mail address": ("email", "e_mail", "email_address"),
        "a telephone number": ("phone", "phone_number", "telephone", "mobile", "fax"),
        "a social security number": ("ssn", "social_security_number"),
        "a medical record number": ("mrn", "medical_record_number", "record_number"),
        "a street address": ("address", "street", "street_address", "home_address"),
        "a birth date": ("dob", "date_of_birth", "birth_date", "birthdate"),
    }.items()
    for key in keys
}

VALUE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an e-mail address", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")),
    ("a social security number", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
    ("a telephone number", re.compile(r"(?:\+\d{1,3}[\s.-]?)?\(?\b\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b")),
    ("a medical record number", re.compile(r"\b(?:MRN|medical record(?: number)?)\s*[:#]?\s*\d{4,}", re.IGNORECASE)),
    (
        # Case-sensitive on purpose: "221 Baker Street" is an address, "0.9.1 at st-mary" is not.
        "a street address",
        re.compile(
            r"\b\d{1,5}\s+(?:[A-Z][a-z]+\s+){1,3}"
            r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl)\b"
        ),
    ),
    (
        "a street address",
        re.compile(r"\b[A-ZÄÖÜ][a-zäöüß]+(?:straße|strasse|weg|platz|allee|gasse)\s+\d{1,4}[a-z]?\b"),
    ),
)

# Fields whose names are fixed by the schema and whose values are names of things, not people.
NAME_OF_A_THING = frozenset({"ModelRegistered.name"})


@dataclass(frozen=True)
class PhiFinding:
    path: str
    kind: str

    @property
    def reason(self) -> str:
        return f"PHI guard: {self.path} looks like {self.kind}; send pseudonymous tokens only"


def _strings(value: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """Yield (path, key, value) for every field, depth first."""
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            yield child, str(key), item
            yield from _strings(item, child)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")


def find_phi(event: dict[str, Any]) -> PhiFinding | None:
    """The first direct identifier in an event (a decoded JSON object), or None."""
    event_type = event.get("event_type")
    patient_ref = event.get("patient_ref")
    if isinstance(patient_ref, str) and not PSEUDONYM.match(patient_ref):
        return PhiFinding(
            "patient_ref", "an identifier rather than a pseudonymous token (16-128 letters, digits, - or _)"
        )
    for path, key, value in _strings(event, ""):
        kind = IDENTIFYING_KEYS.get(key.lower())
        if kind and value not in (None, "", [], {}) and f"{event_type}.{path}" not in NAME_OF_A_THING:
            return PhiFinding(path, kind)
        if isinstance(value, str) and path != "patient_ref":
            for kind, pattern in VALUE_PATTERNS:
                if pattern.search(value):
                    return PhiFinding(path, kind)
    return None
