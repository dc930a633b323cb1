"""AI alone against the clinician with AI: rates as pandas counts them, McNemar as statsmodels
computes it, and the verdict on worse readers and accepted wrong suggestions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.contingency_tables import mcnemar

from vigil.events import ReaderFindingRaised, ReaderFindingResolved
from vigil.policy import ReadersPolicy
from vigil.readers import (
    ReaderCase,
    ReaderState,
    count_case,
    findings,
    reader_alert,
    reader_report,
    reader_transitions,
    window_rows,
)

LABELS = ["benign", "malignant"]


def cases_of(rng: np.random.Generator, n: int, clinician_skill: float) -> list[ReaderCase]:
    out = []
    for _ in range(n):
        truth = str(rng.choice(LABELS, p=[0.7, 0.3]))
        model = truth if rng.uniform() < 0.88 else ("benign" if truth == "malignant" else "malignant")
        keep = rng.uniform() < 0.8
        final = model if keep else (truth if rng.uniform() < clinician_skill else model)
        decision = "accepted" if final == model and keep else "overridden" if final != model else "modified"
        site = str(rng.choice(["a", "b"]))
        out.append(ReaderCase({"site": site}, model, final, truth, decision))
    return out


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 1.0))
def test_rates_equal_pandas_and_the_p_value_equals_statsmodels_mcnemar(seed: int, skill: float) -> None:
    cases = cases_of(np.random.default_rng(seed), 300, skill)
    found = reader_report(cases, ["malignant"], ["site"], without_final_label=0)
    frame = pd.DataFrame([vars(c) | {"site": c.subgroup["site"]} for c in cases])
    for row in found.rows:
        rows = frame if not row.subgroup else frame[frame.site == row.subgroup["site"]]
        positive = rows[rows.truth == "malignant"]
        model = positive.model_label == "malignant"  # right on a truth positive
        clinician = positive.final_label == "malignant"
        if len(positive):
            assert row.model_sensitivity == pytest.approx(model.mean())
            assert row.clinician_sensitivity == pytest.approx(clinician.mean())
        table = [[int((model & clinician).sum()), int((model & ~clinician).sum())],
                 [int((~model & clinician).sum()), int((~model & ~clinician).sum())]]  # fmt: skip
        if table[0][1] + table[1][0]:
            assert row.sensitivity_p == pytest.approx(mcnemar(table, exact=True).pvalue)
        else:
            assert row.sensitivity_p is None
        wrong = rows[(rows.model_label == "malignant") != (rows.truth == "malignant")]
        if len(wrong):
            assert row.wrong_accepted == pytest.approx((wrong.decision == "accepted").mean())
        assert row.cases == len(rows)


def test_a_clinician_worse_than_the_model_and_accepting_wrong_suggestions_is_named() -> None:
    # The clinician turns right suggestions wrong and accepts every wrong one.
    cases = [ReaderCase({}, "malignant", "benign", "malignant", "overridden")] * 20
    cases += [ReaderCase({}, "benign", "benign", "malignant", "accepted")] * 12
    cases += [ReaderCase({}, "malignant", "malignant", "malignant", "accepted")] * 30
    found = reader_report(cases, ["malignant"], [], without_final_label=4)
    [everyone] = found.rows
    assert everyone.model_sensitivity == pytest.approx(50 / 62) and everyone.clinician_sensitivity == pytest.approx(
        30 / 62
    )
    assert everyone.wrong_accepted == 1.0 and everyone.right_changed == pytest.approx(20 / 50)
    assert any("less sensitive for 'malignant' than the model alone in everyone" in v for v in found.verdict)
    assert any("accepted 100% of 12 wrong suggestions" in v for v in found.verdict)
    assert found.without_final_label == 4


def test_a_clinician_who_corrects_the_model_is_not_flagged() -> None:
    cases = [ReaderCase({}, "benign", "malignant", "malignant", "overridden")] * 15
    cases += [ReaderCase({}, "malignant", "malignant", "malignant", "accepted")] * 40
    found = reader_report(cases, ["malignant"], [], without_final_label=0)
    assert found.verdict == ["clinicians with the model are not worse than it alone"]
    assert found.rows[0].clinician_sensitivity == 1.0 and found.rows[0].wrong_accepted == 0.0


T0 = datetime(2026, 10, 5, 9, tzinfo=UTC)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 20))
def test_counts_by_day_give_the_batch_rows_over_the_window(seed: int, window_days: int) -> None:
    """The worker's day buckets over a window give the rows the query computes from the cases in it."""
    rng = np.random.default_rng(seed)
    cases = cases_of(rng, 400, 0.5)
    made = [T0 + timedelta(hours=int(h)) for h in rng.integers(0, 24 * 30, len(cases))]
    state = ReaderState()
    for case, at in zip(cases, made, strict=True):
        count_case(state, case, at, ["malignant"], ["site"], max_values=20)
    assert state.latest == max(made)
    first = state.latest.date() - timedelta(days=window_days - 1)
    inside = [c for c, at in zip(cases, made, strict=True) if at.date() >= first]
    expected = reader_report(inside, ["malignant"], ["site"], 0).rows
    assert window_rows(state, state.latest.date(), window_days) == expected
    assert min(state.days) >= first.isoformat()  # older days are dropped


def test_findings_are_raised_once_and_resolved_with_stable_ids() -> None:
    policy = ReadersPolicy(min_wrong=10)
    bad = [ReaderCase({"site": "a"}, "benign", "benign", "malignant", "accepted")] * 12  # wrong, accepted
    bad += [ReaderCase({"site": "a"}, "malignant", "benign", "malignant", "modified")] * 30  # right, changed
    state = ReaderState()
    for case in bad:
        count_case(state, case, T0, ["malignant"], ["site"], 20)
    rows = window_rows(state, T0.date(), 30)
    found = findings(rows, policy)
    assert {(f.kind, tuple(f.row.subgroup.items())) for f in found} == {
        ("clinician_less_sensitive", ()), ("clinician_less_sensitive", (("site", "a"),)),
        ("wrong_suggestions_accepted", ()), ("wrong_suggestions_accepted", (("site", "a"),)),
    }  # fmt: skip
    raised = reader_transitions(state, "m", "1", rows, found, 30, T0)
    assert len(raised) == 4 and all(isinstance(e, ReaderFindingRaised) for e in raised)
    assert reader_transitions(state, "m", "1", rows, found, 30, T0) == []  # standing: nothing new
    again = ReaderState()
    for case in bad:
        count_case(again, case, T0, ["malignant"], ["site"], 20)
    replayed = reader_transitions(again, "m", "1", rows, found, 30, T0)
    assert [e.event_id for e in replayed] == [e.event_id for e in raised]
    alert = reader_alert(raised[0])
    assert alert.alert_name == "ClinicianLessSensitive" and alert.severity == "critical"
    assert alert.labels == {"label": "malignant", "subgroup": "everyone"}

    later = T0 + timedelta(days=1)
    for case in [ReaderCase({"site": "a"}, "benign", "malignant", "malignant", "overridden")] * 200:
        count_case(state, case, later, ["malignant"], ["site"], 20)  # clinicians catch what the model missed
    rows = window_rows(state, later.date(), 30)
    resolved = reader_transitions(state, "m", "1", rows, findings(rows, policy), 30, later)
    assert {type(e) for e in resolved} == {ReaderFindingResolved} and len(resolved) == 4
    assert {e.raised_event_id for e in resolved if isinstance(e, ReaderFindingResolved)} == {e.event_id for e in raised}
    assert state.standing == {}
    assert reader_alert(resolved[0]).resolved


def test_attribute_values_past_the_cap_are_counted_as_other() -> None:
    state = ReaderState()
    for site in "abc":
        count_case(state, ReaderCase({"site": site}, "benign", "benign", "benign", "accepted"), T0, ["malignant"],
                   ["site"], max_values=2)  # fmt: skip
    groups = {tuple(r.subgroup.items()) for r in window_rows(state, T0.date(), 1)}
    assert groups == {(), (("site", "a"),), (("site", "b"),), (("site", "other"),)}
