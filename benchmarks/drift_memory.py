"""Streaming drift memory: a window's state and the process's peak memory at 1M and 5M events.

    python -m benchmarks.drift_memory

Each size runs in a fresh process (peak RSS is per process); the ratio 5M / 1M should stay near 1.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import numpy as np

from benchmarks.drift import _write_section
from vigil.drift_windows import numeric_profile

BATCH = 100_000


def measure(events: int) -> dict[str, int]:
    rng = np.random.default_rng(5)
    profile = numeric_profile("x", rng.normal(0, 1, 10_000))
    window = profile.window()
    for _ in range(events // BATCH):
        window.add_many(profile, rng.normal(0.1, 1, BATCH))  # a stream arrives in batches, never whole
    return {
        "events": window.n,
        "state_bytes": window.state_bytes(),
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def main() -> None:
    results = []
    for events in (1_000_000, 5_000_000):
        code = f"import json; from benchmarks.drift_memory import measure; print(json.dumps(measure({events})))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout))
    small, large = results
    lines = [
        "### Streaming drift memory: one numeric feature, 20 reference bins, KLL sketch (k=200)",
        "",
        "Each size in a fresh process; events arrive in batches of 100,000.",
        "",
        "| events | window state | process peak RSS |",
        "|---|---|---|",
        *[f"| {r['events']:,} | {r['state_bytes']:,} B | {r['peak_rss_kib'] / 1024:.1f} MiB |" for r in results],
        f"| **5M / 1M** | **{large['state_bytes'] / small['state_bytes']:.3f}** | "
        f"**{large['peak_rss_kib'] / small['peak_rss_kib']:.3f}** |",
    ]
    print("\n".join(lines))
    _write_section("drift_memory", "\n".join(lines))


if __name__ == "__main__":
    main()
