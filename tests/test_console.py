"""The console in a real browser: Debian's Chromium driven by Playwright against the running platform
(Envoy, the services, Postgres) and loopback model servers. A run without Chromium fails: `make test`
installs it."""

from __future__ import annotations

import base64
import pathlib
import re
import uuid

import pytest
import requests
from playwright.sync_api import Page, expect, sync_playwright

from tests.conftest import REPO, rest_client, running_platform
from tests.fakes import FakeComfyUI, png
from tests.test_progress import IMG2IMG, PLACES

KEY = "sk_console_" + uuid.uuid4().hex
CHROMIUM = pathlib.Path("/usr/bin/chromium")
AXE = REPO / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = REPO / "tests" / "browser" / "screenshots"
# As the machine's notes start it: no first-run work and no connections to Google's hosts.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def platform(pg, tmp_path_factory):
    with running_platform(pg, tmp_path_factory, KEY) as running:
        yield running


@pytest.fixture(scope="module")
def api(platform):
    return rest_client(platform, KEY)


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM.exists(), f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium package"
    assert AXE.exists(), "no axe-core: `make test` installs tests/browser's packages"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def comfy():
    server = FakeComfyUI(step_seconds=0.15)
    yield server
    server.stop()


class Watched:
    """A page, and everything it asked for and complained about."""

    def __init__(self, page: Page):
        self.page = page
        self.urls: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.urls.append(request.url))
        page.on(
            "console", lambda message: self.errors.append(message.text) if message.type == "error" else None
        )
        page.on("pageerror", lambda error: self.errors.append(str(error)))


def _sign_in(page: Page, platform, key: str) -> None:
    page.goto(f"{platform.gateway_url}/console/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Use this key").click()


def _axe(page: Page) -> list[dict]:
    """Serious and critical accessibility violations axe-core finds in the page as it is."""
    page.evaluate(AXE.read_text())
    found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [
        {"id": v["id"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def _screenshot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, suffix in ((1280, "desktop"), (375, "phone")):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SHOTS / f"{name}-{suffix}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_the_console_is_served_with_its_security_headers(platform):
    page = requests.get(f"{platform.gateway_url}/console/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert (
        "default-src 'self'" in policy and "script-src 'self'" in policy and "img-src 'self' data:" in policy
    )
    assert page.headers["x-content-type-options"] == "nosniff"
    script = requests.get(f"{platform.gateway_url}/console/app.js", timeout=10)
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert (
        requests.get(f"{platform.gateway_url}/console/../services/catalog/db.py", timeout=10).status_code
        == 404
    )
    assert requests.get(f"{platform.gateway_url}/console/nothing.js", timeout=10).status_code == 404


def test_a_secret_key_creates_watches_browses_verifies_cancels_and_manages_keys(
    platform, api, browser, comfy, tmp_path
):
    servers = [{"url": comfy.base_url, "maxConcurrency": 1}]
    comfyui = {"workflow": IMG2IMG, **PLACES, "images": [{"node": "10", "input": "image"}]}
    model = api("POST", "/api/models", json={"name": "comfy-ui", "provider": "comfyui", "servers": servers,
                "comfyui": comfyui})  # fmt: skip
    assert model.status_code == 200, model.text
    # Something to wait behind, so the new job shows its place in the queue.
    photo = tmp_path / "room.png"
    photo.write_bytes(png("a room", 1, 96, 96))
    given = "data:image/png;base64," + base64.b64encode(photo.read_bytes()).decode()
    ahead = api("POST", "/api/images/generations", json={"prompt": "first in line", "model": "comfy-ui",
                "inputImages": [given], "async": True}).json()  # fmt: skip

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    watched = Watched(page)
    _sign_in(page, platform, KEY)
    expect(page.get_by_text("Signed in with an admin key")).to_be_visible()

    page.get_by_role("button", name="Create").click()
    form = page.locator("#create-form")
    form.get_by_label("Prompt").fill("a redesigned room, scandinavian")
    form.get_by_label("Model", exact=True).fill("comfy-ui")
    form.get_by_label("Width").fill("96")
    form.get_by_label("Height").fill("96")
    form.get_by_label("Input image (file)").set_input_files(str(photo))
    form.get_by_role("button", name="Generate").click()
    status = page.locator("#job-status")
    expect(status).to_contain_text("ahead in the queue", timeout=20_000)
    expect(status).to_contain_text(re.compile(r"processing — \d+% \(step \d+ of 20\)"), timeout=30_000)
    expect(page.locator("#job-preview")).to_be_visible(timeout=10_000)
    expect(page.locator("#job-images img")).to_have_count(1, timeout=30_000)
    expect(status).to_contain_text("completed")
    assert comfy.uploads and comfy.uploads[-1][0] == "image", "the file went through /api/uploads to ComfyUI"

    page.get_by_role("button", name="Gallery").click()
    filters = page.locator("#filters")
    filters.get_by_label("Status").select_option("completed")
    filters.get_by_role("button", name="Filter").click()
    cards = page.locator("#grid li")
    expect(cards).to_have_count(2, timeout=10_000)
    _screenshot(page, "gallery")
    page.get_by_role("button", name=re.compile("Open a redesigned room")).click()
    detail = page.locator("#detail")
    expect(detail.get_by_text("a redesigned room, scandinavian")).to_be_visible()
    expect(detail.get_by_role("img", name="input image")).to_be_visible()
    detail.get_by_role("button", name="Provenance").click()
    expect(detail.locator("#provenance table")).to_contain_text("valid")
    expect(detail.locator("#provenance table")).to_contain_text("c2pa.edited")
    detail.get_by_role("button", name="Close").click()

    # A queued job, cancelled from its detail.
    small = {"model": "comfy-ui", "async": True, "inputImages": [given]}
    blocker = api("POST", "/api/images/generations", json={"prompt": "busy", **small}).json()
    queued = api("POST", "/api/images/generations", json={"prompt": "never mind", **small}).json()
    filters.get_by_label("Status").select_option("pending")
    filters.get_by_role("button", name="Filter").click()
    page.get_by_role("button", name=re.compile("Open never mind")).click()
    detail.get_by_role("button", name="Cancel").click()
    expect(detail.get_by_text(re.compile("^cancelled"))).to_be_visible()
    assert api("GET", f"/api/images/generations/{queued['id']}").json()["status"] == "cancelled"
    detail.get_by_role("button", name="Close").click()

    page.get_by_role("button", name="Operations").click()
    expect(page.locator("#models-table")).to_contain_text("comfy-ui")
    expect(page.locator("#usage-chart svg")).to_be_visible()
    _screenshot(page, "models")
    assert _axe(page) == []

    page.get_by_role("button", name="Projects and keys").click()
    first = page.locator("#projects > li").first
    first.get_by_label("Key name").fill("temporary")
    first.get_by_role("button", name="Create key").click()
    expect(page.locator("#new-key")).to_contain_text("sk_")
    new_key = re.search(r"(sk_\S+)", page.locator("#new-key").inner_text()).group(1)
    assert rest_client(platform, new_key)("GET", "/api/models").status_code == 200
    page.get_by_role("button", name="Revoke key temporary").first.click()
    expect(page.get_by_text("revoked").first).to_be_visible()
    assert rest_client(platform, new_key)("GET", "/api/models").status_code == 401, (
        "refused from the next request"
    )

    for url in watched.urls:
        assert KEY not in url and new_key not in url, url
    assert watched.errors == []
    for generation in (ahead, blocker):
        api("POST", f"/api/images/generations/{generation['id']}:cancel", json={})
    context.close()


def test_every_action_is_reachable_by_keyboard_and_the_page_passes_axe(platform, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{platform.gateway_url}/console/")
    assert _axe(page) == []
    page.keyboard.press("Tab")
    page.keyboard.type(KEY)
    page.keyboard.press("Enter")
    expect(page.get_by_text("Signed in with an admin key")).to_be_visible()
    for section in ("Gallery", "Create", "Operations", "Projects and keys"):
        page.get_by_role("button", name=section).focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", level=2, name=section)).to_be_visible()
        wanted = page.evaluate(
            """() => {
                document.querySelectorAll('[data-reachable]').forEach((e) => delete e.dataset.reachable);
                const actions = 'button, input, select, textarea, a[href], summary';
                const all = [...document.querySelectorAll(actions)]
                    .filter((e) => e.getClientRects().length && !e.disabled)
                    // What a closed <details> holds is reached by opening it (its summary is reachable).
                    .filter((e) => e.tagName === 'SUMMARY' || !e.closest('details:not([open])'));
                all.forEach((e, i) => { e.dataset.reachable = String(i); });
                return all.length;
            }"""
        )
        reached = set()
        for _ in range(wanted * 2 + 10):
            page.keyboard.press("Tab")
            reached.add(page.evaluate("() => document.activeElement.dataset.reachable || ''"))
        missed = page.evaluate(
            "(reached) => [...document.querySelectorAll('[data-reachable]')]"
            ".filter((e) => !reached.includes(e.dataset.reachable)).map((e) => e.outerHTML.slice(0, 100))",
            sorted(reached),
        )
        assert missed == [], (section, missed)
        assert _axe(page) == [], section
    context.close()


def test_a_publishable_key_sees_its_own_users_gallery_and_create_form_only(platform, api, browser):
    project = api("GET", "/api/projects").json()["projects"][0]["id"]
    created = api("POST", f"/api/projects/{project}/keys", json={"name": "page", "kind": "publishable",
                  "user": "web-user"}).json()  # fmt: skip
    for user, prompt in (("web-user", "mine"), ("someone-else", "theirs")):
        assert api("POST", "/api/images/generations", json={"prompt": prompt, "user": user, "width": 64,
                   "height": 64}).status_code == 200  # fmt: skip
    context = browser.new_context()
    page = context.new_page()
    watched = Watched(page)
    _sign_in(page, platform, created["key"])
    expect(page.get_by_text("Signed in with a publishable key")).to_be_visible()
    expect(page.get_by_role("button", name="Operations")).to_be_hidden()
    expect(page.get_by_role("button", name="Projects and keys")).to_be_hidden()
    expect(page.locator("#grid")).to_contain_text("mine")
    assert "theirs" not in page.locator("#grid").inner_text()
    page.get_by_role("button", name=re.compile("Open mine")).click()
    expect(page.locator("#detail").get_by_role("button", name="Cancel")).to_have_count(0)
    expect(page.locator("#detail").get_by_role("button", name="Delete")).to_have_count(0)
    page.locator("#detail").get_by_role("button", name="Close").click()
    page.get_by_role("button", name="Create").click()
    form = page.locator("#create-form")
    form.get_by_label("Prompt").fill("mine too")
    form.get_by_label("Width").fill("64")
    form.get_by_label("Height").fill("64")
    form.get_by_role("button", name="Generate").click()
    expect(page.locator("#job-images img")).to_have_count(1, timeout=30_000)
    listed = api("GET", "/api/images/generations?user=web-user").json()["results"]
    assert {g["prompt"] for g in listed} == {"mine", "mine too"}
    assert not [url for url in watched.urls if created["key"] in url]
    assert watched.errors == []
    context.close()


def test_the_gallery_scrolls_on_through_pages_and_models_are_edited_and_removed(platform, api, browser):
    for index in range(30):
        body = {"prompt": f"page filler {index}", "user": "scroller", "width": 64, "height": 64}
        answer = api("POST", "/api/images/generations", json=body)
        assert answer.status_code == 200
    assert api("POST", "/api/models", json={"name": "editable", "provider": "procedural",
               "servers": [{"url": "builtin://procedural"}]}).status_code == 200  # fmt: skip
    context = browser.new_context(viewport={"width": 1280, "height": 700})
    page = context.new_page()
    watched = Watched(page)
    _sign_in(page, platform, KEY)
    filters = page.locator("#filters")
    filters.get_by_label("User").fill("scroller")
    filters.get_by_role("button", name="Filter").click()
    cards = page.locator("#grid li")
    expect(cards).to_have_count(24)
    page.locator("#more").scroll_into_view_if_needed()
    expect(cards).to_have_count(30)
    expect(page.locator("#gallery-end")).to_have_text("That is all.")
    assert len({url for url in watched.urls if "pageToken=" in url}) == 1, "the second page by its token"

    page.get_by_role("button", name=re.compile("Open page filler 29")).click()
    page.locator("#detail").get_by_role("button", name="Delete").click()
    expect(page.locator("#detail")).to_be_hidden()
    expect(cards).to_have_count(24)
    remaining = api("GET", "/api/images/generations?user=scroller&pageSize=100").json()["results"]
    assert len(remaining) == 29 and "page filler 29" not in {g["prompt"] for g in remaining}

    page.get_by_role("button", name="Operations").click()
    row = page.locator("#models-table tr", has_text="editable")
    row.get_by_label("Edit model editable").click()
    row.get_by_label("Credits per image").fill("3")
    row.get_by_label("Images per user per day").fill("7")
    row.get_by_role("button", name="Save").click()
    expect(page.locator("#model-error")).to_have_text("")
    model = api("GET", "/api/models/editable").json()
    assert (model["pricePerImage"], model["userLimits"]["daily"]) == (3, 7)
    page.locator("#models-table tr", has_text="editable").get_by_role(
        "button", name="Remove model editable"
    ).click()
    expect(page.locator("#models-table")).not_to_contain_text("editable")
    assert api("GET", "/api/models/editable").status_code == 404
    assert watched.errors == []
    context.close()
