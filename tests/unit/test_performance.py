"""Subgroup performance equals Fairlearn and scikit-learn on the same data; intervals equal scipy's."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, false_positive_rate, true_negative_rate, true_positive_rate
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import accuracy_score, brier_score_loss, confusion_matrix, precision_score

from vigil.performance import (
    OTHER,
    OVERALL,
    Capped,
    Counts,
    Pair,
    Rules,
    assess,
    outcome_counts,
    subgroups_of,
    tally,
)
from vigil.policy import Policy

rng = np.random.default_rng(4)
SENSITIVITY = {"st-mary": 0.89, "north-valley": 0.91, "city-east": 0.87, "riverside-rural": 0.76}


def population(n: int) -> pd.DataFrame:
    site = rng.choice(list(SENSITIVITY), n)
    sex = rng.choice(["F", "M"], n)
    truth = rng.random(n) < 0.3
    detect = rng.random(n) < np.vectorize(SENSITIVITY.get)(site)
    predicted = np.where(truth, detect, rng.random(n) < 0.1)
    score = np.clip(np.where(predicted, rng.uniform(0.5, 1, n), rng.uniform(0, 0.5, n)), 0, 1).round(3)
    return pd.DataFrame({"site": site, "sex": sex, "truth": truth, "predicted": predicted, "score": score})


def pairs_of(frame: pd.DataFrame) -> list[Pair]:
    return [
        Pair(
            {"site": r.site, "sex": r.sex},
            "urgent" if r.predicted else "non_urgent",
            r.score,
            {},
            "urgent" if r.truth else "non_urgent",
        )
        for r in frame.itertuples()
    ]


def npv(y_true, y_pred) -> float:
    tn, _, fn, _ = confusion_matrix(y_true, y_pred, labels=[False, True]).ravel()[[0, 1, 2, 3]]
    return tn / (tn + fn)


FAIRLEARN = {
    "sensitivity": true_positive_rate,
    "specificity": true_negative_rate,
    "ppv": lambda t, p: precision_score(t, p, zero_division=np.nan),
    "npv": npv,
    "accuracy": accuracy_score,
    "fpr": false_positive_rate,
}


@pytest.mark.parametrize("by", [["site"], ["sex"], ["sex", "site"]])
def test_metrics_equal_fairlearn_metricframe(by: list[str]) -> None:
    frame = population(3000)
    table = tally(pairs_of(frame), ["urgent"], ["sex", "site"], depth=2)
    reference = MetricFrame(
        metrics=FAIRLEARN, y_true=frame.truth, y_pred=frame.predicted, sensitive_features=frame[by]
    ).by_group
    for index, row in reference.iterrows():
        values = index if isinstance(index, tuple) else (index,)
        counts = table[("urgent", tuple(sorted(zip(by, values, strict=True))))]
        for metric, expected in row.items():
            assert counts.value(metric) == pytest.approx(expected, abs=1e-12), (index, metric)
    overall = MetricFrame(
        metrics=FAIRLEARN, y_true=frame.truth, y_pred=frame.predicted, sensitive_features=frame[by]
    ).overall
    for metric, expected in overall.items():
        assert table[("urgent", OVERALL)].value(metric) == pytest.approx(expected, abs=1e-12)


def test_brier_and_intervals_equal_sklearn_and_scipy() -> None:
    frame = population(2000)
    counts = tally(pairs_of(frame), ["urgent"], ["site"], depth=1)
    for site, group in frame.groupby("site"):
        got = counts[("urgent", (("site", site),))]
        assert got.brier == pytest.approx(brier_score_loss(group.truth, group.score), abs=1e-12)
        _, _, fn, tp = confusion_matrix(group.truth, group.predicted).ravel()
        expected = stats.binomtest(int(tp), int(tp + fn)).proportion_ci(method="wilson")
        assert got.interval("sensitivity") == pytest.approx((expected.low, expected.high), abs=1e-15)


def test_multiclass_is_one_vs_rest_for_each_critical_label() -> None:
    truth = ["emergency", "see_gp", "self_care", "emergency", "see_gp"]
    predicted = ["emergency", "emergency", "self_care", "self_care", "see_gp"]
    pairs = [Pair({}, p, None, {"emergency": 0.5}, t) for p, t in zip(predicted, truth, strict=True)]
    table = tally(pairs, ["emergency", "see_gp"], [], 1)
    y_true, y_pred = np.array(truth) == "emergency", np.array(predicted) == "emergency"
    tn, fp, fn, tp = confusion_matrix(y_true, y_pred).ravel()
    assert table[("emergency", OVERALL)] == Counts(tp, fp, tn, fn, brier_sum=5 * 0.25, scored=5)
    assert table[("see_gp", OVERALL)].value("sensitivity") == 0.5


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.sampled_from("ab")), max_size=80), st.integers(1, 4))
def test_counts_merge_associatively_across_partitions(rows, parts) -> None:
    pairs = [Pair({"g": g}, "p" if said else "n", None, {}, "p" if actual else "n") for actual, said, g in rows]
    whole = tally(pairs, ["p"], ["g"], 1)
    merged: dict = {}
    for i in range(parts):
        for key, counts in tally(pairs[i::parts], ["p"], ["g"], 1).items():
            merged[key] = merged.get(key, Counts()) + counts
    assert merged == whole
    assert tally(list(reversed(pairs)), ["p"], ["g"], 1) == whole


def test_subgroups_and_cardinality_cap() -> None:
    groups = subgroups_of({"sex": "F", "site": "a"}, ["site", "sex", "language"], depth=2)
    assert groups == [OVERALL, (("sex", "F"),), (("site", "a"),), (("sex", "F"), ("site", "a"))]  # no language
    capped = Capped(limit=2)
    seen = [capped.apply({"site": s}, ["site"])["site"] for s in ["a", "b", "c", "a", "d"]]
    assert seen == ["a", "b", OTHER, "a", OTHER]


def test_assess_flags_breaches_and_the_low_resource_gap() -> None:
    table = tally(pairs_of(population(8000)), ["urgent"], ["site"], depth=1)
    rules = Rules(metric="sensitivity", threshold=0.90, disparity=0.05, min_positives=20, min_negatives=20)
    breaches, disparities = assess(table, rules)
    rural = next(b for b in breaches if b.estimate.subgroup == (("site", "riverside-rural"),))
    assert rural.level == "confirmed" and rural.estimate.high < 0.90
    (gap,) = disparities
    assert gap.worst.subgroup == (("site", "riverside-rural"),) and gap.best.subgroup == (("site", "north-valley"),)
    assert gap.significant and gap.gap == pytest.approx(gap.best.value - gap.worst.value)
    best, worst = gap.best, gap.worst
    fisher = stats.fisher_exact(
        [[best.successes, best.trials - best.successes], [worst.successes, worst.trials - worst.successes]]
    )
    assert gap.p_value == pytest.approx(fisher.pvalue)
    # Too few positives: nothing is judged.
    assert assess(table, Rules("sensitivity", 0.9, 0.05, min_positives=10_000, min_negatives=0)) == ([], [])


def test_no_prediction_counts_as_negative() -> None:
    assert outcome_counts(None, "urgent", "urgent", None) == Counts(fn=1)


def test_policy_thresholds_follow_the_risk_class() -> None:
    policy = Policy({"models": {"chat": {"performance": {"risk_class": "high", "disparity": 0.03}}}})
    assert policy.for_model("chat").performance.rules("low").threshold == 0.95
    assert policy.for_model("chat").performance.rules("low").disparity == 0.03
    assert policy.for_model("other").performance.rules("medium").threshold == 0.90


def test_compute_on_files_prints_json_with_unmatched_counts(tmp_path) -> None:
    from typer.testing import CliRunner

    from services.cli import app

    frame = population(1500)
    ids = [f"inf-{i}" for i in range(len(frame))]
    predictions = frame.assign(inference_id=ids, label=np.where(frame.predicted, "urgent", "non_urgent"))
    predictions[["inference_id", "label", "score", "site", "sex"]].to_csv(tmp_path / "p.csv", index=False)
    outcomes = pd.DataFrame({"inference_id": [*ids[:1400], "stray"], "label": [*np.where(frame.truth, "urgent",
                            "non_urgent")[:1400], "urgent"]})  # fmt: skip
    outcomes.to_csv(tmp_path / "o.csv", index=False)
    args = ["performance", "compute", "--predictions", str(tmp_path / "p.csv"), "--outcomes", str(tmp_path / "o.csv"),
            "--positive", "urgent", "--by", "site", "--risk-class", "medium", "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["unmatched"] == {"predictions_without_outcome": 100, "outcomes_without_prediction": 1}
    everyone = next(r for r in body["rows"] if r["subgroup"] == {})
    assert everyone["n"] == 1400 and set(everyone) >= {"tp", "fp", "tn", "fn", "sensitivity", "sensitivity_ci"}
    assert body["disparity"][0]["worst"]["subgroup"] == {"site": "riverside-rural"}

    bad = CliRunner().invoke(app, [*args[:3], str(tmp_path / "o.csv"), *args[4:]])  # outcomes lack 'site'
    assert bad.exit_code == 2 and "lacks column(s): site" in bad.output


def _joined_pairs(events: list) -> list[tuple[str | None, str]]:
    """What the worker's join yields for events in this order."""
    from vigil.performance_monitor import join_key, meet

    waiting: dict = {}
    pairs = []
    for event in events:
        pair = meet(waiting.get(join_key(event)), event)
        if pair is None:
            waiting.setdefault(join_key(event), event)
        else:
            del waiting[join_key(event)]
            pairs.append((pair[0].output.label, pair[1].label))
    return sorted(pairs)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_outcome_before_inference_gives_the_same_state(cases, random) -> None:
    import uuid
    from datetime import UTC, datetime

    from vigil.events import InferenceMade, OutcomeObserved

    at = datetime(2026, 11, 2, tzinfo=UTC)
    inferences, outcomes = [], []
    for said, actual in cases:
        inference = InferenceMade(
            event_id=uuid.uuid4(), occurred_at=at, model_id="m", model_version="1", deployment="d", use_case="u",
            patient_ref="pt_0123456789abcdef", output={"label": "urgent" if said else "non_urgent"},
        )  # fmt: skip
        inferences.append(inference)
        outcomes.append(
            OutcomeObserved(
                event_id=uuid.uuid4(),
                occurred_at=at,
                inference_id=inference.event_id,
                model_id="m",
                observed_at=at,
                label="urgent" if actual else "non_urgent",
                source="follow_up",
            )
        )
    inference_first = _joined_pairs([*inferences, *outcomes])
    outcome_first = _joined_pairs([*outcomes, *inferences])
    shuffled = [*inferences, *outcomes, *outcomes[:3]]  # with duplicate outcomes
    random.shuffle(shuffled)
    assert inference_first == outcome_first == _joined_pairs(shuffled)
    assert len(inference_first) == len(cases)


def test_an_outcome_naming_another_model_is_refused_with_both_names() -> None:
    import uuid
    from datetime import UTC, datetime

    from vigil.events import InferenceMade, OutcomeObserved
    from vigil.performance_monitor import mismatched

    at = datetime(2026, 11, 2, tzinfo=UTC)
    inference = InferenceMade(
        event_id=uuid.uuid4(), occurred_at=at, model_id="a", model_version="1", deployment="d", use_case="u",
        patient_ref="pt_0123456789abcdef", output={"label": "x"},
    )  # fmt: skip
    outcome = OutcomeObserved(
        event_id=uuid.uuid4(), occurred_at=at, inference_id=inference.event_id, model_id="b", observed_at=at,
        label="x", source="follow_up",
    )  # fmt: skip
    why = mismatched(inference, outcome)
    assert why is not None and why.kind == "model_mismatch" and "'b'" in why.reason and "'a'" in why.reason
    assert mismatched(inference, outcome.model_copy(update={"model_id": "a"})) is None
