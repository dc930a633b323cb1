"""Streaming drift: windows merge like one-shot computation; sketch statistics within their bounds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from vigil.drift import drifted
from vigil.drift_windows import (
    categorical_profile,
    ks_statistic,
    numeric_profile,
    score,
    wasserstein_estimate,
)

rng = np.random.default_rng(3)


def filled(profile, values):
    window = profile.window()
    for v in values:
        window.add(profile, v)
    return window


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False) | st.none(), min_size=1, max_size=300), st.integers(1, 5))
def test_merging_windows_equals_one_window(values, parts) -> None:
    profile = numeric_profile("x", rng.normal(0, 300, 500))
    whole = filled(profile, values)
    chunks = [filled(profile, values[i::parts]) for i in range(parts)]
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged.merge(chunk)
    assert (merged.counts == whole.counts).all()
    assert (merged.n, merged.missing) == (whole.n, whole.missing)
    assert merged.sketch.n == whole.sketch.n
    if whole.n:
        assert score(profile, merged, "psi") == score(profile, whole, "psi")


def test_unseen_categories_are_counted_not_dropped() -> None:
    profile = categorical_profile("lang", ["de"] * 50 + ["fr"] * 30 + ["en"] * 20)
    window = filled(profile, ["de"] * 10 + ["tr"] * 10)
    assert window.counts[profile.categories.index("de")] == 10
    assert window.counts[-1] == 10  # the bin for categories the reference never saw
    assert drifted("chisquare", score(profile, window, "chisquare"))


def test_sketch_ks_is_within_its_stated_bound_of_scipy() -> None:
    reference = rng.normal(0, 1, 50_000)
    current = rng.normal(0.08, 1.1, 40_000)
    profile = numeric_profile("x", reference)
    window = filled(profile, current)
    estimate, bound = ks_statistic(profile, window)
    exact = stats.ks_2samp(reference, current).statistic
    assert abs(estimate - exact) <= bound
    assert bound < 0.03


@pytest.mark.parametrize("seed", range(4))
def test_streaming_wasserstein_is_within_its_stated_bound_of_scipy(seed: int) -> None:
    own = np.random.default_rng(seed)
    reference, current = own.gamma(2, 1, 30_000), own.gamma(2.4, 1, 30_000)
    profile = numeric_profile("x", reference)
    window = profile.window()
    window.add_many(profile, current)
    estimate, bound = wasserstein_estimate(profile, window)
    exact = stats.wasserstein_distance(reference, current) / np.std(reference)
    assert abs(estimate - exact) <= bound


def test_identical_streams_do_not_drift_and_shifted_ones_do() -> None:
    # The very reference values: a fresh sample would fail a 5 % test one time in twenty.
    reference = rng.normal(0, 1, 20_000)
    profile = numeric_profile("x", reference)
    same = filled(profile, reference)
    shifted = filled(profile, rng.normal(0.5, 1, 5_000))
    for method in ("psi", "jensenshannon", "wasserstein", "ks"):
        assert not drifted(method, score(profile, same, method)), method
        assert drifted(method, score(profile, shifted, method)), method


@pytest.mark.parametrize("seed", range(6))
def test_sketch_error_alone_never_reads_as_drift_on_large_windows(seed: int) -> None:
    # 50,000 values from the reference's own distribution: the sketches' rank error (a gap of about
    # 0.02) would have a p-value far below 0.05 at this size if it were taken at face value.
    own = np.random.default_rng(seed)
    profile = numeric_profile("x", own.normal(0, 1, 50_000))
    window = filled(profile, own.normal(0, 1, 50_000))
    assert not drifted("ks", score(profile, window, "ks"))


def test_bad_input_is_named() -> None:
    profile = numeric_profile("x", [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="window is empty"):
        score(profile, profile.window(), "psi")
    with pytest.raises(ValueError, match="reference has no values"):
        numeric_profile("y", [float("nan")])
    with pytest.raises(ValueError, match="needs a numeric feature"):
        cat = categorical_profile("c", ["a"])
        score(cat, filled(cat, ["a"]), "ks")


def test_a_batch_adds_like_single_values() -> None:
    profile = numeric_profile("x", rng.normal(0, 1, 1000))
    values = np.append(rng.normal(0, 2, 500), [np.nan, np.inf])
    one_by_one = filled(profile, [float(v) for v in values])
    batch = profile.window()
    batch.add_many(profile, values)
    assert (batch.counts == one_by_one.counts).all() and (batch.n, batch.missing) == (one_by_one.n, one_by_one.missing)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(allow_nan=True) | st.integers(-5, 5) | st.none() | st.sampled_from(["a", "b", "zz"]),
                max_size=200))  # fmt: skip
def test_a_list_of_mixed_values_adds_like_single_values(values) -> None:
    """The worker adds a batch's values per window at once: the same counts as one by one, on
    numeric profiles (strings counted as mismatched) and categorical ones alike."""
    for profile in (numeric_profile("x", rng.normal(0, 1, 1000)), categorical_profile("c", ["a", "b", "a"])):
        one_by_one = filled(profile, values)
        together = profile.window()
        together.add_all(profile, values)
        assert (together.counts == one_by_one.counts).all()
        assert (together.n, together.missing, together.mismatched) == (
            one_by_one.n, one_by_one.missing, one_by_one.mismatched
        )  # fmt: skip
