"""Drift benchmark: Vigil's batch mode against Evidently's DataDriftPreset, same data, same methods.

    python -m benchmarks.drift [--rows 200000] [--repeat 3]

Both compute every feature's score; the ratio is Evidently's median time over Vigil's. The scores
are compared too, so the speed is for the same answer. Results go to BENCHMARKS.md.
"""

from __future__ import annotations

import functools
import os
import re
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import typer
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

from vigil.drift import feature_drifts

ROOT = Path(__file__).resolve().parent.parent


def data(rows: int, seed: int = 11) -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str]]:
    rng = np.random.default_rng(seed)
    numeric = [f"num_{i}" for i in range(10)]
    categorical = [f"cat_{i}" for i in range(5)]
    frames = []
    for shift in (0.0, 0.2):
        columns = {c: rng.normal(shift * i, 1 + shift, rows) for i, c in enumerate(numeric)}
        for i, c in enumerate(categorical):
            levels = [f"v{j}" for j in range(4 + 3 * i)]
            weights = rng.dirichlet(np.ones(len(levels)) * (5 if shift == 0 else 2))
            columns[c] = rng.choice(levels, rows, p=weights)
        frames.append(pd.DataFrame(columns))
    return frames[0], frames[1], numeric, categorical


def vigil_scores(reference, current, numeric, categorical, num_method, cat_method, workers) -> dict[str, float]:
    methods = {c: num_method if c in numeric else cat_method for c in [*numeric, *categorical]}
    return {f.name: f.score for f in feature_drifts(reference, current, methods, workers=workers)}


def evidently_scores(reference, current, numeric, categorical, num_method, cat_method) -> dict[str, float]:
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    snapshot = Report([DataDriftPreset(num_method=num_method, cat_method=cat_method)]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    out = {}
    for metric in snapshot.dict()["metrics"]:
        if found := re.match(r"ValueDrift\(column=(\w+),", metric["metric_name"]):
            out[found.group(1)] = float(metric["value"])
    return out


def timed(fn, repeat: int) -> tuple[float, dict[str, float]]:
    times, result = [], {}
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(rows: int = 200_000, repeat: int = 3, write: bool = True) -> None:
    reference, current, numeric, categorical = data(rows)
    cores = os.cpu_count() or 1
    lines = [
        f"### Batch drift: {rows:,} rows × {len(numeric)} numeric + {len(categorical)} categorical columns",
        "",
        "Median of " + str(repeat) + " runs each, same process, same data. Ratio = Evidently time / Vigil time. "
        "Evidently runs the columns one by one; Vigil once in one thread, and once in a thread per core "
        f"({cores} on this machine).",
        "",
        f"| methods (numeric / categorical) | Evidently 0.7.23 DataDriftPreset | Vigil, 1 thread | ratio | "
        f"Vigil, {cores} threads | ratio | max score difference |",
        "|---|---|---|---|---|---|---|",
    ]
    for num_method, cat_method in (("psi", "psi"), ("wasserstein", "jensenshannon"), ("ks", "chisquare")):
        args = (reference, current, numeric, categorical, num_method, cat_method)
        theirs_t, theirs = timed(functools.partial(evidently_scores, *args), repeat)
        row = f"| {num_method} / {cat_method} | {theirs_t:.3f} s |"
        diff = 0.0
        for workers in (1, cores):
            ours_t, ours = timed(functools.partial(vigil_scores, *args, workers=workers), repeat)
            diff = max(diff, *(abs(ours[c] - theirs[c]) for c in theirs))
            row += f" {ours_t:.3f} s | **{theirs_t / ours_t:.1f}x** |"
        lines.append(f"{row} {diff:.1e} |")
        print(lines[-1])
    if write:
        _write_section("drift", "\n".join(lines))


def _write_section(name: str, body: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    text = (
        path.read_text()
        if path.exists()
        else "# Benchmarks\n\nWritten by `benchmarks/`; each section by its own script.\n"
    )
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{start}\n{body}\n{end}"
    if start in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    typer.run(main)
