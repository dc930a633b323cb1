"""The worker's Faust app with every agent registered on it: what `vigil worker` runs."""

from streams import drift, incidents, outcomes, oversight, readers, registry, sources  # noqa: F401  (importing registers the agents)
from streams.app import app

__all__ = ["app"]
