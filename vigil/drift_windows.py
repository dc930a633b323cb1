"""Streaming drift: fixed reference bins and mergeable windows, in memory bounded by the bin count.

Batch mode (vigil/drift.py) bins like Evidently: Sturges bins over reference and current together.
A stream cannot do that, since the current data is not known when the window opens. Streaming
mode instead fixes the bins when the reference profile is made:

- numeric features: bins at the reference's quantiles (20 by default), open at both ends, so
  every future value falls in a bin; a KLL sketch (datasketches) of the values, for KS and
  Wasserstein, whose error is bounded by the sketch's normalised rank error;
- categorical features: the reference's most frequent categories (50 by default), one bin for the
  reference's rarer categories and one for categories the reference never saw, counted, not
  dropped.

A window is counts per bin plus a sketch: `merge` adds counts and merges sketches, so windows of
partitions or shorter periods combine into the same window as computed in one go.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from datasketches import kll_floats_sketch
from scipy import stats
from scipy.spatial import distance

from vigil.drift import Method, psi_of_shares
from vigil.events import FeatureProfile

SKETCH_K = 200  # KLL accuracy: about 1.3 % normalised rank error
MAX_FEATURES = 64  # per model version: bounds the state and the metric labels one model can cause


@dataclass(frozen=True)
class Profile:
    """A feature's reference: bins fixed once, and the reference's own window over them."""

    feature: str
    kind: Literal["numeric", "categorical"]
    edges: tuple[float, ...] = ()  # numeric: interior bin edges
    categories: tuple[str, ...] = ()  # categorical: kept categories; then the rarer ones' bin, the unseen bin
    reference: Window | None = None
    std: float = 0.0  # numeric: the reference's standard deviation (ddof 0), for Wasserstein

    def bin_of(self, value: float | str) -> int:
        if self.kind == "numeric":
            return int(np.searchsorted(self.edges, float(value), side="right"))
        try:
            return self.categories.index(str(value))
        except ValueError:
            return len(self.categories) + 1  # unseen; the rarer-categories bin is filled by the reference only

    @property
    def bins(self) -> int:
        return len(self.edges) + 1 if self.kind == "numeric" else len(self.categories) + 2

    def window(self) -> Window:
        return Window(
            np.zeros(self.bins, dtype=np.int64), kll_floats_sketch(SKETCH_K) if self.kind == "numeric" else None
        )


@dataclass
class Window:
    counts: np.ndarray
    sketch: kll_floats_sketch | None = None
    missing: int = 0
    n: int = field(default=0)
    mismatched: int = 0  # a text value for a numeric feature: counted, never coerced

    def add(self, profile: Profile, value: float | str | None) -> None:
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            self.missing += 1
            return
        if profile.kind == "numeric" and isinstance(value, str):
            self.mismatched += 1
            return
        self.counts[profile.bin_of(value)] += 1
        self.n += 1
        if self.sketch is not None:
            self.sketch.update(float(value))

    def add_all(self, profile: Profile, values: list[float | str | None]) -> None:
        """`add` for many values: numeric ones binned and sketched in one numpy call."""
        if profile.kind != "numeric":
            for value in values:
                self.add(profile, value)
            return
        numbers = [float(v) for v in values if v is not None and not isinstance(v, str)]
        self.mismatched += sum(isinstance(v, str) for v in values)
        self.missing += sum(v is None for v in values)
        self.add_many(profile, np.asarray(numbers, dtype=float))

    def add_many(self, profile: Profile, values: np.ndarray) -> None:
        """A batch of numeric values at once (missing ones are NaN)."""
        finite = values[np.isfinite(values)]
        self.missing += len(values) - len(finite)
        self.counts += np.bincount(np.searchsorted(profile.edges, finite, side="right"), minlength=profile.bins)
        self.n += len(finite)
        if self.sketch is not None and len(finite):
            self.sketch.update(finite.astype(np.float32))

    def state_bytes(self) -> int:
        """What the window holds: its counts and its serialised sketch."""
        return self.counts.nbytes + (len(self.sketch.serialize()) if self.sketch is not None else 0)

    def merge(self, other: Window) -> Window:
        sketch = None
        if self.sketch is not None and other.sketch is not None:
            sketch = kll_floats_sketch(SKETCH_K)
            sketch.merge(self.sketch)
            sketch.merge(other.sketch)
        return Window(
            self.counts + other.counts,
            sketch,
            self.missing + other.missing,
            self.n + other.n,
            self.mismatched + other.mismatched,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts.tolist(),
            "n": self.n,
            "missing": self.missing,
            "mismatched": self.mismatched,
            "sketch": _b64(self.sketch),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Window:
        return cls(
            np.asarray(data["counts"], dtype=np.int64),
            _unb64(data.get("sketch")),
            data["missing"],
            data["n"],
            data.get("mismatched", 0),
        )

    def shares(self) -> np.ndarray:
        return self.counts / max(self.n, 1)


def _b64(sketch: kll_floats_sketch | None) -> str | None:
    return None if sketch is None else base64.b64encode(sketch.serialize()).decode()


def _unb64(text: str | None) -> kll_floats_sketch | None:
    return None if text is None else kll_floats_sketch.deserialize(base64.b64decode(text))


def to_record(profile: Profile) -> FeatureProfile:
    reference = profile.reference
    assert reference is not None
    return FeatureProfile(
        feature=profile.feature,
        kind=profile.kind,
        edges=list(profile.edges),
        categories=list(profile.categories),
        counts=reference.counts.tolist(),
        n=reference.n,
        missing=reference.missing,
        std=profile.std,
        sketch=_b64(reference.sketch),
    )


def from_record(record: FeatureProfile) -> Profile:
    reference = Window(np.asarray(record.counts, dtype=np.int64), _unb64(record.sketch), record.missing, record.n)
    return Profile(record.feature, record.kind, tuple(record.edges), tuple(record.categories), reference, record.std)


def profiles_of(
    rows: Iterable[Mapping[str, float | str | None]],
    bins: int = 20,
    max_categories: int = 50,
    max_features: int = MAX_FEATURES,
) -> list[Profile]:
    """Profiles of every feature with a value in `rows`: numeric when all its values are numbers.

    Beyond `max_features` (the most often present ones are kept), features are not profiled, which
    bounds the state and the metric labels a model can cause.
    """
    columns: dict[str, list[Any]] = {}
    for row in rows:
        for name, value in row.items():
            columns.setdefault(name, []).append(value)
    present = {name: [v for v in values if v is not None] for name, values in columns.items()}
    kept = sorted(sorted(present, key=lambda name: -len(present[name]))[:max_features])
    profiles = []
    for name in kept:
        values = present[name]
        if not values:
            continue
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        profile = numeric_profile(name, values, bins) if numeric else categorical_profile(name, values, max_categories)
        assert profile.reference is not None
        profile.reference.missing = len(columns[name]) - len(values)
        profiles.append(profile)
    return profiles


def numeric_profile(feature: str, values: Iterable[float], bins: int = 20) -> Profile:
    data = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if data.size == 0:
        raise ValueError(f"feature {feature!r}: the reference has no values")
    edges = tuple(np.unique(np.quantile(data, np.linspace(0, 1, bins + 1)[1:-1])))
    profile = Profile(feature, "numeric", edges=edges)
    return _with_reference(profile, data)


def categorical_profile(feature: str, values: Iterable[str | None], max_categories: int = 50) -> Profile:
    counts = Counter(str(v) for v in values if v is not None)
    if not counts:
        raise ValueError(f"feature {feature!r}: the reference has no values")
    kept = tuple(sorted(c for c, _ in counts.most_common(max_categories)))
    profile = Profile(feature, "categorical", categories=kept)
    window = profile.window()
    for category, n in counts.items():
        index = kept.index(category) if category in kept else len(kept)  # the rarer-categories bin
        window.counts[index] += n
        window.n += n
    return Profile(feature, "categorical", categories=kept, reference=window)


def _with_reference(profile: Profile, data: np.ndarray) -> Profile:
    window = profile.window()
    for value in data:
        window.add(profile, float(value))
    return Profile(profile.feature, profile.kind, profile.edges, profile.categories, window, float(np.std(data)))


LEVELS = np.linspace(0, 1, 1001)


def ks_statistic(profile: Profile, window: Window) -> tuple[float, float]:
    """KS statistic from the two sketches, and its error bound.

    The CDFs are compared at both sketches' quantiles (1,001 levels each): the estimate is within
    the normalised rank errors of the sketches that compacted (one that holds every value is
    exact) plus the 0.001 level spacing of the exact statistic.
    """
    assert profile.reference is not None, "numeric features carry a reference window"
    ref, cur = profile.reference.sketch, window.sketch
    assert ref is not None and cur is not None, "numeric features carry sketches"
    points = np.unique(np.concatenate([ref.get_quantiles(LEVELS), cur.get_quantiles(LEVELS)]))
    d = float(np.max(np.abs(np.array(ref.get_cdf(points)[:-1]) - np.array(cur.get_cdf(points)[:-1]))))
    return d, _rank_error(ref) + _rank_error(cur) + 0.001


def _rank_error(sketch: kll_floats_sketch) -> float:
    return sketch.normalized_rank_error(False) if sketch.is_estimation_mode() else 0.0


def wasserstein_estimate(profile: Profile, window: Window) -> tuple[float, float]:
    """Normalised Wasserstein distance from the two sketches, and its error bound.

    The area between the sketches' CDFs over both sketches' quantile points: each CDF is within its
    normalised rank error (none if it holds every value), and the points are 0.001 apart in rank,
    so the estimate is within (error_ref + error_cur + 0.002) × (max - min) / std of the exact
    distance.
    """
    assert profile.reference is not None, "numeric features carry a reference window"
    ref, cur = profile.reference.sketch, window.sketch
    assert ref is not None and cur is not None, "numeric features carry sketches"
    points = np.unique(np.concatenate([ref.get_quantiles(LEVELS), cur.get_quantiles(LEVELS)]))
    gap = np.abs(np.array(ref.get_cdf(points)[:-1]) - np.array(cur.get_cdf(points)[:-1]))
    norm = max(profile.std, 0.001)
    value = float(np.sum(gap[:-1] * np.diff(points))) / norm
    span = points[-1] - points[0]
    bound = (_rank_error(ref) + _rank_error(cur) + 0.002) * span / norm
    return value, float(bound)


def score(profile: Profile, window: Window, method: Method) -> float:
    """The drift score of a window against the profile's reference."""
    reference = profile.reference
    assert reference is not None
    if window.n == 0:
        raise ValueError(f"feature {profile.feature!r}: the window is empty")
    if method == "psi":
        return psi_of_shares(reference.shares(), window.shares())
    if method == "jensenshannon":
        return float(distance.jensenshannon(reference.shares(), window.shares()))
    if method == "chisquare":
        expected = reference.counts * (window.n / reference.n)
        seen = (expected > 0) | (window.counts > 0)  # as in batch mode: only bins seen in either
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(stats.chisquare(window.counts[seen], expected[seen]).pvalue)
    if profile.kind != "numeric" or reference.sketch is None or window.sketch is None:
        raise ValueError(f"method {method!r} needs a numeric feature; {profile.feature!r} is {profile.kind}")
    if method == "ks":
        # The sketches' own error must not read as drift: on large windows a gap of their rank
        # error is "significant". So the p-value is of the smallest statistic the sketches allow.
        d, bound = ks_statistic(profile, window)
        effective = reference.n * window.n / (reference.n + window.n)
        return float(stats.kstwo.sf(max(0.0, d - bound), max(1, round(effective))))  # scipy's asymptotic p
    if method == "wasserstein":
        return wasserstein_estimate(profile, window)[0]
    raise ValueError(f"unknown method {method!r}")
