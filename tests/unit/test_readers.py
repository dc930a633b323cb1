"""AI alone against the clinician with AI: rates as pandas counts them, McNemar as statsmodels
computes it, and the verdict on worse readers and accepted wrong suggestions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.contingency_tables import mcnemar

from vigil.readers import ReaderCase, reader_report

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
