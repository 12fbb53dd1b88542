# The two commands: `make run` serves everything on http://localhost:8000; `make test` passes the suite.
# Both install what they need first (a virtualenv in .venv, Node packages in js/node_modules).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed
NODE_STAMP := js/node_modules/.installed
export PORT ?= 8000

.PHONY: run test check docs lint bench bench-rest bench-abuse bench-realtime bench-jobs bench-observability install install-dev clean migrate

run: $(RUN_STAMP) migrate  ## Serve API, docs and Socket.IO (embedded SQLite/in-process unless DATABASE_URL/REDIS_URL are set)
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

migrate: $(RUN_STAMP)
	$(BIN)/flask --app workspace:create_app db upgrade

# Coverage is a property of the whole suite, so it is asked for here and not in pytest's addopts:
# a single test file (`.venv/bin/pytest tests/api/test_files.py`) runs on its own without failing on coverage.
COVERAGE := --cov=workspace --cov=config --cov-branch --cov-report=term-missing:skip-covered --cov-fail-under=90

test: $(DEV_STAMP) $(NODE_STAMP)  ## Lint, then every tier against real PostgreSQL and Redis, with line+branch coverage
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest $(COVERAGE) tests

check: $(DEV_STAMP)  ## The edit loop, under a minute: lint, the layers (.importlinter) and the unit tier (no services needed)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest -q tests/unit

docs: $(RUN_STAMP)  ## Regenerate docs/configuration.md from config.py and gunicorn.conf.py
	$(BIN)/python tools/configuration_doc.py

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

bench-rest: $(DEV_STAMP)  ## /healthz, project list, /auth/me vs a bare Flask peer under the same worker (wrk: apt-get install -y wrk)
	flock /tmp/workspace-bench.lock $(BIN)/python bench/rest_api.py $(ARGS)

bench-abuse: $(DEV_STAMP)  ## Issue 13's abuse mix (3 MiB frames, bad logins, a cursor flood): /healthz latency, another member's FILE_CHANGE acks
	flock /tmp/workspace-bench.lock $(BIN)/python bench/abuse.py $(ARGS)

bench-realtime: $(DEV_STAMP) $(NODE_STAMP)  ## Socket.IO fan-out vs a Node socket.io reference, idle capacity (bench/realtime.py)
	flock /tmp/workspace-bench.lock $(BIN)/python bench/realtime.py

bench-jobs: $(DEV_STAMP)  ## echo jobs/min per worker (fork vs simple, with bare RQ beside), POST /jobs/run latency, submit → JOB_UPDATE
	flock /tmp/workspace-bench.lock $(BIN)/python bench/jobs.py

bench-observability: $(DEV_STAMP)  ## per-request cost of request ids + JSON access log + metrics; /metrics scrape time vs jobs
	flock /tmp/workspace-bench.lock $(BIN)/python bench/observability.py

.PHONY: bundle bench-coedit
bundle: $(NODE_STAMP)  ## Rebuild the web client's co-editor (js/editor/ -> workspace/web/static/dist/editor.js); commit the result
	npm --prefix js run build

bench-coedit: $(DEV_STAMP) $(NODE_STAMP)  ## Keystroke-to-remote latency, 2 and 50 editors, vs the npm y-socket.io server; load before/after compaction
	flock /tmp/workspace-bench.lock $(BIN)/python bench/coedit.py

install: $(RUN_STAMP)
install-dev: $(DEV_STAMP) $(NODE_STAMP)

$(RUN_STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(DEV_STAMP): $(RUN_STAMP) requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(NODE_STAMP): js/package.json js/package-lock.json
	npm --prefix js ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) js/node_modules .pytest_cache .coverage htmlcov
