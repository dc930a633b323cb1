"""Drift between a reference sample and a current sample, per feature and for a dataset.

Batch mode follows Evidently's conventions exactly (Evidently 0.7, legacy stattests), so results
compare one to one:

- rows with a missing value (NaN, None, ±inf) are dropped per feature before testing;
- PSI and Jensen-Shannon bin a numeric feature with more than 20 distinct reference values into
  Sturges bins over reference and current together; otherwise (categorical, or few values) each
  distinct value is a bin, including values seen only in the current sample;
- PSI replaces empty bins by a small share (Evidently's rule, see `_fill_zeroes`);
- Wasserstein distance is divided by the reference's standard deviation (ddof 0, at least 0.001);
- KS and chi-square report p-values; drift when p <= 0.05 (KS) or p < 0.05 (chi-square);
  the distances drift when score >= threshold.

A column is numeric when its values are numbers; anything else is categorical.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

Method = Literal["psi", "ks", "wasserstein", "jensenshannon", "chisquare"]
Kind = Literal["numeric", "categorical"]

# Evidently's default thresholds. For p-value tests the threshold is the significance level.
THRESHOLDS: dict[Method, float] = {"psi": 0.1, "ks": 0.05, "wasserstein": 0.1, "jensenshannon": 0.1, "chisquare": 0.05}
P_VALUE_METHODS: frozenset[Method] = frozenset({"ks", "chisquare"})
ALLOWED: dict[Kind, frozenset[Method]] = {
    "numeric": frozenset({"psi", "ks", "wasserstein", "jensenshannon", "chisquare"}),
    "categorical": frozenset({"psi", "jensenshannon", "chisquare"}),
}


class DriftInputError(ValueError):
    """Input that cannot be compared; the message says which feature and why."""


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    kind: Kind
    method: Method | Literal["share_drifted"]  # the dataset's verdict: the share of drifted features
    score: float
    threshold: float
    drifted: bool
    reference_size: int
    current_size: int


@dataclass(frozen=True)
class DatasetDrift:
    features: list[FeatureDrift]
    share_drifted: float
    drift_share: float
    dataset_drift: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "features": [
                {k: getattr(f, k) for k in ("name", "kind", "method", "score", "threshold", "drifted")}
                | {"reference_size": f.reference_size, "current_size": f.current_size}
                for f in self.features
            ],
            "share_drifted": self.share_drifted,
            "dataset_drift": self.dataset_drift,
        }


def kind_of(series: pd.Series) -> Kind:
    return (
        "numeric" if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series) else "categorical"
    )


def method_for(kind: Kind, reference_size: int, few_values: bool = False) -> Method:
    """Evidently's choice for a feature (its z-test for two categories is chi-square here)."""
    if reference_size <= 1000:
        return "chisquare" if kind == "categorical" or few_values else "ks"
    return "jensenshannon" if kind == "categorical" or few_values else "wasserstein"


def _finite(series: pd.Series) -> np.ndarray:
    values: np.ndarray = series.to_numpy(dtype=float, na_value=np.nan)  # pandas has no hints here
    return np.asarray(values[np.isfinite(values)])


def _more_distinct_than(values: np.ndarray, k: int) -> bool:
    # A prefix with more than k distinct values settles it without hashing the whole column.
    return len(pd.unique(values[:2000])) > k or len(pd.unique(values)) > k


def distinct_counts(
    reference: pd.Series | np.ndarray, current: pd.Series | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of every distinct value seen in either sample, in reference and current; missing
    values (None, NaN) are left out. Each sample is hashed once, without copying it."""
    ref_codes, ref_values = pd.factorize(reference)
    cur_codes, cur_values = pd.factorize(current)
    position = pd.Index(ref_values).get_indexer(cur_values)
    unseen = position < 0
    position[unseen] = len(ref_values) + np.arange(unseen.sum())
    k = len(ref_values) + int(unseen.sum())
    return np.bincount(ref_codes[ref_codes >= 0], minlength=k), np.bincount(
        position[cur_codes[cur_codes >= 0]], minlength=k
    )


def binned_counts(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts of numeric values in Evidently's bins (get_binned_data): Sturges bins over both
    samples when the reference has more than 20 distinct values, else one bin per value."""
    if not _more_distinct_than(reference, 20):
        return distinct_counts(reference, current)
    edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
    # Sturges edges are uniform: given as count and range, np.histogram takes its fast path
    # (no sort) and puts values on an edge in the same bin as with the explicit edges.
    bins, span = len(edges) - 1, (edges[0], edges[-1])
    return np.histogram(reference, bins, span)[0], np.histogram(current, bins, span)[0]


def _fill_zeroes(percents: np.ndarray) -> np.ndarray:
    smallest = percents[percents != 0].min()
    out = percents.copy()
    out[out == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return out


def psi_of_shares(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI over bin shares; batch and streaming mode both use it."""
    ref, cur = _fill_zeroes(reference), _fill_zeroes(current)
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def drifted(method: Method, score: float, threshold: float | None = None) -> bool:
    """The verdict: p-values drift when small (KS at or below, chi-square below), distances when large."""
    threshold = THRESHOLDS[method] if threshold is None else threshold
    if method == "ks":
        return score <= threshold
    if method == "chisquare":
        return score < threshold
    return score >= threshold


def score_of_counts(method: Method, reference: np.ndarray, current: np.ndarray) -> float:
    """PSI, Jensen-Shannon distance or chi-square p-value of two samples counted in the same bins."""
    ref_size, cur_size = reference.sum(), current.sum()
    if method == "psi":
        return psi_of_shares(reference / ref_size, current / cur_size)
    if method == "jensenshannon":
        return float(distance.jensenshannon(reference / ref_size, current / cur_size))
    expected = reference * (cur_size / ref_size)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(stats.chisquare(current, expected).pvalue)


def wasserstein(u: np.ndarray, v: np.ndarray) -> float:
    """First Wasserstein distance, as the area between the two quantile functions (equal to the
    area between the CDFs, which scipy sums). On [0, 1] scaled by n * m, u's quantile function
    steps at multiples of m and v's at multiples of n; between two steps both are constant."""
    u, v = np.sort(u), np.sort(v)
    n, m = len(u), len(v)
    steps = np.sort(np.concatenate([np.arange(0, n * m, m), np.arange(0, n * m, n)]), kind="stable")  # a merge
    widths = np.diff(steps, append=n * m)
    return float(np.sum(np.abs(u[steps // m] - v[steps // n]) * widths) / (n * m))


def wasserstein_normed(reference: np.ndarray, current: np.ndarray) -> float:
    return wasserstein(reference, current) / max(float(np.std(reference)), 0.001)


SCIPY_EXACT_LIMIT = 10_000  # ks_2samp computes an exact p-value up to this many values per sample


def ks_p_value(reference: np.ndarray, current: np.ndarray) -> float:
    """scipy's ks_2samp p-value. Beyond scipy's exact limit it uses the asymptotic distribution
    itself, on the statistic from `ks_statistic`."""
    if max(len(reference), len(current)) <= SCIPY_EXACT_LIMIT:
        return float(stats.ks_2samp(reference, current).pvalue)
    d = ks_statistic(reference, current)
    larger, smaller = max(len(reference), len(current)), min(len(reference), len(current))
    return float(np.clip(stats.kstwo.sf(d, np.round(larger * smaller / (larger + smaller))), 0, 1))


def ks_statistic(u: np.ndarray, v: np.ndarray, bins: int | None = None) -> float:
    """The largest gap between the two empirical CDFs, exactly, with little sorting.

    The values are counted in equal-width bins. At the end of each bin the gap is known exactly;
    inside a bin it stays within the gap at its start widened by the bin's counts. Only the bins
    that could hold a larger gap than the largest at any bin end are sorted and searched. Gaps
    are whole numbers (scaled by n * m) until the end, to stay exact.
    """
    n, m = len(u), len(v)
    low, high = min(u.min(), v.min()), max(u.max(), v.max())
    if low == high:
        return 0.0
    span = float(high) - float(low)  # inf for the widest floats, which one bin handles
    bins = 1 if not np.isfinite(span) else bins or max(1, (n + m) // 32)

    def bin_of(x: np.ndarray) -> np.ndarray:  # monotone in x, so each bin holds a range of values
        if bins == 1:
            return np.zeros(len(x), dtype=np.intp)
        # Divided, not multiplied by bins / span, which overflows for a span of subnormal numbers.
        scaled: np.ndarray = (x - low) / span * bins  # `low` and `span` come from pandas, unhinted
        return np.minimum(scaled.astype(np.intp), bins - 1)

    in_u, in_v = bin_of(u), bin_of(v)
    count_u, count_v = np.bincount(in_u, minlength=bins), np.bincount(in_v, minlength=bins)
    end_u, end_v = np.cumsum(count_u), np.cumsum(count_v)
    gap_at_end = end_u * m - end_v * n
    largest = int(np.max(np.abs(gap_at_end)))
    gap_at_start = gap_at_end - count_u * m + count_v * n
    reach = np.maximum(np.abs(gap_at_start + count_u * m), np.abs(gap_at_start - count_v * n))
    open_bins = reach > largest
    if not open_bins.any():
        return largest / (n * m)
    su, sv = np.sort(u[open_bins[in_u]]), np.sort(v[open_bins[in_v]])
    su_bins, sv_bins = bin_of(su), bin_of(sv)
    for own in (su, sv):
        if not len(own):
            continue
        at = own[np.append(own[:-1] != own[1:], True)]  # the last of each run of equal values
        b = bin_of(at)
        # Below x: all values in earlier bins, plus those up to x among its bin's sorted values.
        below_u = end_u[b] - count_u[b] + np.searchsorted(su, at, "right") - np.searchsorted(su_bins, b, "left")
        below_v = end_v[b] - count_v[b] + np.searchsorted(sv, at, "right") - np.searchsorted(sv_bins, b, "left")
        largest = max(largest, int(np.max(np.abs(below_u * m - below_v * n))))
    return largest / (n * m)


def feature_drift(
    name: str, reference: pd.Series, current: pd.Series, method: Method | None = None, threshold: float | None = None
) -> FeatureDrift:
    kind = kind_of(reference)
    if kind != kind_of(current) and current.notna().any():
        raise DriftInputError(f"feature {name!r} is {kind} in the reference but not in the current data")
    if kind == "numeric":
        ref, cur = _finite(reference), _finite(current)
        sizes = len(ref), len(cur)
    else:  # every categorical method compares counts, which leave missing values out
        counts = distinct_counts(reference, current)
        sizes = int(counts[0].sum()), int(counts[1].sum())
    if 0 in sizes:
        which = "reference" if sizes[0] == 0 else "current"
        raise DriftInputError(f"feature {name!r} has no values in the {which} data (all missing)")
    method = method or method_for(kind, sizes[0], few_values=kind == "numeric" and not _more_distinct_than(ref, 5))
    if method not in ALLOWED[kind]:
        raise DriftInputError(f"method {method!r} does not apply to {kind} feature {name!r}")
    threshold = THRESHOLDS[method] if threshold is None else threshold
    if method == "wasserstein":
        score = wasserstein_normed(ref, cur)
    elif method == "ks":
        score = ks_p_value(ref, cur)
    elif kind == "categorical":
        score = score_of_counts(method, *counts)
    else:  # Evidently's chi-square on a numeric feature counts each distinct value
        score = score_of_counts(
            method, *(distinct_counts(ref, cur) if method == "chisquare" else binned_counts(ref, cur))
        )
    return FeatureDrift(name, kind, method, score, threshold, drifted(method, score, threshold), *sizes)


def feature_drifts(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    methods: Mapping[str, Method | None],
    thresholds: Mapping[str, float] | None = None,
    workers: int | None = None,
) -> list[FeatureDrift]:
    """`feature_drift` of each named column, in `workers` threads (default: one per core): numpy
    sorts and counts without the GIL, so numeric columns run in parallel. Categorical columns hash
    Python strings under the GIL, so they start first, beside the numeric ones."""
    thresholds = thresholds or {}
    names = sorted(methods, key=lambda c: kind_of(reference[c]) == "numeric")

    def one(c: str) -> FeatureDrift:
        return feature_drift(c, reference[c], current[c], methods[c], thresholds.get(c))

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        done = dict(zip(names, pool.map(one, names), strict=True))
    return [done[c] for c in methods]


def dataset_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    method: Method | None = None,
    thresholds: Mapping[str, float] | None = None,
    drift_share: float = 0.5,
) -> DatasetDrift:
    """Drift of every reference column; the dataset drifts when the drifted share reaches drift_share.

    `method` applies to the features it fits (KS and Wasserstein to numeric ones); the others get
    their default method.
    """
    missing = [c for c in reference.columns if c not in current.columns]
    if missing:
        raise DriftInputError(f"current data lacks reference feature(s): {', '.join(map(str, missing))}")
    if reference.empty or current.empty:
        raise DriftInputError(f"{'reference' if reference.empty else 'current'} data has no rows")
    methods = {str(c): method if method in ALLOWED[kind_of(reference[c])] else None for c in reference.columns}
    features = feature_drifts(reference, current, methods, thresholds or {})
    share = sum(f.drifted for f in features) / len(features)
    return DatasetDrift(features, share, drift_share, share >= drift_share)
