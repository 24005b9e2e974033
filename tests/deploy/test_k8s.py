"""The Kubernetes base: every manifest valid against the Kubernetes schemas, complete, and consistent."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from deploy.suitectl.processes import NOT_IN_PROCFILE, PROCESSES, SERVICES, SINGLETON, WEB, WORKER
from tests.deploy.manifests import (
    K8S,
    NOT_APPLIED,
    PROCESS_VARIABLES,
    k8s_documents,
    known_settings,
    kustomization,
    of_kind,
    procfile,
)

# The oldest Kubernetes the base promises to work on, and the newest the validator knows.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
DEPLOYMENTS = of_kind("Deployment")
TEMPLATE_SECRETS = of_kind("Secret", include_template=True)


def _pod(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_kubernetes_strictly(version: str) -> None:
    for name, doc in k8s_documents(include_template=True):
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_the_validator_rejects_what_it_should() -> None:
    deployment = yaml.safe_load((K8S / "relay.yaml").read_text())
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_the_kustomization_lists_every_manifest_but_the_secret_template_and_ingress_example() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - set(NOT_APPLIED)
    assert not [d for _, d in k8s_documents() if d["kind"] == "Secret"], "no Secret with values in the base"
    for secret in TEMPLATE_SECRETS.values():
        assert set(secret["stringData"].values()) == {""}, "the template holds no values"


def test_every_process_has_a_deployment_that_runs_it_by_name() -> None:
    assert set(DEPLOYMENTS) == set(procfile()) | NOT_IN_PROCFILE
    for name, deployment in DEPLOYMENTS.items():
        container = _pod(deployment)["containers"][0]
        assert container["args"] == ["run", name]
        assert container["image"] == "telehealth-suite"


def test_each_web_service_has_a_service_an_autoscaler_and_a_disruption_budget() -> None:
    services, hpas, pdbs = (
        of_kind("Service"),
        of_kind("HorizontalPodAutoscaler"),
        of_kind("PodDisruptionBudget"),
    )
    web = {name for name, p in PROCESSES.items() if p.kind == WEB}
    assert web == set(SERVICES)
    assert web <= set(services)
    assert set(hpas) == web
    assert web <= set(pdbs)
    for name in web:
        assert hpas[name]["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert hpas[name]["spec"]["minReplicas"] >= 2, "one replica cannot keep a budget of one available"
        assert DEPLOYMENTS[name]["spec"]["replicas"] == hpas[name]["spec"]["minReplicas"]
    for name, pdb in pdbs.items():
        replicas = DEPLOYMENTS[name]["spec"]["replicas"]
        assert pdb["spec"]["minAvailable"] < replicas, f"{name}: the budget would block every drain"


def test_selectors_match_their_pods_and_ports_exist() -> None:
    for kind in ("Service", "PodDisruptionBudget"):
        for name, doc in of_kind(kind).items():
            selector = doc["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            target = DEPLOYMENTS[name]
            labels = target["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), f"{kind}/{name} selects no pod"
            if kind == "Service":
                ports = {p["name"] for p in _pod(target)["containers"][0]["ports"]}
                assert {p["targetPort"] for p in doc["spec"]["ports"]} <= ports
    for deployment in DEPLOYMENTS.values():
        assert deployment["spec"]["selector"]["matchLabels"].items() <= (
            deployment["spec"]["template"]["metadata"]["labels"].items()
        )


def test_probes_resources_and_security_on_every_container() -> None:
    for name, deployment in DEPLOYMENTS.items():
        pod = _pod(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for container in pod.get("initContainers", []) + pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert {"/tmp"} == {m["mountPath"] for m in container["volumeMounts"]}
            for key in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][key]), f"{name}: {key}"
        main = pod["containers"][0]
        kind = PROCESSES[name]
        if kind.kind == WEB:
            assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
        elif kind.serves_http:
            assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
        else:
            assert main["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}


def test_prometheus_finds_every_process() -> None:
    for name, deployment in DEPLOYMENTS.items():
        if name == "rq-dashboard":
            continue
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        port = 9100  # every process, web ones too: /metrics is on its own port
        assert annotations == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(port),
            "prometheus.io/path": "/metrics",
        }


def test_every_process_waits_for_its_own_schema() -> None:
    for name, deployment in DEPLOYMENTS.items():
        if name == "rq-dashboard":
            assert "initContainers" not in _pod(deployment)
            continue
        (init,) = _pod(deployment)["initContainers"]
        assert init["args"] == ["wait-for-schema", PROCESSES[name].service]
    job = of_kind("Job")["migrate"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_singletons_and_workers_are_sized_and_stop_gracefully() -> None:
    for name, process in PROCESSES.items():
        spec = DEPLOYMENTS[name]["spec"]
        if process.kind == SINGLETON:
            assert spec["replicas"] == 1, f"{name}: one is enough"
        if process.kind == WORKER:
            # RQ finishes the job at hand on SIGTERM; jobs time out after 60 s.
            assert _pod(DEPLOYMENTS[name])["terminationGracePeriodSeconds"] >= 90


def _env_sources(container: dict[str, Any]) -> tuple[set[str], set[str]]:
    maps = {s["configMapRef"]["name"] for s in container["envFrom"] if "configMapRef" in s}
    secrets = {s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s}
    return maps, secrets


def test_each_process_reads_only_its_own_service_secrets() -> None:
    config_maps = of_kind("ConfigMap")
    for name, deployment in DEPLOYMENTS.items():
        for container in _pod(deployment).get("initContainers", []) + _pod(deployment)["containers"]:
            maps, secrets = _env_sources(container)
            assert maps <= set(config_maps)
            assert secrets <= set(TEMPLATE_SECRETS), "every secret read is in the template"
            service = PROCESSES[name].service
            expected = (
                {"suite-redis", "suite-dashboard"}
                if service == "ops"
                else {"suite-redis", "suite-common", f"suite-{service}"}
            )
            assert secrets == expected, name
    job = of_kind("Job")["migrate"]["spec"]["template"]["spec"]["containers"][0]
    assert _env_sources(job)[1] == {"suite-redis", "suite-common"} | {f"suite-{s}" for s in SERVICES}


def test_every_variable_set_is_a_setting() -> None:
    known = known_settings() | PROCESS_VARIABLES
    for config_map in of_kind("ConfigMap").values():
        assert set(config_map["data"]) <= known, set(config_map["data"]) - known
    for secret in TEMPLATE_SECRETS.values():
        assert set(secret["stringData"]) <= known, set(secret["stringData"]) - known
    for deployment in DEPLOYMENTS.values():
        for container in _pod(deployment)["containers"]:
            assert {e["name"] for e in container.get("env", [])} <= known


def test_every_secret_a_service_requires_in_production_has_a_key() -> None:
    from dataclasses import fields

    from deploy.suitectl.dashboard import DashboardConfig
    from services.booking.config import BookingConfig
    from services.consult.config import ConsultConfig
    from services.notify.config import NotifyConfig

    keys = {k for s in TEMPLATE_SECRETS.values() for k in s["stringData"]}
    for cls in (BookingConfig, NotifyConfig, ConsultConfig, DashboardConfig):
        for f in fields(cls):
            if f.metadata.get("required_in_production"):
                assert f.metadata["env"] in keys, f"{cls.__name__}: {f.metadata['env']}"
        database = [
            f.metadata["env"] for f in fields(cls) if f.metadata.get("env", "").endswith("_DATABASE_URL")
        ]
        assert set(database) <= keys


def test_web_services_expose_http_but_never_the_metrics_port() -> None:
    for name in SERVICES:
        service = of_kind("Service")[name]
        assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
        ports = {p["name"]: p["containerPort"] for p in _pod(DEPLOYMENTS[name])["containers"][0]["ports"]}
        assert ports == {"http": 8000, "metrics": 9100}


def test_the_ingress_example_routes_only_patient_and_webhook_paths() -> None:
    from tests.shared.test_staff_key import APPS, PUBLIC

    (ingress,) = [d for n, d in k8s_documents(include_template=True) if d["kind"] == "Ingress"]
    routed: dict[str, set[str]] = {}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["pathType"] == "Prefix"
            routed.setdefault(path["backend"]["service"]["name"], set()).add(path["path"])
    assert set(routed) == set(SERVICES)
    never = ("/metrics", "/api/docs", "/api/openapi.json", "/healthz", "/readyz")
    for service, prefixes in routed.items():
        app = APPS[service]()
        try:
            for rule in app.url_map.iter_rules():
                reached = any(rule.rule == p or rule.rule.startswith(p + "/") for p in prefixes)
                if reached:
                    assert rule.rule in PUBLIC[service], f"{service}: {rule.rule} needs a staff key"
                    assert not rule.rule.startswith(never), rule.rule
        finally:
            app.extensions["db"].dispose()
    assert "/webhooks/twilio" in routed["notify"]
    assert {"/book", "/manage", "/invite"} <= routed["booking"]


def test_network_policies_let_only_the_ingress_reach_http_and_monitoring_reach_metrics() -> None:
    policies = of_kind("NetworkPolicy")
    assert set(policies) == {"suite-web", "suite-processes"}
    web = policies["suite-web"]["spec"]
    assert web["podSelector"]["matchExpressions"][0]["values"] == list(SERVICES)
    allowed = {
        (rule["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], port["port"])
        for rule in web["ingress"]
        for port in rule["ports"]
    }
    assert allowed == {("ingress-nginx", "http"), ("monitoring", "metrics")}
    others = policies["suite-processes"]["spec"]
    assert others["podSelector"]["matchExpressions"][0]["operator"] == "NotIn"
    assert [p["port"] for rule in others["ingress"] for p in rule["ports"]] == ["metrics"]
    for policy in policies.values():
        assert policy["spec"]["policyTypes"] == ["Ingress"]
