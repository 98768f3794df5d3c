"""Figures one benchmark takes from another's results file (never invented: None when not measured)."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def floor_ratio() -> tuple[float | None, str]:
    """Our booking throughput / the bare FastAPI + SQLAlchemy floor's, as bench/capacity.py last
    measured it (same database, same server processes, same closed-loop client), and where from."""
    path = RESULTS / "capacity.json"
    if not path.exists():
        return None, "not measured: run bench/capacity.py"
    report = json.loads(path.read_text(encoding="utf-8"))
    return report.get("floor_ratio"), f"bench/results/capacity.json ({report.get('measured_at', '?')})"
