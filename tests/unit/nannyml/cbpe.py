"""Run by tests/unit/test_performance_estimate.py in NannyML's own virtualenv (NannyML 0.13 pulls in
more than Vigil's environment should hold): NannyML's CBPE on the reference and analysis CSV files
given, its estimates per chunk as JSON on stdout."""

import json
import sys
import warnings

import nannyml
import pandas as pd

reference, analysis, chunk_size = pd.read_csv(sys.argv[1]), pd.read_csv(sys.argv[2]), int(sys.argv[3])
warnings.simplefilter("ignore")  # "the resulting number of chunks is too low", for small tests
estimator = nannyml.CBPE(
    y_pred_proba="score",
    y_pred="predicted",
    y_true="truth",
    problem_type="classification_binary",
    metrics=["recall", "specificity", "precision", "confusion_matrix"],
    chunk_size=chunk_size,
)
estimator.fit(reference)
found = estimator.estimate(analysis).filter(period="analysis").to_df()
names = {
    "recall": "sensitivity",
    "specificity": "specificity",
    "precision": "ppv",
    "true_positive": "tp",
    "false_positive": "fp",
    "false_negative": "fn",
    "true_negative": "tn",
}
chunks = [{ours: float(row[(theirs, "value")]) for theirs, ours in names.items()} for _, row in found.iterrows()]
print(json.dumps({"version": nannyml.__version__, "calibrated": bool(estimator.needs_calibration), "chunks": chunks}))
