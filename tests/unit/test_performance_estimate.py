"""Performance estimated before the outcomes (vigil.performance_estimate): equal to NannyML's CBPE
run on the same data, intervals that cover the realised value at their stated rate for a
perfectly calibrated model, a calibration too poor refused with the reason, and the batch command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from services.cli import app as vigil
from vigil.performance_estimate import (
    ESTIMATED,
    NotEstimable,
    Output,
    calibrate,
    chunks,
    estimate,
    estimate_alert,
    estimate_files,
    estimated_event,
    file_calibration,
    realised,
    trusted,
    version_estimates,
)

NANNYML = "nannyml==0.13.1"
SCRIPT = Path(__file__).parent / "nannyml" / "cbpe.py"


def hospital(n: int, shift: float, rng: np.random.Generator) -> pd.DataFrame:
    """A screening model whose scores rank well but are not probabilities (the square root of the
    true one), on a population whose inputs move by `shift` (covariate shift, what CBPE assumes)."""
    x = rng.normal(shift, 1, n)
    p = 1 / (1 + np.exp(-(1.5 * x - 0.3)))
    truth = rng.random(n) < p
    score = np.sqrt(p)
    return pd.DataFrame({"score": score, "predicted": (score >= 0.6).astype(int), "truth": truth.astype(int)})


@pytest.fixture(scope="session")
def nannyml_python() -> Path:
    """NannyML in a virtualenv of its own, made once per machine (about a minute)."""
    home = Path(os.environ.get("VIGIL_HOME", Path.home() / ".cache" / "vigil")) / "venvs" / NANNYML
    python = home / "bin" / "python"
    if not (home / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", NANNYML, "statsmodels"], check=True)
        (home / ".installed").touch()
    return python


def test_estimates_equal_nannymls_cbpe_chunk_by_chunk(nannyml_python: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    reference, analysis = hospital(4000, 0.0, rng), hospital(4000, 0.6, rng)
    reference.to_csv(tmp_path / "reference.csv", index=False)
    analysis.to_csv(tmp_path / "analysis.csv", index=False)
    files = [str(tmp_path / "reference.csv"), str(tmp_path / "analysis.csv")]
    run = subprocess.run([str(nannyml_python), str(SCRIPT), *files, "1000"], capture_output=True, text=True, check=True)
    theirs = json.loads(run.stdout)
    assert theirs["version"] == "0.13.1" and theirs["calibrated"]  # NannyML calibrates these scores too

    calibration = calibrate(reference["score"], reference["truth"])
    ours = [estimate(calibration(analysis["score"][part]), analysis["predicted"][part] == 1)
            for part in chunks(len(analysis), 1000)]  # fmt: skip
    assert len(ours) == len(theirs["chunks"]) == 4
    # The same isotonic fit and the same sums: equal but for the order of floating-point additions.
    for mine, nannyml in zip(ours, theirs["chunks"], strict=True):
        for metric in ("sensitivity", "specificity", "ppv"):
            assert mine.metrics[metric].value == pytest.approx(nannyml[metric], abs=1e-9)  # type: ignore[union-attr]
        assert (mine.tp, mine.fp, mine.fn, mine.tn) == pytest.approx(
            (nannyml["tp"], nannyml["fp"], nannyml["fn"], nannyml["tn"]), abs=1e-6
        )
        npv = nannyml["tn"] / (nannyml["tn"] + nannyml["fn"])  # NannyML has no NPV: from its confusion matrix
        assert mine.metrics["npv"].value == pytest.approx(npv, abs=1e-9)  # type: ignore[union-attr]


def test_a_perfectly_calibrated_model_is_covered_at_about_the_stated_rate() -> None:
    covered = dict.fromkeys(ESTIMATED, 0)
    seeds = 200
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        p_ref, p_now = rng.beta(2, 3, 5000), rng.beta(2.5, 3, 400)  # scores are the truth's probabilities
        calibration = calibrate(p_ref, rng.random(5000) < p_ref)
        truth, said = rng.random(400) < p_now, p_now >= 0.5
        found = estimate(calibration(p_now), said, level=0.95, draws=1000, seed=seed)
        for metric, value in realised(truth.tolist(), said.tolist()).items():
            bound = found.metrics[metric]
            assert bound is not None and value is not None
            covered[metric] += bound.low <= value <= bound.high
    # 95 % stated; over 200 seeds a binomial share lies in 0.91–0.98 with probability > 0.99. The
    # calibration is fitted on a finite reference, which the interval leaves out: a little below.
    for metric, n in covered.items():
        assert 0.90 <= n / seeds <= 0.985, f"{metric}: {n} of {seeds} covered"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=10, max_size=200),
    st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=1, max_size=200),
)
def test_the_expected_matrix_holds_every_output_and_the_map_only_rises(
    reference: list[tuple[float, bool]], analysis: list[tuple[float, bool]]
) -> None:
    scores, truths = zip(*reference, strict=True)
    try:
        calibration = calibrate(scores, truths)
    except NotEstimable:
        assert len(set(truths)) < 2
        return
    assert all(a <= b for a, b in zip(calibration.probabilities, calibration.probabilities[1:], strict=False))
    now = np.array([s for s, _ in analysis])
    found = estimate(calibration(now), [said for _, said in analysis], draws=50)
    assert found.tp + found.fp + found.fn + found.tn == pytest.approx(len(analysis))
    for bound in found.metrics.values():
        assert bound is None or (0 <= bound.low <= bound.high <= 1 and 0 <= bound.value <= 1)


def test_a_calibration_that_does_not_hold_out_of_sample_gives_no_estimate_and_says_why() -> None:
    rng = np.random.default_rng(5)
    scores = rng.random(40)  # scores that say nothing, on a small reference: isotonic fits the noise
    calibration = calibrate(scores, rng.random(40) < 0.4)
    with pytest.raises(NotEstimable, match=r"expected calibration error on held-out reference outputs is 0\.\d+"):
        trusted(calibration, 0.05)
    with pytest.raises(NotEstimable, match="outcomes of both kinds"):
        calibrate([0.2, 0.4, 0.9] * 5, [True] * 15)


def test_the_batch_command_estimates_per_chunk_and_subgroup_and_compares_the_realised(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    reference, analysis = hospital(3000, 0.0, rng), hospital(1000, 0.4, rng)
    for frame in (reference, analysis):
        frame["label"] = np.where(frame["predicted"] == 1, "malignant", "benign")
        frame["truth"] = np.where(frame["truth"] == 1, "malignant", "benign")
        frame["site"] = np.where(np.arange(len(frame)) % 3 == 0, "north", "south")
    reference.to_csv(tmp_path / "r.csv", index=False)
    analysis.to_csv(tmp_path / "a.csv", index=False)
    args = ["performance", "estimate", "--reference", str(tmp_path / "r.csv"), "--analysis", str(tmp_path / "a.csv"),
            "--positive", "malignant", "--by", "site", "--chunk", "500", "--json"]  # fmt: skip
    run = CliRunner().invoke(vigil, args)
    assert run.exit_code == 0, run.output
    found = json.loads(run.output)
    assert [(r["subgroup"], r["chunk"]) for r in found["rows"]] == [
        ({}, 0), ({}, 1), ({"site": "north"}, 0), ({"site": "south"}, 0), ({"site": "south"}, 1)
    ]  # fmt: skip
    direct = estimate_files(reference, analysis, "malignant", ["site"], 500)
    first = direct.rows[0].estimate
    assert found["rows"][0]["estimate"]["fp"] == pytest.approx(first.fp, rel=1e-9)
    assert found["rows"][0]["estimate"]["metrics"]["npv"]["low"] == pytest.approx(first.metrics["npv"].low)  # type: ignore[union-attr]
    assert (
        found["rows"][0]["realised"]["sensitivity"]
        == realised(
            (analysis["truth"][:500] == "malignant").tolist(), (analysis["label"][:500] == "malignant").tolist()
        )["sensitivity"]
    )
    table = CliRunner().invoke(vigil, args[:-1])
    assert table.exit_code == 0 and "ESTIMATED" in table.output
    analysis.drop(columns="score").to_csv(tmp_path / "scoreless.csv", index=False)
    refused = CliRunner().invoke(vigil, [*args[:5], str(tmp_path / "scoreless.csv"), *args[6:]])
    assert refused.exit_code == 2 and "no estimate: the analysis file has no column 'score'" in refused.output


def test_the_estimate_event_is_labelled_says_how_far_off_it_was_and_alerts_only_on_crossing() -> None:
    rng = np.random.default_rng(8)
    p = rng.beta(2, 3, 2000)
    truth, said = rng.random(2000) < p, p >= 0.45
    known = [bool(t) if i < 1500 else None for i, t in enumerate(truth)]
    outputs = [Output(float(s), bool(d), t) for s, d, t in zip(p, said, known, strict=True)]
    [found] = version_estimates("2.0", "malignant", outputs, 1000, 500, 0.05, 0.95)
    now = datetime(2026, 6, 1, tzinfo=UTC)
    event = estimated_event("mammo", found, "sensitivity", 0.95, 30, now)
    assert event is not None and event.estimated and event.outputs == 500 and event.below_threshold
    assert event.summary.startswith("ESTIMATED (not realised) sensitivity")
    real = realised(truth[1000:1500].tolist(), said[1000:1500].tolist())["sensitivity"]
    assert real is not None and event.backtest_outputs == 500
    assert event.backtest_error["sensitivity"] == pytest.approx(found.backtest[0].error["sensitivity"])
    again = estimated_event("mammo", found, "sensitivity", 0.95, 30, now + timedelta(hours=1))
    assert again is not None and again.event_id == event.event_id  # the same estimate later: one event
    raised = estimate_alert(event, was_below=False)
    assert raised is not None and raised.severity == "warning" and not raised.resolved
    assert raised.labels["estimated"] == "true" and "ESTIMATED" in raised.summary
    assert estimate_alert(event, was_below=True) is None  # still below: nothing new
    fine = estimated_event("mammo", found, "sensitivity", 0.5, 30, now)
    assert fine is not None and not fine.below_threshold
    ended = estimate_alert(fine, was_below=True)
    assert ended is not None and ended.resolved


def test_subgroups_share_the_versions_calibration_and_split_its_pending_and_later_outputs() -> None:
    rng = np.random.default_rng(9)
    p = rng.beta(2, 3, 1600)
    truth, said = rng.random(1600) < p, p >= 0.45
    sites = np.where(np.arange(1600) % 4 == 0, "rural", "city")
    outputs = [Output(float(s), bool(d), bool(t) if i < 1300 else None, (("site", str(site)),))
               for i, (s, d, t, site) in enumerate(zip(p, said, truth, sites, strict=True))]  # fmt: skip
    everyone, city, rural = version_estimates("2.0", "malignant", outputs, 1000, 500, 0.05, 0.95, ["site"])
    assert (everyone.subgroup, city.subgroup, rural.subgroup) == ({}, {"site": "city"}, {"site": "rural"})
    assert city.calibration_ece == rural.calibration_ece == everyone.calibration_ece
    assert city.overall and rural.overall and everyone.overall
    assert city.overall.n + rural.overall.n == everyone.overall.n == 300
    assert sum(t.estimate.n for t in city.backtest) + sum(t.estimate.n for t in rural.backtest) == 300
    calibration = calibrate(p[:1000], truth[:1000])
    mask = sites[1300:] == "rural"
    mine = estimate(calibration(p[1300:][mask]), said[1300:][mask])
    assert rural.overall.metrics["sensitivity"] == mine.metrics["sensitivity"]


def test_an_uploaded_calibration_keeps_only_the_points_that_matter_and_makes_every_known_output_a_backtest() -> None:
    from sklearn.isotonic import IsotonicRegression

    from vigil.events import CalibrationReferenceSet

    rng = np.random.default_rng(12)
    frame = hospital(3000, 0.0, rng)
    fit = file_calibration(frame.assign(truth=np.where(frame.truth == 1, "malignant", "benign")), "malignant")
    iso = IsotonicRegression(out_of_bounds="clip").fit(frame.score, frame.truth)
    probe = np.linspace(-0.1, 1.1, 2001)
    assert np.allclose(fit(probe), iso.predict(probe), atol=1e-12)
    assert len(fit.scores) < frame.score.nunique() / 10  # a run's inner points are left out

    uploaded = CalibrationReferenceSet(
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), model_id="m", model_version="2.0", label="malignant",
        source_name="study.csv", file_sha256="0" * 64, scores=fit.scores, probabilities=fit.probabilities,
        reference_size=fit.reference_size, calibration_ece=fit.ece,
    )  # fmt: skip
    later = hospital(700, 0.5, rng)
    outputs = [Output(s, bool(d), bool(t) if i < 200 else None)
               for i, (s, d, t) in enumerate(zip(later.score, later.predicted, later.truth, strict=True))]  # fmt: skip
    [found] = version_estimates("2.0", "malignant", outputs, 1000, 500, 0.05, 0.95, uploaded=uploaded)
    assert found.reference_size == 3000 and "study.csv" in found.reference and found.calibration_ece == fit.ece
    assert found.overall and found.overall.n == 500 and sum(t.estimate.n for t in found.backtest) == 200
    pending = iso.predict(later.score[200:])
    said = later.predicted[200:].to_numpy() == 1
    sensitivity = found.overall.metrics["sensitivity"]
    assert sensitivity and sensitivity.value == pytest.approx(pending[said].sum() / pending.sum(), abs=1e-9)
    with pytest.raises(NotEstimable, match="no column 'truth'"):
        file_calibration(frame.drop(columns="truth"), "malignant")


def test_intersections_of_attributes_up_to_the_depth_are_estimated_like_everyone() -> None:
    rng = np.random.default_rng(21)
    n = 2000
    frame = pd.DataFrame({"p": rng.beta(2, 3, n), "site": rng.choice(["city", "rural"], n),
                          "sex": rng.choice(["F", "M"], n)})  # fmt: skip
    frame["truth"], frame["said"] = rng.random(n) < frame.p, frame.p >= 0.45
    outputs = [Output(r.p, r.said, bool(r.truth) if i < 1000 else None, (("sex", r.sex), ("site", r.site)))
               for i, r in enumerate(frame.itertuples())]  # fmt: skip
    rows = version_estimates("2.0", "malignant", outputs, 1000, 500, 0.05, 0.95, ["sex", "site"], depth=2)
    shown = [tuple(sorted(r.subgroup.items())) for r in rows]
    assert shown[0] == () and len(shown) == 1 + 4 + 4  # everyone, each value of each, each pair of values
    calibration = calibrate(frame.p[:1000], frame.truth[:1000])
    pending = frame.iloc[1000:]
    for (sex, site), part in pending.groupby(["sex", "site"]):
        [row] = [r for r in rows if r.subgroup == {"sex": sex, "site": site}]
        mine = estimate(calibration(part.p), part.said.to_numpy())
        assert row.overall and row.overall.n == len(part)
        assert row.overall.metrics["sensitivity"] == mine.metrics["sensitivity"]
    assert len(version_estimates("2.0", "malignant", outputs, 1000, 500, 0.05, 0.95, ["sex", "site"])) == 5
    assert len(version_estimates("2.0", "malignant", outputs, 1000, 500, 0.05, 0.95, ["sex", "site"], depth=0)) == 1
