# The two commands: `make run` serves everything on http://localhost:8000; `make test` passes the suite.
# Both install what they need first (a virtualenv in .venv, Node packages in node_modules).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed
NODE_STAMP := node_modules/.installed
export PORT ?= 8000

.PHONY: run test lint bench install install-dev clean migrate

run: $(RUN_STAMP) migrate  ## Serve API, docs and Socket.IO (embedded SQLite/in-process unless DATABASE_URL/REDIS_URL are set)
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

migrate: $(RUN_STAMP)
	$(BIN)/flask --app workspace:create_app db upgrade

test: $(DEV_STAMP) $(NODE_STAMP)  ## Lint, then the whole suite against real PostgreSQL and Redis, with coverage
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

install: $(RUN_STAMP)
install-dev: $(DEV_STAMP) $(NODE_STAMP)

$(RUN_STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(DEV_STAMP): $(RUN_STAMP) requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(NODE_STAMP): package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) node_modules .pytest_cache .coverage htmlcov
