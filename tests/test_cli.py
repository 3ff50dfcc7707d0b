"""The `imagegen` command as installed (the venv's console script), run as a subprocess against the
running platform; its progress bar read from a pseudo-terminal, Ctrl-C sent as SIGINT. And the Python
client's retries against a loopback server that answers 503 and 429 first."""

from __future__ import annotations

import json
import os
import pathlib
import pty
import signal
import subprocess
import sys
import time
import uuid

import pytest
from aiohttp import web

from imagegen_client import ApiError, ImageGen
from tests.conftest import rest_client, running_platform
from tests.fakes import FakeComfyUI, LoopbackServer, png
from tests.test_progress import PLACES, WORKFLOW

KEY = "sk_cli_" + uuid.uuid4().hex
COMMAND = pathlib.Path(sys.executable).parent / "imagegen"


@pytest.fixture(scope="module")
def platform(pg, tmp_path_factory):
    with running_platform(pg, tmp_path_factory, KEY) as running:
        yield running


@pytest.fixture(scope="module")
def api(platform):
    return rest_client(platform, KEY)


@pytest.fixture(scope="module")
def comfy(api):
    server = FakeComfyUI(step_seconds=0.2)
    servers = [{"url": server.base_url, "maxConcurrency": 1}]
    answer = api("POST", "/api/models", json={"name": "slow", "provider": "comfyui", "servers": servers,
                 "comfyui": {"workflow": WORKFLOW, **PLACES}})  # fmt: skip
    assert answer.status_code == 200, answer.text
    yield server
    server.stop()


def imagegen(platform, *args: str, key: str = KEY, check: int | None = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "IMAGEGEN_URL": platform.gateway_url, "IMAGEGEN_API_KEY": key}
    run = subprocess.run([str(COMMAND), *args], env=env, capture_output=True, text=True, timeout=120)
    if check is not None:
        assert run.returncode == check, (run.returncode, run.stdout, run.stderr)
    assert "Traceback" not in run.stderr, run.stderr
    return run


def test_generate_saves_the_images_and_prints_json(platform, tmp_path):
    assert COMMAND.exists(), "installed with the package as a console script"
    photo = tmp_path / "room.png"
    photo.write_bytes(png("a room", 2, 96, 64))
    out = tmp_path / "out"
    run = imagegen(platform, "generate", "a lake at noon", "--size", "64x64", "--seed", "3", "-n", "2",
                   "--param", "quality=hd", "--param", "guidance=7.5", "--param", 'tags=["calm"]',
                   "--input", str(photo), "-o", str(out), "--json")  # fmt: skip
    generation = json.loads(run.stdout)
    assert generation["status"] == "completed" and len(generation["outputImages"]) == 2
    common = {"prompt": "a lake at noon", "width": 64, "height": 64, "seed": 3}
    assert json.loads(generation["input"]) == {"quality": "hd", "guidance": 7.5, "tags": ["calm"], **common}
    assert len(generation["inputImages"]) == 1 and generation["inputImages"][0]["width"] == 96
    saved = sorted(out.iterdir())
    assert [p.name for p in saved] == [f"{generation['id']}-0.png", f"{generation['id']}-1.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in saved)

    verdict = imagegen(platform, "verify", str(saved[0]))
    assert verdict.stdout.startswith("valid:")
    table = imagegen(platform, "ls", "--limit", "1")
    assert table.stdout.splitlines()[0].split()[:2] == ["ID", "STATUS"] and generation["id"] in table.stdout
    listed = json.loads(imagegen(platform, "ls", "--limit", "1", "--json").stdout)
    assert listed["id"] == generation["id"]
    got = imagegen(platform, "get", generation["id"], "-o", str(tmp_path / "again"))
    assert generation["outputImages"][0]["url"].split("?")[0] in got.stdout
    assert len(list((tmp_path / "again").iterdir())) == 2
    assert imagegen(platform, "rm", generation["id"]).returncode == 0
    assert imagegen(platform, "get", generation["id"], check=1).stderr.startswith("imagegen: generation")


def test_mistakes_print_the_platforms_message_and_exit_with_documented_codes(platform):
    refused = imagegen(platform, "generate", "x", "--model", "no-such-model", check=1)
    assert "no-such-model" in refused.stderr and "(HTTP 404)" in refused.stderr
    assert imagegen(platform, "ls", key="sk_wrong", check=1).stderr.startswith("imagegen: ")
    assert "WIDTHxHEIGHT" in imagegen(platform, "generate", "x", "--size", "big", check=2).stderr
    assert "KEY=VALUE" in imagegen(platform, "generate", "x", "--param", "oops", check=2).stderr
    assert (
        "neither a file nor a URL"
        in imagegen(platform, "generate", "x", "--input", "nope.png", check=2).stderr
    )
    imagegen(platform, "frobnicate", check=2)
    env = {**os.environ, "IMAGEGEN_URL": "http://127.0.0.1:1", "IMAGEGEN_API_KEY": KEY}
    away = subprocess.run([str(COMMAND), "ls"], env=env, capture_output=True, text=True, timeout=120)
    assert away.returncode == 4 and "no answer from http://127.0.0.1:1" in away.stderr


def test_models_keys_and_usage(platform, api):
    added = imagegen(platform, "models", "add", "cli-model", "--provider", "procedural", "--server",
                     "builtin://procedural")  # fmt: skip
    assert "added cli-model" in added.stdout
    assert "cli-model" in imagegen(platform, "models", "ls").stdout
    imagegen(platform, "models", "rm", "cli-model")
    assert "cli-model" not in imagegen(platform, "models", "ls").stdout

    project = api("GET", "/api/caller").json()["projectId"]
    created = imagegen(platform, "keys", "create", "from-cli", "--project", project)
    key = created.stdout.strip()
    assert key.startswith("sk_") and "shown once" in created.stderr
    assert imagegen(platform, "ls", key=key).returncode == 0
    listed = json.loads(imagegen(platform, "keys", "ls", "--project", project, "--json").stdout)
    (made,) = [k for k in listed if k["name"] == "from-cli"]
    imagegen(platform, "keys", "revoke", made["id"])
    assert imagegen(platform, "ls", key=key, check=1).stderr.startswith("imagegen: ")
    usage = imagegen(platform, "usage")
    assert usage.stdout.splitlines()[0].split() == ["DAY", "GENERATIONS", "IMAGES", "FAILED"]
    assert usage.stdout.splitlines()[-1].startswith("total")


def _on_terminal(platform, *args: str) -> tuple[subprocess.Popen, int]:
    """The command with its stderr on a pseudo-terminal (so it draws its progress bar)."""
    controller, terminal = pty.openpty()
    env = {**os.environ, "IMAGEGEN_URL": platform.gateway_url, "IMAGEGEN_API_KEY": KEY, "COLUMNS": "100"}
    process = subprocess.Popen([str(COMMAND), *args], env=env, stdout=subprocess.PIPE, stderr=terminal)
    os.close(terminal)
    return process, controller


def _read_until(controller: int, wanted: str, seconds: float = 30) -> str:
    seen, deadline = "", time.monotonic() + seconds
    while wanted not in seen:
        assert time.monotonic() < deadline, seen[-500:]
        try:
            seen += os.read(controller, 4096).decode(errors="replace")
        except OSError:
            break
    return seen


def test_the_progress_bar_shows_the_queue_then_steps(platform, api, comfy):
    blocker = api("POST", "/api/images/generations", json={"prompt": "first", "model": "slow", "async": True,
                  "width": 64, "height": 64}).json()  # fmt: skip
    process, controller = _on_terminal(platform, "generate", "a kite", "--model", "slow", "--size", "64x64")
    seen = _read_until(controller, "queued: 0 ahead")
    seen += _read_until(controller, "step ")
    assert process.wait(60) == 0
    seen += _read_until(controller, "completed", 5)
    os.close(controller)
    assert "[#" in seen and "%" in seen and "/20" in seen, seen[-500:]
    assert "completed" in process.stdout.read().decode()
    assert api("GET", f"/api/images/generations/{blocker['id']}").json()["status"] == "completed"


def test_ctrl_c_during_a_sync_generate_cancels_its_job_and_prints_its_id(platform, api, comfy):
    interrupts = comfy.interrupts
    process, controller = _on_terminal(
        platform, "generate", "a long storm", "--model", "slow", "--size", "64x64"
    )
    seen = _read_until(controller, "step ")
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 130
    seen += _read_until(controller, "cancelled img_", 10)
    os.close(controller)
    generation_id = seen.split("cancelled ")[-1].split()[0]
    assert api("GET", f"/api/images/generations/{generation_id}").json()["status"] == "cancelled"
    deadline = time.monotonic() + 10
    while comfy.interrupts == interrupts and time.monotonic() < deadline:
        time.sleep(0.1)
    assert comfy.interrupts == interrupts + 1, "the model server stopped too"


class _Flaky(LoopbackServer):
    """Answers 503, then 429 with Retry-After: 1, then the generation; keeps what each request carried."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str]] = []
        super().__init__()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/images/generations", self._create)

    async def _create(self, request: web.Request) -> web.Response:
        self.seen.append((time.monotonic(), request.headers.get("Idempotency-Key", "")))
        if len(self.seen) == 1:
            return web.json_response({"code": 14, "message": "catalog unavailable"}, status=503)
        if len(self.seen) == 2:
            return web.json_response(
                {"code": 8, "message": "slow down"}, status=429, headers={"Retry-After": "1"}
            )
        return web.json_response({"id": "img_1", "status": "completed", "outputImages": []})


def test_the_client_retries_503_and_429_with_one_idempotency_key_honouring_retry_after():
    flaky = _Flaky()
    try:
        generation = ImageGen(flaky.base_url, "sk_x").generate("a lake")
        with pytest.raises(ApiError) as refused:
            ImageGen(flaky.base_url, "sk_x", max_retries=0).get("img_1")
    finally:
        flaky.stop()
    assert generation.id == "img_1" and len(flaky.seen) == 3
    keys = {key for _, key in flaky.seen}
    assert len(keys) == 1 and keys.pop().startswith("imagegen-client-"), "one key: the retries are one create"
    assert flaky.seen[2][0] - flaky.seen[1][0] >= 1.0, "Retry-After honoured"
    assert refused.value.status in (404, 405)
