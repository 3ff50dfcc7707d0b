"""Each provider is a real client of its wire protocol, run against a loopback server speaking it."""

from __future__ import annotations

import asyncio
import functools

import pytest

from services.common.outbound import OutboundPolicy
from services.generator.providers import (
    Http,
    ImageSpec,
    ModelError,
    Progress,
    ServerFailure,
    ServerTarget,
    build_providers,
)
from tests.fakes import ConnectionCounter, FakeModelServer, LoopbackServer, png
from tools.embedded_pg import free_port

SPEC = ImageSpec("a lake at dawn", "", 64, 48, 7)
# The fake servers are on loopback, which a deployment allows as one of its networks, for servers an
# admin key attached.
LOOPBACK = OutboundPolicy.parse("127.0.0.0/8", public=False)
Attached = functools.partial(ServerTarget, private_ok=True)


@pytest.fixture
def fake():
    server = FakeModelServer()
    yield server
    server.stop()


def run(provider_name: str, server: ServerTarget, spec: ImageSpec = SPEC, n: int = 2, timeout: float = 10):
    async def call():
        http = Http(LOOPBACK)
        try:
            return await build_providers(http)[provider_name].generate(server, spec, n, timeout, Progress())
        finally:
            await http.close()

    return asyncio.run(call())


def probe(provider_name: str, server: ServerTarget):
    async def call():
        http = Http(LOOPBACK)
        try:
            await build_providers(http)[provider_name].probe(server, 5)
        finally:
            await http.close()

    asyncio.run(call())


def test_openai_images_api(fake):
    server = Attached("srv_1", f"{fake.url}/v1", "sk-test", "dall-e-3")
    images = run("openai", server)
    assert [(i.content_type, i.width, i.height) for i in images] == [("image/png", 64, 48)] * 2
    assert images[0].data != images[1].data
    body, headers = fake.stats.bodies[-1], fake.stats.headers[-1]
    assert body == {
        "prompt": "a lake at dawn",
        "n": 2,
        "size": "64x48",
        "model": "dall-e-3",
        "response_format": "b64_json",
    }
    assert headers["Authorization"] == "Bearer sk-test"
    run("openai", Attached("srv_1", f"{fake.url}/v1", "sk-test", "gpt-image-1"), n=1)
    assert "response_format" not in fake.stats.bodies[-1], "gpt-image models refuse the parameter"
    probe("openai", server)

    with pytest.raises(ModelError, match="safety system"):
        run("openai", server, ImageSpec("something forbidden", "", 64, 64, 1))
    fake.fail_with, fake.fail_count = 500, 1
    with pytest.raises(ServerFailure, match="HTTP 500: The server had an error"):
        run("openai", server)


def test_automatic1111_txt2img(fake):
    server = Attached("srv_1", fake.url, "user:pass", "sdxl_base.safetensors")
    images = run("automatic1111", server, ImageSpec("a lake", "fog", 64, 64, 11), n=3)
    assert len(images) == 3 and all(i.content_type == "image/png" for i in images)
    body = fake.stats.bodies[-1]
    assert (body["negative_prompt"], body["seed"], body["batch_size"]) == ("fog", 11, 3)
    assert body["override_settings"] == {"sd_model_checkpoint": "sdxl_base.safetensors"}
    assert fake.stats.headers[-1]["Authorization"] == "Basic dXNlcjpwYXNz"
    probe("automatic1111", server)

    with pytest.raises(ModelError, match="too wide"):
        run("automatic1111", server, ImageSpec("a lake", "", 8192, 64, 1), n=1)
    fake.fail_with, fake.fail_count = 500, 1
    with pytest.raises(ServerFailure, match="CUDA out of memory"):
        run("automatic1111", server)


def test_replicate_predictions_poll_and_cancel(fake):
    fake.delay = 0.3
    official = Attached("srv_1", f"{fake.url}/v1", "r8_token", "black-forest-labs/flux-schnell")
    images = run("replicate", official)
    assert len(images) == 2 and images[0].width == 64
    assert fake.stats.headers[-1]["Prefer"].startswith("wait=")
    versioned = Attached("srv_1", f"{fake.url}/v1", "r8_token", "stability-ai/sdxl:39ed52f2a78e")
    run("replicate", versioned, n=1)
    assert fake.stats.bodies[-1]["version"] == "39ed52f2a78e"
    probe("replicate", official)

    with pytest.raises(ModelError, match="NSFW content detected"):
        run("replicate", official, ImageSpec("fail please", "", 64, 64, 1), n=1)
    with pytest.raises(ModelError, match="input.prompt"):
        run("replicate", official, ImageSpec("forbidden", "", 64, 64, 1), n=1)
    fake.fail_with, fake.fail_count = 429, 1
    with pytest.raises(ServerFailure, match="HTTP 429: Request was throttled"):
        run("replicate", official)

    fake.delay = 5

    async def abandoned():
        http = Http(LOOPBACK)
        task = asyncio.create_task(
            build_providers(http)["replicate"].generate(official, SPEC, 1, 30, Progress())
        )
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await http.close()

    asyncio.run(abandoned())
    assert fake.stats.cancels == 1, "an abandoned job cancels its prediction so nobody pays for it"


@pytest.mark.parametrize("provider", ["openai", "automatic1111", "replicate"])
def test_an_unreachable_or_slow_server_is_a_server_failure(provider, fake):
    dead = Attached("srv_1", f"http://127.0.0.1:{free_port()}/v1", "", "owner/model")
    with pytest.raises(ServerFailure):
        run(provider, dead)
    with pytest.raises(ServerFailure):
        probe(provider, dead)
    fake.delay = 2
    slow = Attached("srv_1", f"{fake.url}/v1" if provider != "automatic1111" else fake.url, "", "owner/model")
    with pytest.raises(ServerFailure, match="within"):
        run(provider, slow, timeout=0.3)


def test_the_generator_has_a_provider_for_every_provider_a_model_may_name():
    from services.common.vocabulary import PROVIDERS
    from services.generator.providers import build_providers

    assert tuple(build_providers(http=None)) == PROVIDERS


def test_a_model_server_on_a_refused_address_is_never_reached():
    listener = ConnectionCounter(png("x", 1, 64, 64))
    try:
        for host in ("127.0.0.1", "0x7f000001", "[::ffff:127.0.0.1]", "localhost"):
            server = ServerTarget("srv_1", f"http://{host}:{listener.port}/v1", "", "")

            async def call(server=server):
                http = Http(OutboundPolicy())  # public addresses only, as shipped
                try:
                    return await build_providers(http)["openai"].generate(server, SPEC, 1, 5, Progress())
                finally:
                    await http.close()

            with pytest.raises(ServerFailure, match="is refused: .* not a public address"):
                asyncio.run(call())
        assert listener.connections == 0
    finally:
        listener.stop()


class _LeakyServer(LoopbackServer):
    """An internal HTTP service: its error pages carry what they should not."""

    def routes(self, app) -> None:
        from aiohttp import web

        async def secret(request):
            return web.Response(status=403, text=f"INTERNAL-SECRET-TOKEN=abc123 you asked {request.path}")

        app.router.add_route("*", "/{tail:.*}", secret)


def test_a_failure_s_reason_never_carries_the_answer_s_raw_bytes():
    leaky = _LeakyServer()
    try:
        with pytest.raises(ServerFailure) as failed:
            run("openai", Attached("srv_1", f"{leaky.base_url}/v1", "", ""), n=1)
        assert "INTERNAL-SECRET-TOKEN" not in str(failed.value) and "HTTP 403" in str(failed.value)
    finally:
        leaky.stop()


def test_a_server_no_admin_attached_never_reaches_an_allowed_private_network(fake):
    tenants = ServerTarget("srv_1", f"{fake.url}/v1", "", "")
    with pytest.raises(ServerFailure, match="not a public address"):
        run("openai", tenants, n=1)
    assert fake.stats.requests == 0
