"""The cost of an estimate (CBPE, vigil/performance_estimate.py) per chunk, against counting the
same chunk's realised confusion matrix with scikit-learn (what a chunk costs once its outcomes are
known), and the calibration fitted once per version.

    python -m benchmarks.performance_estimate [--reference 1000]

Median of 5 runs each, same process, same data. Ratio = the estimate's time / scikit-learn's.
"""

from __future__ import annotations

import numpy as np
import typer
from sklearn.metrics import confusion_matrix

from benchmarks.outcome_join import median_time
from benchmarks.throughput import report_table
from vigil.performance_estimate import calibrate, estimate


def main(reference: int = typer.Option(1000, help="outcomes the calibration is fitted on")) -> None:
    rng = np.random.default_rng(1)
    p = rng.beta(2, 3, reference)
    fit = median_time(lambda: calibrate(p, rng.random(reference) < p), 5)
    calibration = calibrate(p, rng.random(reference) < p)
    rows = [["calibration (isotonic + 5-fold held-out ECE)", f"{reference:,} outcomes", f"{fit * 1e3:.1f} ms", "", ""]]
    for size in (500, 5000):
        scores = rng.beta(2, 3, size)
        said, truth = scores >= 0.45, rng.random(size) < scores
        ours = median_time(lambda: estimate(calibration(scores), said, draws=1000), 5)  # noqa: B023
        counted = median_time(lambda: confusion_matrix(truth, said), 5)  # noqa: B023
        rows.append(["estimate (1,000 bootstrap draws)", f"{size:,} outputs", f"{ours * 1e3:.1f} ms",
                     f"{counted * 1e3:.2f} ms", f"{ours / counted:.0f}x"])  # fmt: skip
    report_table(
        "performance_estimate",
        "Estimated performance (CBPE): cost per chunk",
        "One run: `python -m benchmarks.performance_estimate`. Median of 5 runs each, same process. "
        "Ratio = the estimate's time / scikit-learn's `confusion_matrix` of the same chunk, outcomes known.",
        ["step", "size", "Vigil", "scikit-learn confusion_matrix", "ratio"],
        rows,
        note="Bound by the bootstrap: 1,000 draws of the chunk's truths (a draws × outputs array), so the cost grows "
        "with the chunk; the expected matrix itself is four sums. A window of a busy model (10 chunks of 500) costs "
        "well under a second per version and label, computed on request from the store.",
    )


if __name__ == "__main__":
    typer.run(main)
