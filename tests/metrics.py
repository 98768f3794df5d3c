"""Reading this process's Prometheus counters in tests: what grew between two moments."""

from __future__ import annotations

from prometheus_client import REGISTRY


def sample(name: str, **labels: str) -> float:
    """The current value of one sample of the process's default registry (0 when never set)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Growth:
    """Remembers samples at creation; `of(...)` says how much one grew since."""

    def __init__(self) -> None:
        self.before = {
            (s.name, frozenset(s.labels.items())): s.value for m in REGISTRY.collect() for s in m.samples
        }

    def of(self, name: str, **labels: str) -> float:
        return sample(name, **labels) - self.before.get((name, frozenset(labels.items())), 0.0)
