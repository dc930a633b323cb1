"""Batch drift equals Evidently (run here on the same data) and scipy; properties with hypothesis."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial import distance

from vigil.drift import DriftInputError, Method, dataset_drift, feature_drift, ks_p_value, ks_statistic, wasserstein

rng = np.random.default_rng(7)
N = 3000


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Numeric, categorical with an unseen category and missing values, few distinct values, a constant."""
    reference = pd.DataFrame(
        {
            "age": rng.normal(58, 9, N),
            "contrast": rng.gamma(2.0, 0.3, N),
            "density": rng.choice(list("ABCD"), N, p=[0.1, 0.4, 0.4, 0.1]),
            "grade": rng.integers(1, 6, N).astype(float),
            "lab": np.where(rng.random(N) < 0.1, np.nan, rng.normal(5, 1, N)),
            "constant": np.full(N, 3.0),
        }
    )
    current = pd.DataFrame(
        {
            "age": rng.normal(61, 9, N),
            "contrast": rng.gamma(2.4, 0.3, N),
            "density": np.where(  # type: ignore[call-overload]  # numpy's hints take no None; pandas reads it as missing
                rng.random(N) < 0.05, None, rng.choice(list("ABCDE"), N, p=[0.05, 0.3, 0.45, 0.15, 0.05])
            ),
            "grade": rng.integers(1, 6, N).astype(float),
            "lab": np.where(rng.random(N) < 0.3, np.nan, rng.normal(5.2, 1, N)),
            "constant": np.full(N, 3.0),
        }
    )
    return reference, current


NUMERIC = ["age", "contrast", "grade", "lab", "constant"]
CATEGORICAL = ["density"]


def evidently_scores(reference: pd.DataFrame, current: pd.DataFrame, num_method: str, cat_method: str) -> dict:
    definition = DataDefinition(
        numerical_columns=[c for c in NUMERIC if c in reference],
        categorical_columns=[c for c in CATEGORICAL if c in reference],
    )
    snapshot = Report([DataDriftPreset(num_method=num_method, cat_method=cat_method)]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    scores = {}
    for metric in snapshot.dict()["metrics"]:
        if found := re.match(r"ValueDrift\(column=(\w+),", metric["metric_name"]):
            scores[found.group(1)] = float(metric["value"])
    return scores


@pytest.mark.parametrize(
    ("num_method", "cat_method", "tolerance"),
    [
        ("psi", "psi", 1e-9),
        ("jensenshannon", "jensenshannon", 1e-9),
        ("wasserstein", "chisquare", 1e-6),
        ("ks", "chisquare", 1e-6),
    ],
)
def test_scores_equal_evidentlys(num_method: Method, cat_method: Method, tolerance: float) -> None:
    reference, current = frames()
    expected = evidently_scores(reference, current, num_method, cat_method)
    ours = {}
    for column in reference.columns:
        method: Method = cat_method if column in CATEGORICAL else num_method
        ours[column] = feature_drift(column, reference[column], current[column], method).score
    assert set(expected) == set(ours)
    for column, value in expected.items():
        assert ours[column] == pytest.approx(value, abs=tolerance, rel=tolerance), column


def test_exact_statistics_equal_scipy() -> None:
    reference, current = frames()
    ref, cur = reference["age"], current["age"]
    assert feature_drift("age", ref, cur, "ks").score == pytest.approx(stats.ks_2samp(ref, cur).pvalue, abs=1e-12)
    normed = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert feature_drift("age", ref, cur, "wasserstein").score == pytest.approx(normed, abs=1e-12)
    # Jensen-Shannon on category shares of the values present, the unseen category E included.
    present = current["density"].dropna()
    keys = sorted(set(reference["density"]) | set(present))
    p = [np.mean(reference["density"] == k) for k in keys]
    q = [np.mean(present == k) for k in keys]
    assert feature_drift("density", reference["density"], current["density"], "jensenshannon").score == pytest.approx(
        distance.jensenshannon(p, q), abs=1e-12
    )
    # Chi-square goodness of fit of current counts against reference shares; E is unseen -> p = 0.
    unseen = feature_drift("density", reference["density"], current["density"], "chisquare")
    assert unseen.score == 0.0 and unseen.drifted
    seen = present.replace("E", "D")
    observed = [np.sum(seen == k) for k in "ABCD"]
    expected = [np.sum(reference["density"] == k) * len(seen) / len(reference) for k in "ABCD"]
    assert feature_drift("density", reference["density"], seen, "chisquare").score == pytest.approx(
        stats.chisquare(observed, expected).pvalue, abs=1e-12
    )


def test_dataset_drift_share_and_default_methods() -> None:
    reference, current = frames()
    result = dataset_drift(reference, current)
    by_name = {f.name: f for f in result.features}
    assert by_name["age"].method == "wasserstein" and by_name["density"].method == "jensenshannon"
    assert by_name["grade"].method == "jensenshannon"  # five values: treated as categories
    assert by_name["age"].drifted and not by_name["constant"].drifted
    assert result.share_drifted == sum(f.drifted for f in result.features) / 6
    assert result.dataset_drift == (result.share_drifted >= 0.5)
    assert by_name["lab"].reference_size < N  # missing values dropped, not counted as zeros


@pytest.mark.parametrize(
    ("reference", "current", "message"),
    [
        (pd.DataFrame({"a": [1.0, 2.0]}), pd.DataFrame({"b": [1.0]}), "lacks reference feature"),
        (pd.DataFrame({"a": [np.nan, np.inf]}), pd.DataFrame({"a": [1.0]}), "no values in the reference"),
        (pd.DataFrame({"a": [1.0, 2.0]}), pd.DataFrame({"a": [np.nan]}), "no values in the current"),
        (pd.DataFrame({"a": [1.0]}), pd.DataFrame({"a": []}, dtype=float), "current data has no rows"),
    ],
)
def test_bad_input_is_named(reference: pd.DataFrame, current: pd.DataFrame, message: str) -> None:
    with pytest.raises(DriftInputError, match=message):
        dataset_drift(reference, current)


def test_a_method_for_numeric_features_leaves_categorical_ones_on_their_default() -> None:
    with pytest.raises(DriftInputError, match="does not apply to categorical"):
        feature_drift("a", pd.Series(["x", "y"]), pd.Series(["x"]), "ks")
    reference, current = frames()
    methods = {f.name: f.method for f in dataset_drift(reference, current, method="ks").features}
    assert methods["age"] == "ks" and methods["density"] == "jensenshannon"


samples = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=200)


@settings(max_examples=60, deadline=None)
@given(samples, samples, st.randoms())
def test_psi_is_nonnegative_zero_on_identical_data_and_ignores_row_order(a, b, random) -> None:
    def psi(reference: list[float], current: list[float]) -> float:
        return feature_drift("x", pd.Series(reference), pd.Series(current), "psi").score

    assert psi(a, b) >= -1e-12
    assert psi(a, a) == pytest.approx(0, abs=1e-12)
    shuffled = list(b)
    random.shuffle(shuffled)
    assert psi(a, shuffled) == pytest.approx(psi(a, b), abs=1e-9)


SAMPLE_WITH_TIES = st.lists(st.integers(-5, 5) | st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=60)


@settings(max_examples=100, deadline=None)
@given(SAMPLE_WITH_TIES, SAMPLE_WITH_TIES)
def test_wasserstein_equals_scipy_including_ties(a, b) -> None:
    u, v = np.array(a, dtype=float), np.array(b, dtype=float)
    assert wasserstein(u, v) == pytest.approx(stats.wasserstein_distance(u, v), abs=1e-9, rel=1e-9)


@pytest.mark.parametrize("decimals", [None, 1])  # continuous values, and heavy ties
def test_ks_beyond_scipys_exact_limit_equals_scipy(decimals: int | None) -> None:
    rng = np.random.default_rng(21)
    reference, current = rng.normal(0, 1, 30_000), rng.normal(0.02, 1, 12_000)
    if decimals is not None:
        reference, current = reference.round(decimals), current.round(decimals)
    expected = stats.ks_2samp(reference, current)
    assert ks_statistic(reference, current) == pytest.approx(expected.statistic, abs=1e-15)
    assert ks_p_value(reference, current) == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-15)


@settings(max_examples=200, deadline=None)
@given(SAMPLE_WITH_TIES, SAMPLE_WITH_TIES, st.integers(1, 40))
@example([0], [2.2250738585e-313], 1)  # a span of subnormal numbers, found by hypothesis
@example([-1e308, 1e308], [0.0, 1e308], 7)  # a span beyond the largest float
def test_ks_statistic_equals_scipy_including_ties(a, b, bins) -> None:
    # Small samples in up to 40 bins, so that bins are both pruned and searched.
    u, v = np.array(a, dtype=float), np.array(b, dtype=float)
    assert ks_statistic(u, v, bins) == pytest.approx(stats.ks_2samp(u, v).statistic, abs=1e-12)
