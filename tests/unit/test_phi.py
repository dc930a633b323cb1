"""PHI guard: direct identifiers are found wherever they hide; ordinary clinical data passes."""

import pytest

from vigil.phi import find_phi
from vigil.validation import Rejected, parse

from .test_validation import hospital_events, inference


@pytest.mark.parametrize(
    ("changes", "path", "kind"),
    [
        ({"patient_ref": "12345678"}, "patient_ref", "identifier"),
        ({"patient_ref": "MRN-00042"}, "patient_ref", "identifier"),
        ({"features": {"note": "contact jane.doe@example.org"}}, "features.note", "e-mail"),
        ({"features": {"callback": "(555) 123-4567"}}, "features.callback", "telephone"),
        ({"features": {"id": "123-45-6789"}}, "features.id", "social security"),
        ({"subgroup": {"ref": "MRN: 00123456"}}, "subgroup.ref", "medical record"),
        ({"features": {"home": "221 Baker Street"}}, "features.home", "street address"),
        ({"features": {"home": "Hauptstraße 5"}}, "features.home", "street address"),
        ({"features": {"name": "Jane Doe"}}, "features.name", "a name"),
        ({"subgroup": {"dob": "1961-02-03"}}, "subgroup.dob", "birth date"),
    ],
)
def test_identifiers_are_found_and_named_without_their_value(changes: dict, path: str, kind: str) -> None:
    event = inference(**changes)
    finding = find_phi(event)
    assert finding is not None
    assert finding.path == path
    assert kind in finding.kind
    with pytest.raises(Rejected) as caught:
        parse(event)
    assert caught.value.kind == "phi"
    secret = changes.get("patient_ref") or next(iter(next(iter(changes.values())).values()))
    assert secret not in caught.value.reason


def test_ordinary_events_pass() -> None:
    assert all(find_phi(e) is None for e in hospital_events(90))


def test_ordinary_prose_with_numbers_is_not_an_address() -> None:
    for text in ("model 0.9.1 at st-mary was not escalated", "3 days drive from the clinic", "2 ways forward"):
        assert find_phi(inference(features={"note": text})) is None


def test_a_model_may_have_a_name() -> None:
    registered = next(e for e in hospital_events(1) if e["event_type"] == "ModelRegistered")
    assert find_phi(registered) is None


def test_random_keys_and_values_do_not_grow_the_guards_caches_for_ever() -> None:
    from vigil import phi

    for n in range(max(phi.KEY_CACHE, phi.CLEAN_TEXTS) + 500):
        find_phi(inference(features={f"k{n}": 1.0, "note": f"plain text {n}"}))
    assert len(phi._clean_texts) <= phi.CLEAN_TEXTS
    for cached in (phi._words, phi._identifying, phi._names_a_person, phi._verdict):
        assert cached.cache_info().currsize <= phi.KEY_CACHE


def test_a_text_found_clean_once_is_still_judged_in_every_other_place() -> None:
    # The guard remembers clean texts; an identifier is never among them, wherever it comes again.
    assert find_phi(inference(features={"note": "see 555-123-4567"})) is not None
    assert find_phi(inference(subgroup={"site": "north-valley"})) is None
    assert find_phi(inference(features={"patient_name": "north-valley"})) is not None
