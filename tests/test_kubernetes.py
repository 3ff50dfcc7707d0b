"""deploy/kubernetes/imagegen.yaml, offline: every object valid against the Kubernetes schemas
(kubernetes-validate ships them) and the KEDA ones against KEDA's CRD schemas (@kubernetes-models/keda,
pinned in tests/kubernetes), every variable read by the code, every port one the services serve, every
image pinned, and the probes, drains and scaling the README promises."""

from __future__ import annotations

import copy
import json
import subprocess

import pytest
import yaml
from kubernetes_validate import validate

from gateway.config import GatewayConfig
from services.common.config import DEFAULT_PORTS
from services.common.metrics import DEFAULT_METRICS_PORTS
from services.generator.config import GeneratorConfig
from tests.conftest import REPO
from tests.test_compose import _code_reads

MANIFESTS = REPO / "deploy" / "kubernetes" / "imagegen.yaml"
KEDA_VALIDATOR = REPO / "tests" / "kubernetes" / "validate.js"
KUBERNETES = "1.30.0"
# Read by the image's entrypoint and healthcheck (the Dockerfile), not by a service.
IMAGE_VARIABLES = {"IMAGEGEN_MODULE", "IMAGEGEN_HEALTH_PORT"}


def _objects() -> list[dict]:
    return [document for document in yaml.safe_load_all(MANIFESTS.read_text()) if document]


def _deployments() -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in _objects() if o["kind"] == "Deployment"}


def test_every_kubernetes_object_is_valid_against_the_schemas():
    kinds = set()
    for obj in _objects():
        kinds.add(obj["kind"])
        if obj["apiVersion"].startswith("keda.sh/"):
            continue  # a custom resource: checked below
        validate(obj, KUBERNETES, strict=True)
    assert {"Deployment", "Service", "Secret", "ConfigMap", "PodDisruptionBudget", "NetworkPolicy"} <= kinds


def _keda_check(objects: list[dict]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["node", str(KEDA_VALIDATOR)],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=KEDA_VALIDATOR.parent,
    )


@pytest.mark.starts_processes  # node, with tests/kubernetes's packages (`make test` installs them)
def test_the_keda_objects_are_valid_against_kedas_crd_schemas():
    keda = [obj for obj in _objects() if obj["apiVersion"].startswith("keda.sh/")]
    assert [obj["kind"] for obj in keda] == ["ScaledObject"]
    checked = _keda_check(keda)
    assert checked.returncode == 0 and checked.stdout.split("\n")[0] == "ok ScaledObject", (
        checked.stdout + checked.stderr
    )
    # The same check refuses what KEDA would: a count that is not a number, a missing target.
    broken = copy.deepcopy(keda[0])
    broken["spec"]["minReplicaCount"] = "none"
    del broken["spec"]["scaleTargetRef"]
    refused = _keda_check([broken])
    assert refused.returncode == 1
    assert "minReplicaCount must be integer" in refused.stdout or "scaleTargetRef" in refused.stdout


def test_variables_ports_and_images_exist_and_are_pinned():
    served = set(DEFAULT_PORTS.values()) | set(DEFAULT_METRICS_PORTS.values()) | {GatewayConfig.stats_port}
    for name, deployment in _deployments().items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), (name, image)
            for variable in container["env"]:
                assert variable["name"] in IMAGE_VARIABLES or _code_reads(variable["name"]), variable["name"]
            for port in container["ports"]:
                assert port["containerPort"] in served, (name, port)
            assert container["readinessProbe"] and container["livenessProbe"], name
            assert container["lifecycle"]["preStop"], name
            assert container["resources"]["requests"] and container["resources"]["limits"], name


def test_drains_fit_the_grace_period_and_the_worker_scales_on_the_queue():
    deployments = _deployments()
    for name in ("generator", "generator-worker"):
        spec = deployments[name]["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        drain = next(
            (float(v["value"]) for v in container["env"] if v["name"] == "IMAGEGEN_SHUTDOWN_GRACE_SECONDS"),
            GeneratorConfig.shutdown_grace_seconds,
        )
        assert spec["terminationGracePeriodSeconds"] > drain + 5, "preStop's sleep, then the drain"
    for name, deployment in deployments.items():
        probe = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
        assert ("grpc" in probe) == (name != "gateway"), name
    (scaled,) = [o for o in _objects() if o["kind"] == "ScaledObject"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "generator-worker"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus" and "imagegen_queue_jobs" in trigger["metadata"]["query"]
    assert deployments["generator"]["spec"]["replicas"] >= 1, "the front door keeps its replicas"
    services = {o["metadata"]["name"]: o for o in _objects() if o["kind"] == "Service"}
    for name in ("generator", "catalog", "storage"):
        assert services[name]["spec"]["clusterIP"] == "None", "headless: clients see every replica"
        assert services[name]["spec"]["selector"] == {"app.kubernetes.io/name": name}
