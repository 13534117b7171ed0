"""The demo's Prometheus and Alertmanager configs: the repo's example files, re-pointed at the demo.

The demo must run the configs a user would deploy (deploy/prometheus/prometheus.yml,
deploy/alertmanager/alertmanager.yml, alert_rules/), not a private copy that could drift. Only what a
one-minute demo on free ports needs is changed: addresses, intervals, and the rules' ``for:``
durations, which are capped so an alert fires within the minute. Every change is listed in
:data:`DEMO_CHANGES` and printed, so nobody mistakes the demo's timings for the production ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from optilab.toolkit.resources import shipped

REPO = Path(__file__).resolve().parent.parent
PROMETHEUS_EXAMPLE = shipped("deploy/prometheus") / "prometheus.yml"
ALERTMANAGER_EXAMPLE = shipped("deploy/alertmanager") / "alertmanager.yml"
RULES_DIR = shipped("alert_rules")

SCRAPE_INTERVAL = "5s"
SCRAPE_TIMEOUT = "4s"
MAX_FOR = "10s"

DEMO_CHANGES = (
    f"scrape/evaluation every {SCRAPE_INTERVAL} (example: 30s)",
    f"alert rules' for: capped at {MAX_FOR} (example: 2m-1h)",
    "Alertmanager group_wait 2s, group_interval 10s (example: 30s, 5m)",
    "no 'rabbitmq' scrape job (the example reads the broker's optional rabbitmq_prometheus plugin)",
)


@dataclass(frozen=True)
class Ports:
    exporter: int
    bridge: int
    api: int
    prometheus: int
    alertmanager: int


def prometheus_config(ports: Ports, rules_dir: Path) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with the demo's addresses and a faster rhythm."""
    config = yaml.safe_load(PROMETHEUS_EXAMPLE.read_text())
    exporter = f"127.0.0.1:{ports.exporter}"
    config["global"].update(
        scrape_interval=SCRAPE_INTERVAL, scrape_timeout=SCRAPE_TIMEOUT, evaluation_interval=SCRAPE_INTERVAL
    )
    config["rule_files"] = [str(rules_dir / "*.yml")]
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [f"127.0.0.1:{ports.alertmanager}"]}]}]
    own = {
        "optilab-exporter": exporter,
        "optilab-bridge": f"127.0.0.1:{ports.bridge}",
        "optilab-api": f"127.0.0.1:{ports.api}",
        "prometheus": f"127.0.0.1:{ports.prometheus}",
    }
    # RabbitMQ's metrics plugin may not be enabled on this machine: the demo does not scrape it.
    config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] != "rabbitmq"]
    for job in config["scrape_configs"]:
        job["scrape_interval"], job["scrape_timeout"] = SCRAPE_INTERVAL, SCRAPE_TIMEOUT
        for sd in job.get("http_sd_configs", []):
            sd["url"] = f"http://{exporter}/sd"
            sd["refresh_interval"] = SCRAPE_INTERVAL
        for rule in job.get("relabel_configs", []):
            if rule.get("target_label") == "__address__":
                rule["replacement"] = exporter
        for static in job.get("static_configs", []):
            static["targets"] = [own.get(job["job_name"], exporter)]
    for remote in config["remote_write"]:
        remote["url"] = f"http://127.0.0.1:{ports.bridge}/api/v1/write"
        remote.setdefault("queue_config", {})["batch_send_deadline"] = "1s"
    return config


def demo_rules(rules_dir: Path) -> Path:
    """Copy alert_rules/*.yml into ``rules_dir`` with every ``for:`` capped at :data:`MAX_FOR`."""
    rules_dir.mkdir(parents=True, exist_ok=True)
    for source in sorted((f for f in RULES_DIR.iterdir() if f.name.endswith(".yml")), key=lambda f: f.name):
        document = yaml.safe_load(source.read_text())
        for group in document.get("groups", []):
            group["interval"] = SCRAPE_INTERVAL
            for rule in group.get("rules", []):
                if "for" in rule:
                    rule["for"] = MAX_FOR
        (rules_dir / source.name).write_text(yaml.safe_dump(document, sort_keys=False))
    return rules_dir


def alertmanager_config(ports: Ports) -> dict[str, Any]:
    """deploy/alertmanager/alertmanager.yml with webhooks on the demo's bridge and short waits."""
    config = yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text())
    routes = [config["route"], *config["route"].get("routes", [])]
    for route in routes:
        if "group_wait" in route:
            route["group_wait"] = "2s"
        if "group_interval" in route:
            route["group_interval"] = "10s"
    config["route"].update(group_wait="2s", group_interval="10s")
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"http://127.0.0.1:{ports.bridge}/api/v1/alerts"
    return config


def write_yaml(path: Path, document: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
