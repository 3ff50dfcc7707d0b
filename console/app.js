// The imagegen console: talks only to the public REST API of the origin that served it, with the key
// its user pasted (kept in sessionStorage, sent only as an Authorization header).

const KEY_ITEM = "imagegen.key";
const PAGE_SIZE = 24;
const $ = (selector) => document.querySelector(selector);

// -- the API ------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
  }
}

function key() {
  return sessionStorage.getItem(KEY_ITEM) || "";
}

async function api(method, path, body, headers = {}) {
  const init = { method, headers: { Authorization: `Bearer ${key()}`, ...headers } };
  if (body instanceof Blob) {
    init.body = body;
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const answer = await fetch(path, init);
  const text = await answer.text();
  const parsed = text ? JSON.parse(text) : {};
  if (!answer.ok) throw new ApiError(answer.status, parsed);
  return parsed;
}

// Server-sent events with a header (EventSource cannot send one): one generation per `data:` line.
async function watch(id, onEvent, signal) {
  const answer = await fetch(`/api/images/generations/${encodeURIComponent(id)}:watch?previews=true`, {
    headers: { Authorization: `Bearer ${key()}` },
    signal,
  });
  if (!answer.ok) throw new ApiError(answer.status, await answer.json().catch(() => ({})));
  const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += value;
    let end;
    while ((end = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, end).trim();
      buffered = buffered.slice(end + 1);
      if (line.startsWith("data: ")) onEvent(JSON.parse(line.slice(6)));
    }
  }
}

// -- small DOM helpers -------------------------------------------------------------------------------

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function when(timestamp) {
  return timestamp ? new Date(timestamp).toLocaleString() : "—";
}

function thumbnail(image) {
  const variant = (image.variants || [])[0];
  return variant ? variant.url : image.url;
}

// -- who is signed in --------------------------------------------------------------------------------

const session = { kind: "", admin: false };

async function signIn(candidate) {
  sessionStorage.setItem(KEY_ITEM, candidate);
  try {
    const caller = await api("GET", "/api/caller");
    session.kind = caller.kind;
    session.admin = caller.admin;
  } catch (error) {
    sessionStorage.removeItem(KEY_ITEM);
    throw error;
  }
}

function showSignedIn() {
  $("#sign-in").hidden = true;
  $("#nav").hidden = false;
  $("#sign-out").hidden = false;
  $("#who").textContent =
    session.kind === "publishable" ? "Signed in with a publishable key: one user's images" : session.admin ? "Signed in with an admin key" : "Signed in with a secret key";
  for (const button of document.querySelectorAll("nav button")) {
    const needs = button.dataset.needs;
    button.hidden = (needs === "secret" && session.kind !== "secret") || (needs === "admin" && !session.admin);
  }
  $("#filter-user").closest("label").hidden = session.kind === "publishable";
  show("gallery");
}

function show(section) {
  for (const name of ["gallery", "create", "operations", "admin"]) {
    $(`#${name}`).hidden = name !== section;
  }
  for (const button of document.querySelectorAll("nav button")) {
    if (button.dataset.section === section) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  if (section === "gallery") gallery.reload();
  if (section === "create") loadModelNames();
  if (section === "operations") operations.load();
  if (section === "admin") admin.load();
}

// -- gallery -----------------------------------------------------------------------------------------

const gallery = {
  nextToken: "",
  loading: false,
  done: false,

  query() {
    const form = new FormData($("#filters"));
    const params = new URLSearchParams({ pageSize: String(PAGE_SIZE) });
    for (const name of ["user", "model", "status"]) {
      const value = String(form.get(name) || "").trim();
      if (value && !(name === "user" && session.kind === "publishable")) params.set(name, value);
    }
    if (this.nextToken) params.set("pageToken", this.nextToken);
    return params;
  },

  reload() {
    this.nextToken = "";
    this.done = false;
    $("#grid").replaceChildren();
    $("#gallery-end").textContent = "";
    this.more();
  },

  async more() {
    if (this.loading || this.done) return;
    this.loading = true;
    try {
      const page = await api("GET", `/api/images/generations?${this.query()}`);
      for (const generation of page.results) $("#grid").append(card(generation));
      this.nextToken = page.pagination.nextPageToken;
      this.done = !this.nextToken;
      if (this.done) $("#gallery-end").textContent = $("#grid").children.length ? "That is all." : "No generations yet.";
    } catch (error) {
      $("#gallery-end").textContent = error.message;
    } finally {
      this.loading = false;
    }
  },
};

function card(generation) {
  const first = generation.outputImages[0];
  const label = `${generation.prompt || generation.id} (${generation.status})`;
  return el(
    "li",
    {},
    el(
      "button",
      { type: "button", "aria-label": `Open ${label}`, "data-id": generation.id, onclick: () => openDetail(generation.id) },
      first ? el("img", { src: thumbnail(first), alt: generation.prompt || "generated image", loading: "lazy" }) : el("img", { alt: "" }),
      el("span", { class: "caption" }, el("span", { class: "badge", text: generation.status }), " ", generation.prompt || generation.id),
    ),
  );
}

// -- detail ------------------------------------------------------------------------------------------

async function openDetail(id) {
  const dialog = $("#detail");
  const body = $("#detail-body");
  body.replaceChildren(el("p", { text: "Loading…" }));
  if (!dialog.open) dialog.showModal();
  try {
    renderDetail(await api("GET", `/api/images/generations/${encodeURIComponent(id)}`));
  } catch (error) {
    body.replaceChildren(el("p", { class: "error", role: "alert", text: error.message }));
  }
}

function renderDetail(g) {
  const secret = session.kind === "secret";
  const facts = [
    ["Status", g.status + (g.reason ? `: ${g.reason}` : "")],
    ["Prompt", g.prompt],
    ["Negative prompt", g.negativePrompt],
    ["Model", g.model],
    ["User", g.user],
    ["Size", g.width && g.height ? `${g.width}×${g.height}` : "the server's choice"],
    ["Seed", g.seed],
    ["Queue position", g.queuePosition],
    ["Progress", g.progress !== undefined ? `${Math.round(g.progress * 100)}%` : undefined],
    ["Created", when(g.createdAt)],
    ["Started", when(g.startedAt)],
    ["Finished", when(g.completedAt)],
  ].filter(([, value]) => value !== undefined && value !== "");
  const body = $("#detail-body");
  $("#detail-title").textContent = `Generation ${g.id}`;
  const parts = [
    el("dl", {}, facts.map(([name, value]) => [el("dt", { text: name }), el("dd", { text: String(value) })])),
    g.input ? [el("h3", { text: "Model parameters" }), el("pre", { text: JSON.stringify(JSON.parse(g.input), null, 2) })] : null,
    g.inputImages.length
      ? [el("h3", { text: "Input images" }), el("ul", { class: "grid" }, g.inputImages.map((image) => el("li", {}, el("img", { src: image.url, alt: `input ${image.role}` }))))]
      : null,
    g.outputImages.length ? el("h3", { text: "Images" }) : null,
    el(
      "ul",
      { class: "grid" },
      g.outputImages.map((image, index) =>
        el(
          "li",
          {},
          el("a", { href: image.url, target: "_blank", rel: "noopener" }, el("img", { src: thumbnail(image), alt: `image ${index + 1} of ${g.id}` })),
          image.permanentUrl ? el("a", { href: image.permanentUrl, class: "hint", text: "permanent URL" }) : null,
          image.arweave ? el("span", { class: "hint", text: ` Arweave: ${image.arweave.state}` }) : null,
        ),
      ),
    ),
    el(
      "div",
      { class: "row" },
      g.outputImages.length && secret ? el("button", { type: "button", onclick: () => showProvenance(g.id), text: "Provenance" }) : null,
      ["pending", "processing"].includes(g.status) && secret
        ? el("button", { type: "button", onclick: () => act("POST", `/api/images/generations/${g.id}:cancel`, {}, g.id), text: "Cancel" })
        : null,
      secret ? el("button", { type: "button", onclick: () => remove(g.id), text: "Delete" }) : null,
    ),
    el("div", { id: "provenance", "aria-live": "polite" }),
  ];
  body.replaceChildren(...parts.flat().filter((part) => part));
}

async function act(method, path, body, id) {
  try {
    await api(method, path, body);
    await openDetail(id);
    gallery.reload();
  } catch (error) {
    $("#provenance").textContent = error.message;
  }
}

async function remove(id) {
  try {
    await api("DELETE", `/api/images/generations/${encodeURIComponent(id)}`);
    $("#detail").close();
    gallery.reload();
  } catch (error) {
    $("#provenance").textContent = error.message;
  }
}

async function showProvenance(id) {
  const target = $("#provenance");
  target.textContent = "Verifying…";
  try {
    const answer = await api("GET", `/api/images/generations/${encodeURIComponent(id)}/provenance`);
    target.replaceChildren(
      el("h3", { text: "Provenance" }),
      el(
        "table",
        {},
        el("thead", {}, el("tr", {}, ["Image", "State", "Signer", "Action"].map((name) => el("th", { scope: "col", text: name })))),
        el(
          "tbody",
          {},
          answer.images.map((image, index) => {
            const store = image.manifestStore || {};
            const manifest = (store.manifests || {})[store.active_manifest] || {};
            const actions = (manifest.assertions || []).filter((a) => a.label === "c2pa.actions.v2").flatMap((a) => a.data.actions);
            return el(
              "tr",
              {},
              el("td", { text: String(index + 1) }),
              el("td", { text: image.validationState, title: image.message }),
              el("td", { text: (image.signer && image.signer.commonName) || "—" }),
              el("td", { text: actions.map((a) => a.action).join(", ") || "—" }),
            );
          }),
        ),
      ),
    );
  } catch (error) {
    target.textContent = error.message;
  }
}

// -- create ------------------------------------------------------------------------------------------

async function loadModelNames() {
  if (session.kind !== "secret") return;
  try {
    const { models } = await api("GET", "/api/models");
    $("#models").replaceChildren(...models.map((model) => el("option", { value: model.name })));
  } catch {
    // The name can still be typed.
  }
}

let running = null;

async function create(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const error = $("#create-error");
  error.textContent = "";
  const body = { async: true };
  const text = (name) => String(form.get(name) || "").trim();
  if (text("prompt")) body.prompt = text("prompt");
  if (text("model")) body.model = text("model");
  for (const name of ["width", "height", "n", "seed"]) if (text(name)) body[name] = Number(text(name));
  try {
    if (text("native")) body.input = JSON.parse(text("native"));
  } catch {
    error.textContent = "Model parameters must be a JSON object.";
    return;
  }
  try {
    const file = form.get("inputFile");
    if (file && file.size) {
      const upload = await api("POST", "/api/uploads", file, { "Content-Type": file.type || "application/octet-stream" });
      body.inputImages = [upload.id];
    } else if (text("inputUrl")) {
      body.inputImages = [text("inputUrl")];
    }
    if (body.inputImages && !form.get("width")) delete body.width;
    const generation = await api("POST", "/api/images/generations", body);
    follow(generation);
  } catch (failure) {
    error.textContent = failure.message;
  }
}

function follow(generation) {
  if (running) running.abort();
  running = new AbortController();
  $("#job").hidden = false;
  $("#job-images").replaceChildren();
  $("#job-preview").hidden = true;
  $("#job-progress").value = 0;
  const update = (g) => {
    let status = `${g.id}: ${g.status}`;
    if (g.queuePosition !== undefined) status += ` — ${g.queuePosition} ahead in the queue`;
    if (g.progress !== undefined) status += ` — ${Math.round(g.progress * 100)}%` + (g.steps ? ` (step ${g.step} of ${g.steps})` : "");
    if (g.reason) status += ` — ${g.reason}`;
    $("#job-status").textContent = status;
    if (g.progress !== undefined) $("#job-progress").value = g.progress;
    if (g.status === "completed") $("#job-progress").value = 1;
    if (g.preview) {
      $("#job-preview").src = g.preview;
      $("#job-preview").hidden = false;
    }
    if (g.outputImages.length) {
      $("#job-preview").hidden = true;
      $("#job-images").replaceChildren(
        ...g.outputImages.map((image, index) =>
          el("li", {}, el("a", { href: image.url, target: "_blank", rel: "noopener" }, el("img", { src: thumbnail(image), alt: `image ${index + 1} of ${g.id}` }))),
        ),
      );
    }
  };
  update(generation);
  watch(generation.id, update, running.signal).catch((error) => {
    if (error.name !== "AbortError") $("#create-error").textContent = error.message;
  });
}

// -- operations --------------------------------------------------------------------------------------

const operations = {
  async load() {
    await Promise.all([this.models(), this.queue(), this.usage()]);
  },

  async models() {
    const { models } = await api("GET", "/api/models");
    $("#models-table tbody").replaceChildren(
      ...models.map((model) =>
        el(
          "tr",
          {},
          el("th", { scope: "row", text: model.name }),
          el("td", { text: model.provider }),
          el(
            "td",
            {},
            el(
              "ul",
              {},
              model.servers.map((server) =>
                el("li", { text: `${server.url} — ${server.status}, ${server.outstanding} running of ${server.maxConcurrency}${server.lastError ? `, last error: ${server.lastError}` : ""}` }),
              ),
            ),
          ),
          el(
            "td",
            {},
            el(
              "details",
              {},
              el("summary", { "aria-label": `Edit model ${model.name}`, text: "Edit" }),
              el(
                "form",
                { class: "stack", onsubmit: (event) => this.editModel(event, model.name) },
                el("label", {}, "Credits per image", el("input", { name: "price", type: "number", min: "0", value: String(model.pricePerImage || 0) })),
                el("label", {}, "Images per user per day", el("input", { name: "daily", type: "number", min: "0", value: model.userLimits.daily ?? "" })),
                el("label", {}, "Images per user per month", el("input", { name: "monthly", type: "number", min: "0", value: model.userLimits.monthly ?? "" })),
                el("button", { type: "submit", text: "Save" }),
              ),
            ),
            model.name === "procedural" ? null : el("button", { type: "button", "aria-label": `Remove model ${model.name}`, onclick: () => this.removeModel(model.name), text: "Remove" }),
          ),
        ),
      ),
    );
  },

  async editModel(event, name) {
    event.preventDefault();
    const form = new FormData(event.target);
    const limit = (field) => (String(form.get(field)).trim() === "" ? undefined : Number(form.get(field)));
    try {
      await api("PATCH", `/api/models/${encodeURIComponent(name)}`, {
        pricePerImage: Number(form.get("price") || 0),
        userLimits: { daily: limit("daily"), monthly: limit("monthly") },
      });
      $("#model-error").textContent = "";
      await this.models();
    } catch (error) {
      $("#model-error").textContent = error.message;
    }
  },

  async removeModel(name) {
    await api("DELETE", `/api/models/${encodeURIComponent(name)}`);
    await this.models();
  },

  async addModel(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    try {
      await api("POST", "/api/models", {
        name: form.get("name"),
        provider: form.get("provider"),
        upstreamModel: form.get("upstreamModel"),
        servers: [{ url: form.get("url"), maxConcurrency: Number(form.get("maxConcurrency")) }],
      });
      event.target.reset();
      $("#model-error").textContent = "";
      await this.models();
    } catch (error) {
      $("#model-error").textContent = error.message;
    }
  },

  async queue() {
    const { lines } = await api("GET", "/api/queue");
    $("#queue-table tbody").replaceChildren(
      ...(lines.length
        ? lines.map((line) =>
            el("tr", {}, el("th", { scope: "row", text: line.model }), el("td", { text: line.priority }), el("td", { text: String(line.pending) }), el("td", { text: String(line.processing) }), el("td", { text: when(line.oldestPendingAt) })),
          )
        : [el("tr", {}, el("td", { colspan: "5", text: "Nothing waits or runs." }))]),
    );
  },

  async usage(event) {
    if (event) event.preventDefault();
    const form = new FormData($("#usage-form"));
    const params = new URLSearchParams();
    for (const name of ["model", "user"]) if (String(form.get(name) || "").trim()) params.set(name, String(form.get(name)).trim());
    const usage = await api("GET", `/api/usage?${params}`);
    $("#usage-chart").replaceChildren(chart(usage), el("figcaption", { class: "hint", text: `${usage.totals.images} images, ${usage.totals.failed} failed, ${usage.from} to ${usage.to}` }));
  },
};

function chart(usage) {
  const svg = "http://www.w3.org/2000/svg";
  const node = (tag, attributes) => {
    const made = document.createElementNS(svg, tag);
    for (const [name, value] of Object.entries(attributes)) made.setAttribute(name, String(value));
    return made;
  };
  const days = usage.days;
  const width = Math.max(240, days.length * 24);
  const most = Math.max(1, ...days.map((d) => d.images + d.failed));
  const root = node("svg", { class: "bars", width, height: 140, role: "img", "aria-label": `Images per day: ${days.map((d) => `${d.date} ${d.images}`).join(", ") || "none"}` });
  days.forEach((day, index) => {
    const x = index * 24 + 4;
    const imagesHeight = (day.images / most) * 110;
    const failedHeight = (day.failed / most) * 110;
    root.append(node("rect", { class: "images", x, y: 120 - imagesHeight, width: 16, height: imagesHeight }));
    root.append(node("rect", { class: "failed", x, y: 120 - imagesHeight - failedHeight, width: 16, height: failedHeight }));
    const label = node("text", { x, y: 136 });
    label.textContent = day.date.slice(5);
    root.append(label);
  });
  return root;
}

// -- projects and keys (admin keys) ------------------------------------------------------------------

const admin = {
  async load() {
    const { projects } = await api("GET", "/api/projects");
    $("#projects").replaceChildren(...(await Promise.all(projects.map((project) => this.project(project)))));
  },

  async project(project) {
    const { keys } = await api("GET", `/api/projects/${encodeURIComponent(project.id)}/keys`);
    const form = el(
      "form",
      { class: "row", onsubmit: (event) => this.createKey(event, project.id) },
      el("label", {}, "Key name", el("input", { name: "name", required: true })),
      el("label", {}, "Kind", el("select", { name: "kind" }, el("option", { text: "secret" }), el("option", { text: "publishable" }))),
      el("label", {}, "User (publishable keys)", el("input", { name: "user" })),
      el("button", { type: "submit", text: "Create key" }),
    );
    return el(
      "li",
      {},
      el("h3", { text: `${project.name} (${project.id})` }),
      el(
        "table",
        {},
        el("thead", {}, el("tr", {}, ["Key", "Kind", "User", "Created", ""].map((name) => el("th", { scope: "col", text: name })))),
        el(
          "tbody",
          {},
          keys.map((k) =>
            el(
              "tr",
              {},
              el("th", { scope: "row", text: `${k.name} ${k.hint}` }),
              el("td", { text: k.kind }),
              el("td", { text: k.user || "—" }),
              el("td", { text: when(k.createdAt) }),
              el("td", {}, k.revokedAt ? el("span", { text: `revoked ${when(k.revokedAt)}` }) : el("button", { type: "button", "aria-label": `Revoke key ${k.name}`, onclick: () => this.revoke(k.id), text: "Revoke" })),
            ),
          ),
        ),
      ),
      form,
    );
  },

  async createKey(event, projectId) {
    event.preventDefault();
    const form = new FormData(event.target);
    const body = { name: form.get("name"), kind: form.get("kind") };
    if (body.kind === "publishable") body.user = form.get("user");
    try {
      const created = await api("POST", `/api/projects/${encodeURIComponent(projectId)}/keys`, body);
      $("#new-key").textContent = `New key (shown once, copy it now): ${created.key}`;
      await this.load();
    } catch (error) {
      $("#new-key").textContent = error.message;
    }
  },

  async revoke(id) {
    await api("DELETE", `/api/keys/${encodeURIComponent(id)}`);
    await this.load();
  },
};

// -- wiring ------------------------------------------------------------------------------------------

function start() {
  $("#sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("#sign-in-error").textContent = "";
    try {
      await signIn($("#key").value.trim());
      $("#key").value = "";
      showSignedIn();
    } catch (error) {
      $("#sign-in-error").textContent = error.status === 401 ? "That key is not valid." : error.message;
    }
  });
  $("#sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_ITEM);
    location.reload();
  });
  for (const button of document.querySelectorAll("nav button")) button.addEventListener("click", () => show(button.dataset.section));
  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    gallery.reload();
  });
  $("#create-form").addEventListener("submit", create);
  $("#model-form").addEventListener("submit", (event) => operations.addModel(event));
  $("#usage-form").addEventListener("submit", (event) => operations.usage(event));
  new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting) && !$("#gallery").hidden) gallery.more();
  }).observe($("#more"));
  if (key()) {
    signIn(key()).then(showSignedIn, () => sessionStorage.removeItem(KEY_ITEM));
  }
}

start();
