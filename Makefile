# Everything runs from a project-local virtualenv that `make` creates or updates itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Node packages the tests use (axe-core injected by the browser tests, Node's oidc-provider for
# the sign-on tests), installed from the lock file when npm is present (without it those tests
# skip, except under CI where they fail).
NODE_STAMP := tests/node/node_modules/.installed
TEST_DEPS := $(STAMP) $(if $(shell command -v npm),$(NODE_STAMP))

# The test suite runs production-like settings (DEBUG off) over plain HTTP on loopback.
TEST_ENV := SECRET_KEY=test-only-secret-key ALLOWED_HOSTS=* SECURE_SSL_REDIRECT=false \
	SECURE_COOKIES=false AWS_REGIONS=us-east-1,eu-west-1,ap-southeast-2

.PHONY: demo test run lint format bench screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,simulator]'
	touch $(STAMP)

$(NODE_STAMP): tests/node/package.json tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

demo: $(STAMP)
	DEBUG=true $(BIN)/python manage.py demo

test: $(TEST_DEPS)
	$(TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS)

run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput
	$(BIN)/python manage.py run_fleet

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/collect.py --workers 300 --latency-ms 200
	$(BIN)/python bench/collect.py --workers 300 --latency-ms 200 --kind metrics
	$(BIN)/python bench/sse.py --clients 200 --workers 100 --per-client 50

# The README's screenshots, from the simulated fleet (docs/screenshots/; needs Chromium).
screenshots: $(STAMP)
	$(BIN)/python tools/screenshots.py

clean:
	rm -rf $(VENV) staticfiles db.sqlite3 .pytest_cache tests/node/node_modules
