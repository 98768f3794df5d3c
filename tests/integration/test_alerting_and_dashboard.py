"""deploy/prometheus/alerts.yml and deploy/grafana/dashboard.json: the rules are valid (promtool),
each critical alert fires on a failing series and stays quiet on a healthy one (promtool's rule
tests), and every metric the rules and the dashboard name is one the server exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families
from tests.conftest import ROOT
from tests.tools import ensure_command

from rezeption.domain.clock import FixedClock
from rezeption.ops.metrics import exposition
from rezeption.ops.metrics_db import database_facts
from rezeption.store.db import Database

RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboard.json"
METRIC = re.compile(r"\brezeption_[a-z_]+")
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    tool = ensure_command("promtool", "prometheus")
    return subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_accepts_the_rules() -> None:
    checked = promtool("check", "rules", str(RULES), cwd=RULES.parent)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(yaml.safe_load(RULES.read_text())['groups'][0]['rules']) + len(alerts())}" in (
        checked.stdout
    )


def test_each_critical_alert_fires_on_a_failing_series_and_stays_quiet_on_a_healthy_one() -> None:
    tested = promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    critical = {str(a["alert"]) for a in alerts() if a["labels"]["severity"] == "critical"}  # type: ignore[index]
    assert critical, "the rules have critical alerts"
    assert critical <= fires, f"critical alerts never shown firing: {critical - fires}"
    assert critical <= quiet, f"critical alerts never shown quiet on healthy data: {critical - quiet}"
    assert {str(a["labels"]["severity"]) for a in alerts()} == {"critical", "high", "medium"}  # type: ignore[index]


async def test_every_metric_the_rules_and_the_dashboard_name_is_exported(
    database: Database, clock: FixedClock
) -> None:
    text = exposition(await database_facts(database, clock.now())).decode()
    exported = {family.name for family in text_string_to_metric_families(text)}
    panels = json.loads(DASHBOARD.read_text())["panels"]
    expressions = [t["expr"] for p in panels for t in p.get("targets", [])]
    expressions += [str(r["expr"]) for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    named = {_family(name) for expr in expressions for name in METRIC.findall(expr)}
    assert len(named) >= 25, named
    assert named <= exported, f"named but not exported: {sorted(named - exported)}"
    assert len([p for p in panels if p["type"] != "row"]) >= 20


def _family(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_the_prometheus_config_of_the_deploy_example_is_valid(tmp_path: Path) -> None:
    config = (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text()
    (tmp_path / "alerts.yml").write_text(RULES.read_text())
    (tmp_path / "metrics-token").write_text("a-token")
    (tmp_path / "prometheus.yml").write_text(config.replace("/etc/prometheus/", f"{tmp_path}/"))
    checked = promtool("check", "config", str(tmp_path / "prometheus.yml"), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_compose_example_sets_only_settings_that_exist() -> None:
    from rezeption.settings import Settings

    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    assert {"postgres", "redis", "migrate", "web", "worker", "lb", "prometheus", "grafana"} <= set(
        compose["services"]
    )
    assert compose["services"]["web"]["deploy"]["replicas"] >= 2
    named = set(compose["x-rezeption"]["environment"])
    example = (ROOT / "deploy" / "production.env.example").read_text()
    named |= {line.lstrip("# ").split("=")[0] for line in example.splitlines() if "=" in line}
    fields = {f"REZEPTION_{name.upper()}" for name in Settings.model_fields}
    assert {n for n in named if n.startswith("REZEPTION_")} <= fields
    assert compose["x-rezeption"]["environment"]["REZEPTION_ENVIRONMENT"] == "production"
