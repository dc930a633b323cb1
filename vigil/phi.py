"""PHI guard: refuse events that carry direct patient identifiers.

Vigil stores events forever in an append-only store, so an identifier that slips in can never be
removed. The guard covers every identifier of the HIPAA Safe Harbor list (45 CFR 164.514(b)(2))
that a machine can recognise, in every string and every key of every nested map:

- names, in fields whose key names a person (name, patient, clinician, contact, ...);
- dates finer than a year (outside the schema's own timestamp fields), birth dates;
- telephone and fax numbers, e-mail addresses, social security numbers, medical record numbers,
  health-plan, account (IBAN), licence and certificate numbers, vehicle identifiers (VIN, plates),
  device serial numbers (S/N, IMEI), URLs, IP addresses (v4 and v6), street addresses.

Names inside free prose cannot be recognised reliably; free text is kept short and out of most
schemas. Findings name the field path and the kind of identifier, never the value; a key that is
itself an identifier is shown as `<key>`.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, NamedTuple, Union, get_args, get_origin

from pydantic import BaseModel

from vigil.events import DERIVED_EVENTS, EVENT_TYPES

# A pseudonymous token: long enough to be a hash or random id, and not a bare number (bare numbers
# are what MRNs, account and phone numbers look like).
PSEUDONYM = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9_-]{16,128}$")

# Keys whose any non-empty value is an identifier of that kind.
IDENTIFYING_KEYS: dict[str, str] = {
    key: kind
    for kind, keys in {
        "a name": ("name", "first_name", "last_name", "full_name", "patient_name", "surname", "given_name",
                   "firstname", "lastname", "fullname", "maiden_name"),
        "an e-mail address": ("email", "e_mail", "email_address", "mail"),
        "a telephone number": ("phone", "phone_number", "telephone", "mobile", "fax", "fax_number", "cell"),
        "a social security number": ("ssn", "social_security_number", "social_security", "sozialversicherungsnummer"),
        "a medical record number": ("mrn", "medical_record_number", "record_number", "chart_number"),
        "a health-plan number": ("health_plan", "health_plan_number", "insurance_number", "member_id",
                                 "beneficiary_number", "policy_number", "versichertennummer"),
        "an account number": ("account", "account_number", "iban", "bank_account", "credit_card"),
        "a licence or certificate number": ("license", "licence", "license_number", "licence_number",
                                            "certificate", "certificate_number", "dea_number", "npi"),
        "a vehicle identifier": ("vin", "license_plate", "licence_plate", "number_plate", "plate"),
        "a device serial number": ("serial", "serial_number", "device_serial", "imei", "udi"),
        "a URL": ("url", "website", "homepage"),
        "an IP address": ("ip", "ip_address", "client_ip", "remote_addr"),
        "a street address": ("address", "street", "street_address", "home_address", "postal_address"),
        "a birth date": ("dob", "date_of_birth", "birth_date", "birthdate", "born"),
    }.items()
    for key in keys
}  # fmt: skip

# Words that make a key name a person: a capitalised word under such a key is taken for a name.
PERSON_WORDS = frozenset({
    "patient", "person", "clinician", "doctor", "physician", "nurse", "contact", "caregiver", "carer",
    "guardian", "relative", "kin", "parent", "mother", "father", "spouse", "child", "surgeon", "radiologist",
    "reviewer", "reporter", "author", "signed", "attending", "referrer", "gp",
})  # fmt: skip
CAPITALISED_WORD = re.compile(r"(?<![\w-])[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ'’-]+")

_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|januar|februar|märz|mai|juni|juli|oktober|dezember)"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1?\d?\d)"
_DAY, _MONTH, _YEAR = r"(?:0?[1-9]|[12]\d|3[01])", r"(?:0?[1-9]|1[0-2])", r"(?:1[89]\d\d|20\d\d)"

# The most specific first: an IBAN is also a run of digit groups, as a telephone number is.
VALUE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an e-mail address", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")),
    ("a URL", re.compile(r"\b(?:https?|ftp)://\S+|\bwww\.[A-Za-z0-9-]+\.\S+", re.IGNORECASE)),
    ("a social security number", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
    ("an IP address", re.compile(rf"(?<![\d.])(?:{_OCTET}\.){{3}}{_OCTET}(?![\d.])")),
    ("an IP address", re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![\w:])"
                                 r"|(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){1,6}:(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4})*)?(?![\w:])")),
    ("a medical record number", re.compile(r"\b(?:MRN|medical record(?: number)?)\s*[:#]?\s*\d{4,}", re.IGNORECASE)),
    ("a health-plan number", re.compile(
        r"\b(?:health[- ]plan|insurance|member|beneficiary|policy)\s*(?:id|no\.?|number|#)\s*[:#]?\s*[A-Z0-9-]{5,}",
        re.IGNORECASE,
    )),
    ("an account number", re.compile(r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){3,7}(?:\s?[A-Z0-9]{1,3})?\b")),  # IBAN
    ("an account number", re.compile(r"\baccount\s*(?:no\.?|number|#)?\s*[:#]\s*\d{4,}", re.IGNORECASE)),
    ("a licence or certificate number", re.compile(
        r"\b(?:licen[cs]e|certificate|DEA|NPI)\s*(?:no\.?|number|#)?\s*[:#]\s*[A-Z0-9-]{4,}", re.IGNORECASE
    )),
    ("a device serial number", re.compile(
        r"\b(?:S/N|SN|serial(?: no\.?| number)?|IMEI)\s*[:#]\s*[A-Z0-9-]{4,}", re.IGNORECASE
    )),
    # A VIN: 17 characters without I, O or Q, with letters and digits both.
    ("a vehicle identifier", re.compile(
        r"\b(?=[A-HJ-NPR-Z0-9]*\d)(?=[A-HJ-NPR-Z0-9]*[A-HJ-NPR-Z])[A-HJ-NPR-Z0-9]{17}\b"
    )),
    ("a date finer than a year", re.compile(
        rf"(?<!\d)(?:{_DAY}[./]{_MONTH}[./]{_YEAR}|{_MONTH}/{_DAY}/{_YEAR}|{_MONTH}-{_DAY}-{_YEAR}"
        rf"|{_YEAR}-{_MONTH}-{_DAY}|{_YEAR}/{_MONTH}/{_DAY})(?!\d)"
        rf"|\b{_DAY}\.?\s+{_MONTHS}\.?,?\s+{_YEAR}\b|\b{_MONTHS}\.?\s+{_DAY}(?:st|nd|rd|th)?,?\s+{_YEAR}\b",
        re.IGNORECASE,
    )),
    ("a telephone number", re.compile(
        r"(?:\+\d{1,3}[\s.-]?)?\(?\b\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b"
        r"|(?<![\w.])\+\d{1,3}[\s.-]?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4}(?![\w.])"
        r"|(?<![\w.-])0\d{2,4}[\s/-]\d{3,8}(?:[\s-]\d{2,5})?(?![\w.-])"  # not inside a UUID or a code
    )),
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
)  # fmt: skip

# Fields whose names are fixed by the schema and whose values are names of things, not people.
NAME_OF_A_THING = frozenset({"ModelRegistered.name"})
# Fields whose values are pseudonymous or role words by schema, checked on their own terms.
NOT_A_PERSON = frozenset({"patient_ref", "reviewer_role", "reporter_role", "patient_facing"})


@dataclass(frozen=True)
class PhiFinding:
    path: str
    kind: str

    @property
    def reason(self) -> str:
        return f"PHI guard: {self.path} looks like {self.kind}; send pseudonymous tokens only"


# Keys and event types come from records, so these caches are bounded: a stream of records with
# random keys must not grow them for ever. Real events repeat a few hundred keys.
KEY_CACHE = 4096


@lru_cache(maxsize=KEY_CACHE)
def _words(key: str) -> frozenset[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1_\2", key)
    return frozenset(w for w in re.split(r"[^a-z]+", spaced.lower()) if w)


@lru_cache(maxsize=KEY_CACHE)
def _identifying(key: str) -> str | None:
    """The kind of identifier any value under this key is, if the key says so (keys repeat: cached)."""
    if key in NOT_A_PERSON:
        return None
    return IDENTIFYING_KEYS.get(key.lower()) or IDENTIFYING_KEYS.get(re.sub(r"([a-z])([A-Z])", r"\1_\2", key).lower())


@lru_cache(maxsize=KEY_CACHE)
def _names_a_person(key: str) -> bool:
    return key not in NOT_A_PERSON and bool(_words(key) & PERSON_WORDS)


class KeyVerdict(NamedTuple):
    """What a key says before its value is looked at: whether the key itself reads as an
    identifier, whether any value under it is one, and whether it names a person."""

    key_is: str | None
    value_is: str | None
    names_a_person: bool


@lru_cache(maxsize=KEY_CACHE)
def _verdict(key: str) -> KeyVerdict:
    # One cached lookup per field: the guard runs on every record the worker and the recorder read.
    return KeyVerdict(_kind_of_text(key), _identifying(key), _names_a_person(key))


def _kind_of_key(verdict: KeyVerdict, value: Any) -> str | None:
    if value in (None, "", [], {}):
        return None
    if verdict.value_is:
        return verdict.value_is
    if isinstance(value, str) and verdict.names_a_person and CAPITALISED_WORD.search(value):
        return "a name"
    return None


# Every value pattern needs a digit, an @ or "www.": most strings (sites, categories, labels) have
# none, and one cheap search spares them the rest.
_MAY_IDENTIFY = re.compile(r"[\d@]|www\.", re.IGNORECASE)
# All patterns in one pass, to learn whether any matches; which kind it is (the most specific, in
# VALUE_PATTERNS' order) is asked only then, which is rare.
_ANY_VALUE = re.compile(
    "|".join(f"(?i:{p.pattern})" if p.flags & re.IGNORECASE else f"(?:{p.pattern})" for _, p in VALUE_PATTERNS)
)


# Short texts found clean, remembered because real events repeat a few hundred values (sites,
# versions, age bands); bounded, and a text that holds an identifier is never kept.
CLEAN_TEXTS = 4096
_clean_texts: dict[str, None] = {}


def _kind_of_text(text: str, skip: tuple[str, ...] = ()) -> str | None:
    if text in _clean_texts:
        return None
    if not _MAY_IDENTIFY.search(text) or not _ANY_VALUE.search(text):
        if len(text) <= 64:
            if len(_clean_texts) >= CLEAN_TEXTS:
                _clean_texts.clear()
            _clean_texts[text] = None
        return None
    return next((kind for kind, p in VALUE_PATTERNS if kind not in skip and p.search(text)), None)


def find_phi(event: dict[str, Any]) -> PhiFinding | None:
    """The first direct identifier in an event (a decoded JSON object), or None.

    Fields are visited depth first in their order, each once, without recursion (nesting is
    bounded by the gate, but the walk must never be what breaks on it). A field's path names list
    items by index (`a[2].b`); its schema path, against which typed fields are looked up, does not.
    Paths are written out only for a finding: the guard runs on every record the worker and the
    recorder read, and most fields are plain."""
    event_type = event.get("event_type")
    patient_ref = event.get("patient_ref")
    if isinstance(patient_ref, str) and not PSEUDONYM.match(patient_ref):
        return PhiFinding(
            "patient_ref", "an identifier rather than a pseudonymous token (16-128 letters, digits, - or _)"
        )
    known_type = isinstance(event_type, str)
    typed = _typed_fields(event_type) if known_type else frozenset()
    # Vigil's own events state due dates and window bounds in their summaries; emitters' may not.
    skip = ("a date finer than a year",) if known_type and event_type in DERIVED_EVENTS else ()
    # The containers being walked, innermost last: (their items, path, schema path, for a list the
    # key it stands under). A dict's items are (key, value), a list's (index, value).
    walking: list[tuple[Iterator[tuple[Any, Any]], str, str, str | None]] = [(iter(event.items()), "", "", None)]
    while walking:
        items, at, schema_at, list_key = walking[-1]
        for name, value in items:
            if list_key is None:
                key = str(name)
                verdict = _verdict(key)
                if verdict.key_is is not None:
                    return PhiFinding(f"{at}.<key>" if at else "<key>", verdict.key_is)
                schema_path = f"{schema_at}.{key}" if schema_at else key
            else:
                key, verdict, schema_path = list_key, _verdict(list_key), schema_at
            if verdict.value_is or verdict.names_a_person:
                kind = _kind_of_key(verdict, value)
                if kind and f"{event_type}.{schema_path}" not in NAME_OF_A_THING:
                    return PhiFinding(_field_path(at, name), kind)
            if isinstance(value, str):
                if schema_path not in typed and (at or key != "patient_ref") and (kind := _kind_of_text(value, skip)):
                    return PhiFinding(_field_path(at, name), kind)
            elif isinstance(value, dict):
                walking.append((iter(value.items()), _field_path(at, name), schema_path, None))
                break
            elif isinstance(value, list):
                walking.append((enumerate(value), _field_path(at, name), schema_path, key))
                break
        else:
            walking.pop()
    return None


def _field_path(at: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{at}[{name}]"
    return f"{at}.{name}" if at else name


@lru_cache(maxsize=64)  # by event type; unknown ones get an empty set
def _typed_fields(event_type: str) -> frozenset[str]:
    """The schema's fields of an event type that cannot hold free text (dotted, without list
    indices): UUIDs, times, numbers and fixed words. Their values are checked by the schema, and a
    UUID or a timestamp is not a phone number or a birth date."""
    cls = EVENT_TYPES.get(event_type)
    return frozenset(_typed(cls, "")) if cls else frozenset()


def _typed(cls: type[BaseModel], prefix: str) -> Iterator[str]:
    for name, field in cls.model_fields.items():
        leaves = list(_leaf_types(field.annotation))
        models = [k for k in leaves if isinstance(k, type) and issubclass(k, BaseModel)]
        for model in models:
            yield from _typed(model, f"{prefix}{name}.")
        if not models and not any(k is str or k is Any for k in leaves):
            yield prefix + name


def _leaf_types(annotation: Any) -> Iterator[Any]:
    origin = get_origin(annotation)
    if origin is None:
        yield annotation
    elif origin is Literal:
        yield from (type(arg) if not isinstance(arg, str) else Literal for arg in get_args(annotation))
    elif origin in (Union, types.UnionType, list, tuple, dict) or str(origin).endswith("Annotated"):
        for arg in get_args(annotation):
            yield from _leaf_types(arg)
    else:
        yield Any
