"""The floors of shared/DESIGN.md (Layout): the dialog engine and the booking use cases never import
the store or an adapter; the Retell adapter reaches calls, memory, idempotent replies and traces
through `booking.calls`, not the store (one exception: classifying a database error as "away")."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "rezeption"
ALLOWED = {("retell/failures.py", "rezeption.store.db")}  # is_unavailable: which errors mean "database away"


def imports(folder: str) -> list[tuple[str, str]]:
    found = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.append((str(path.relative_to(PACKAGE)), node.module))
            elif isinstance(node, ast.Import):
                found += [(str(path.relative_to(PACKAGE)), alias.name) for alias in node.names]
    return found


def test_the_dialog_engine_imports_neither_the_store_nor_an_adapter() -> None:
    bad = [(f, m) for f, m in imports("dialog") if m.startswith(("rezeption.store", "rezeption.retell"))]
    assert bad == []


def test_the_booking_use_cases_do_not_import_the_store() -> None:
    assert [(f, m) for f, m in imports("booking") if m.startswith("rezeption.store")] == []


def test_the_retell_adapter_reaches_calls_through_the_service() -> None:
    bad = [(f, m) for f, m in imports("retell") if m.startswith("rezeption.store") and (f, m) not in ALLOWED]
    assert bad == []


def test_ops_is_reached_from_below_only_through_its_observability_leaves() -> None:
    """Every floor records metrics and logs with the call's id (DESIGN: observability is part of the
    feature), so the floors below ops may import `ops.metrics`, `ops.tracing` and `ops.logging`, and
    those import nothing of ours but each other: no way up through them."""
    leaves = {"rezeption.ops.metrics", "rezeption.ops.tracing", "rezeption.ops.logging"}
    below = ("domain", "language", "booking", "calendars", "store", "dialog", "retell")
    bad = [
        (f, m) for folder in below for f, m in imports(folder)
        if m.startswith("rezeption.ops") and m not in leaves and not f.startswith("store/migrations")
    ]  # fmt: skip
    assert bad == []
    for leaf in ("ops/metrics.py", "ops/tracing.py", "ops/logging.py"):
        ours = {m for f, m in imports("ops") if f == leaf and m.startswith("rezeption")}
        assert ours <= leaves, (leaf, ours)
    assert [(f, m) for f, m in imports("domain") if m.startswith("rezeption.ops")] == []
