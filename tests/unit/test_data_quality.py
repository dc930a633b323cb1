"""Data quality: missing shares against pandas, the three kinds of change, and their transitions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from vigil.data_quality import MAX_UNREFERENCED, count_unreferenced, quality_alert, quality_of, quality_transitions
from vigil.drift_windows import Profile, Window, profiles_of
from vigil.events import DataQualityRestored

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def frame(n: int, missing: dict[str, float], seed: int) -> pd.DataFrame:
    """Rows with the output signal always there and each feature missing at its own rate."""
    rng = np.random.default_rng(seed)
    data: dict[str, list] = {"output.label": list(rng.choice(["a", "b"], n))}
    for name, share in missing.items():
        values = rng.normal(1.0, 0.2, n)
        data[name] = [None if gone else float(v) for v, gone in zip(values, rng.uniform(size=n) < share, strict=True)]
    return pd.DataFrame(data)


def as_rows(df: pd.DataFrame) -> list[dict]:
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in df.to_dict("records")]


def windows_of(profiles: dict[str, Profile], df: pd.DataFrame) -> dict[str, Window]:
    out = {}
    for name, profile in profiles.items():
        window = profile.window()
        window.add_all(profile, [None if pd.isna(v) else v for v in df[name]] if name in df else [])
        out[name] = window
    return out


@settings(max_examples=40, deadline=None)
@given(st.floats(0, 0.6), st.floats(0, 1), st.integers(0, 10_000))
def test_missing_shares_equal_pandas(before: float, after: float, seed: int) -> None:
    reference, current = frame(300, {"lactate": before}, seed), frame(200, {"lactate": after}, seed + 1)
    profiles = {p.feature: p for p in profiles_of(as_rows(reference))}
    [verdict, *_] = [v for v in quality_of(profiles, windows_of(profiles, current), {}, 200, 0.1)
                     if v.feature == "lactate"]  # fmt: skip
    assert verdict.reference_missing == reference["lactate"].isna().mean()
    assert verdict.window_missing == current["lactate"].isna().mean()
    both = pd.concat([reference, current], keys=["ref", "cur"])
    table = pd.crosstab(both.index.get_level_values(0), both["lactate"].isna())
    table = table.reindex(index=["ref", "cur"], columns=[True, False], fill_value=0)
    p = stats.fisher_exact(table.to_numpy()).pvalue
    assert np.isclose(verdict.p_value, p)
    assert verdict.changed == (abs(verdict.window_missing - verdict.reference_missing) > 0.1 and p < 0.01)


def test_vanished_missing_rate_and_appeared_are_told_apart() -> None:
    reference = frame(400, {"lactate": 0.0, "spo2": 0.1, "age": 0.0}, 1)
    profiles = {p.feature: p for p in profiles_of(as_rows(reference))}
    current = frame(300, {"spo2": 0.6, "age": 0.02}, 2)  # lactate no longer sent at all
    verdicts = {v.feature: v for v in quality_of(profiles, windows_of(profiles, current), {"ward": 290}, 300, 0.1)}
    assert (verdicts["lactate"].kind, verdicts["lactate"].changed, verdicts["lactate"].window_missing) == (
        "vanished", True, 1.0)  # fmt: skip
    assert verdicts["spo2"].kind == "missing_rate" and verdicts["spo2"].changed
    assert not verdicts["age"].changed and not verdicts["output.label"].changed
    assert verdicts["ward"].kind == "appeared" and verdicts["ward"].changed
    assert verdicts["ward"].reference_missing == 1.0


def test_a_handful_of_values_of_a_new_feature_is_not_a_change() -> None:
    profiles = {p.feature: p for p in profiles_of(as_rows(frame(300, {}, 3)))}
    [ward] = [v for v in quality_of(profiles, {}, {"ward": 5}, 300, 0.1) if v.feature == "ward"]
    assert not ward.changed


def test_unreferenced_features_are_counted_up_to_the_cap() -> None:
    counts: dict[str, int] = {}
    for _ in range(2):
        count_unreferenced(counts, [f"f{i}" for i in range(MAX_UNREFERENCED + 5)])
    assert len(counts) == MAX_UNREFERENCED and set(counts.values()) == {2}


def test_a_change_stands_until_a_window_is_back_and_ids_are_stable() -> None:
    profiles = {p.feature: p for p in profiles_of(as_rows(frame(400, {"lactate": 0.0}, 4)))}
    reference_id = uuid.uuid4()

    def run(standing: dict[str, uuid.UUID], current: pd.DataFrame, window: str) -> list:
        verdicts = quality_of(profiles, windows_of(profiles, current), {}, len(current), 0.1, standing)
        start = T0 + timedelta(hours=int(window))
        return quality_transitions(standing, verdicts, "m", "1", reference_id, window, start, start, len(current), 0.1)

    standing: dict[str, uuid.UUID] = {}
    [changed] = run(standing, frame(300, {"lactate": 1.0}, 5), "1")
    assert changed.feature == "lactate" and changed.kind == "vanished" and standing == {"lactate": changed.event_id}
    assert run(standing, frame(300, {"lactate": 1.0}, 6), "2") == []  # still gone: nothing new
    [restored] = run(standing, frame(300, {"lactate": 0.0}, 7), "3")
    assert isinstance(restored, DataQualityRestored) and restored.changed_event_id == changed.event_id
    assert standing == {}
    again: dict[str, uuid.UUID] = {}
    assert run(again, frame(300, {"lactate": 1.0}, 5), "1")[0].event_id == changed.event_id  # a replay: the same id

    alert, resolved = quality_alert(changed), quality_alert(restored)
    assert alert.alert_name == "DataQualityChanged" and alert.labels == {"feature": "lactate", "kind": "vanished"}
    assert "no value in any event" in alert.summary and resolved.resolved
