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
from typing import Literal

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
    method: Method
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

    def as_dict(self) -> dict:
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


def default_method(kind: Kind, reference: pd.Series) -> Method:
    return method_for(kind, len(reference), few_values=reference.nunique() <= 5)


def method_for(kind: Kind, reference_size: int, few_values: bool = False) -> Method:
    """Evidently's choice for a feature (its z-test for two categories is chi-square here)."""
    if reference_size <= 1000:
        return "chisquare" if kind == "categorical" or few_values else "ks"
    return "jensenshannon" if kind == "categorical" or few_values else "wasserstein"


def _present(series: pd.Series) -> pd.Series:
    if kind_of(series) == "numeric":
        values = series.to_numpy(dtype=float, na_value=np.nan)
        return series[np.isfinite(values)]
    return series.dropna()


def _shares(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Counts of every distinct value (seen in either sample) in reference and current, and shares."""
    codes, _ = pd.factorize(pd.concat([reference, current], ignore_index=True), sort=False)
    k = codes.max() + 1
    ref_counts = np.bincount(codes[: len(reference)], minlength=k)
    cur_counts = np.bincount(codes[len(reference) :], minlength=k)
    return ref_counts, cur_counts, ref_counts / len(reference), cur_counts / len(current)


def _fill_zeroes(percents: np.ndarray) -> np.ndarray:
    smallest = percents[percents != 0].min()
    out = percents.copy()
    out[out == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return out


def _more_than_20_values(series: pd.Series) -> bool:
    # A prefix with more than 20 distinct values settles it without hashing the whole column.
    return series.iloc[:2000].nunique() > 20 or series.nunique() > 20


def binned(reference: pd.Series, current: pd.Series, kind: Kind) -> tuple[np.ndarray, np.ndarray]:
    """Shares of reference and current in each bin (Evidently's get_binned_data)."""
    if kind == "numeric" and _more_than_20_values(reference):
        ref, cur = reference.to_numpy(dtype=float), current.to_numpy(dtype=float)
        edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
        # Sturges edges are uniform: given as count and range, np.histogram takes its fast path
        # (no sort) and puts values on an edge in the same bin as with the explicit edges.
        bins, span = len(edges) - 1, (edges[0], edges[-1])
        return np.histogram(ref, bins, span)[0] / len(ref), np.histogram(cur, bins, span)[0] / len(cur)
    return _shares(reference, current)[2:]


def psi_of_shares(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI over bin shares; batch and streaming mode both use it."""
    ref, cur = _fill_zeroes(reference), _fill_zeroes(current)
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def psi(reference: pd.Series, current: pd.Series, kind: Kind) -> float:
    return psi_of_shares(*binned(reference, current, kind))


def drifted(method: Method, score: float, threshold: float | None = None) -> bool:
    """The verdict: p-values drift when small (KS at or below, chi-square below), distances when large."""
    threshold = THRESHOLDS[method] if threshold is None else threshold
    if method == "ks":
        return score <= threshold
    if method == "chisquare":
        return score < threshold
    return score >= threshold


def jensen_shannon(reference: pd.Series, current: pd.Series, kind: Kind) -> float:
    ref, cur = binned(reference, current, kind)
    return float(distance.jensenshannon(ref, cur))


def wasserstein(u: np.ndarray, v: np.ndarray) -> float:
    """First Wasserstein distance: the area between the two empirical CDFs (scipy's algorithm with
    plain sorts, a linear merge and one search instead of argsorts; several times faster)."""
    u, v = np.sort(u), np.sort(v)
    merged = np.sort(np.concatenate([u, v]), kind="stable")  # timsort merges the two sorted runs
    below_u = np.searchsorted(u, merged[:-1], side="right")
    # At the last of a run of equal values, u's and v's counts add up to its position + 1; at the
    # other positions of the run the step width is 0, so v's count there does not matter.
    below_v = np.arange(1, len(merged)) - below_u
    return float(np.sum(np.abs(below_u / len(u) - below_v / len(v)) * np.diff(merged)))


def wasserstein_normed(reference: pd.Series, current: pd.Series) -> float:
    ref = reference.to_numpy(dtype=float)
    return wasserstein(ref, current.to_numpy(dtype=float)) / max(float(np.std(ref)), 0.001)


SCIPY_EXACT_LIMIT = 10_000  # ks_2samp computes an exact p-value up to this many values per sample


def ks_p_value(reference: pd.Series, current: pd.Series) -> float:
    """scipy's ks_2samp p-value. Beyond scipy's exact limit it uses the asymptotic distribution
    itself; there the statistic comes from each sorted sample's positions in the other, the same
    statistic without sorting the pooled sample."""
    ref, cur = reference.to_numpy(dtype=float), current.to_numpy(dtype=float)
    if max(len(ref), len(cur)) <= SCIPY_EXACT_LIMIT:
        return float(stats.ks_2samp(ref, cur).pvalue)
    d = ks_statistic(ref, cur)
    larger, smaller = max(len(ref), len(cur)), min(len(ref), len(cur))
    return float(np.clip(stats.kstwo.sf(d, np.round(larger * smaller / (larger + smaller))), 0, 1))


def ks_statistic(u: np.ndarray, v: np.ndarray) -> float:
    """The largest gap between the two empirical CDFs. The gap can only peak at a sample value; at
    the last of a run of equal values a sample's own CDF is its position + 1 over its size."""
    u, v = np.sort(u), np.sort(v)
    n, m = len(u), len(v)
    gaps = []
    for own, other in ((u, v), (v, u)):
        last = np.flatnonzero(np.append(own[:-1] != own[1:], True))  # index of each run's last value
        below = np.searchsorted(other, own[last], side="right")
        # In whole numbers (scaled by n * m) until the end, to stay exact.
        scaled = (last + 1) * (n * m // len(own)) - below * (n * m // len(other))
        gaps.append(int(np.max(np.abs(scaled))))
    return max(gaps) / (n * m)


def chi_square_p_value(reference: pd.Series, current: pd.Series) -> float:
    ref_counts, cur_counts, _, _ = _shares(reference, current)
    expected = ref_counts * (len(current) / len(reference))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(stats.chisquare(cur_counts, expected).pvalue)


def feature_drift(
    name: str, reference: pd.Series, current: pd.Series, method: Method | None = None, threshold: float | None = None
) -> FeatureDrift:
    kind = kind_of(reference)
    if kind != kind_of(current) and len(_present(current)):
        raise DriftInputError(f"feature {name!r} is {kind} in the reference but not in the current data")
    ref, cur = _present(reference), _present(current)
    if ref.empty or cur.empty:
        which = "reference" if ref.empty else "current"
        raise DriftInputError(f"feature {name!r} has no values in the {which} data (all missing)")
    method = method or default_method(kind, ref)
    if method not in ALLOWED[kind]:
        raise DriftInputError(f"method {method!r} does not apply to {kind} feature {name!r}")
    threshold = THRESHOLDS[method] if threshold is None else threshold
    score = {
        "psi": lambda: psi(ref, cur, kind),
        "jensenshannon": lambda: jensen_shannon(ref, cur, kind),
        "wasserstein": lambda: wasserstein_normed(ref, cur),
        "ks": lambda: ks_p_value(ref, cur),
        "chisquare": lambda: chi_square_p_value(ref, cur),
    }[method]()
    return FeatureDrift(name, kind, method, score, threshold, drifted(method, score, threshold), len(ref), len(cur))


def feature_drifts(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    methods: Mapping[str, Method | None],
    thresholds: Mapping[str, float] | None = None,
) -> list[FeatureDrift]:
    """`feature_drift` of each named column, in threads: numpy and scipy sort and search without
    the GIL, so numeric columns run in parallel on the machine's cores. Categorical columns hash
    Python strings under the GIL, so they start first, beside the numeric ones."""
    thresholds = thresholds or {}
    names = sorted(methods, key=lambda c: kind_of(reference[c]) == "numeric")

    def one(c: str) -> FeatureDrift:
        return feature_drift(c, reference[c], current[c], methods[c], thresholds.get(c))

    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
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
