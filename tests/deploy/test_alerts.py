"""deploy/alerts.yaml: promtool accepts it and its unit tests pass, every metric it reads is exported, and the
runbook explains every alert."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client import generate_latest

from shared import metrics
from tests.deploy.manifests import DEPLOY
from tests.ops.conftest import Suite, exported_names

RULES = yaml.safe_load((DEPLOY / "alerts.yaml").read_text())
ALERTS = [rule for group in RULES["groups"] for rule in group["rules"]]
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def _base(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def test_promtool_accepts_the_rules() -> None:
    completed = subprocess.run(
        [PROMTOOL, "check", "rules", str(DEPLOY / "alerts.yaml")], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in completed.stdout


def test_the_alerts_fire_when_they_should_and_not_otherwise() -> None:
    completed = subprocess.run(
        [PROMTOOL, "test", "rules", str(DEPLOY / "alerts.test.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    tested = yaml.safe_load((DEPLOY / "alerts.test.yaml").read_text())
    covered = {case["alertname"] for test in tested["tests"] for case in test["alert_rule_test"]}
    assert covered == {a["alert"] for a in ALERTS}, "every alert has a unit test"


def test_every_alert_says_how_bad_and_what_it_means() -> None:
    for alert in ALERTS:
        assert alert["labels"]["severity"] in {"warning", "critical"}, alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]
        assert alert["annotations"]["description"], alert["alert"]
        assert alert["alert"].startswith("Suite")


def test_the_runbook_explains_every_alert() -> None:
    runbook = (DEPLOY / "README.md").read_text()
    for alert in ALERTS:
        assert re.search(rf"^#+ .*`{alert['alert']}`", runbook, re.MULTILINE), (
            f"{alert['alert']} is not in the runbook"
        )


@pytest.mark.parametrize("backend", ["sqlite"])
def test_every_metric_the_alerts_read_is_exported(suite: Suite) -> None:
    exported = set()
    for app in suite.apps():
        client = app.test_client()
        client.get("/healthz")
        exported |= exported_names(client.get("/metrics").get_data(as_text=True))
    # What workers, the relay and the sweeper export on METRICS_PORT: this process's own registry.
    exported |= exported_names(generate_latest(metrics.build_registry()).decode())
    exported_bases = {_base(name) for name in exported}
    for alert in ALERTS:
        for name in set(re.findall(r"\bsuite_[a-z_]+\b", alert["expr"])):
            assert _base(name) in exported_bases, f"{alert['alert']} reads {name}, which nothing exports"
