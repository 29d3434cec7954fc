# Everything starts from here on a fresh clone with only Python 3.11+ and make.
#   make run    the whole stack on this machine (embedded PostgreSQL, no Docker)
#   make test   every test (unit, integration, end to end) against real servers
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ROLE ?= admin

.PHONY: help install gen run test test-conformance lint migrate token bench bench-payments bench-approve verify test-compose clean

help:
	@echo "make run | test | lint | migrate | token ROLE=admin|advertiser|publisher | verify"
	@echo "make bench | bench-payments | bench-approve | test-conformance | test-compose | clean"

# The venv is rebuilt when the pins change; pinned dependencies first, then
# the project itself without resolving anything again. The code is generated
# before the editable install: it maps the generated `adtech` package only if
# gen/ exists at that moment.
$(STAMP): requirements.lock pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; found " + sys.version.split()[0] + " (set PY=python3.11)")'
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python scripts/gen_protos.py
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

gen: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

run: gen
	$(BIN)/adtech run

# pytest's exit 5 means nothing was collected: a failure here, never a pass.
# The console's browser tests need Chromium: installed from apt when missing
# (as root), else they skip, saying why.
test: gen
	@sh scripts/ensure_chromium.sh
	@$(BIN)/python -m pytest -q; code=$$?; \
	if [ $$code -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$code

# The OpenAPI conformance test at full strength: 150 examples per operation
# and role (`make test` runs 20), against a stack of its own.
test-conformance: gen
	CONFORMANCE_EXAMPLES=150 $(BIN)/python -m pytest -q -m conformance tests/e2e

lint: gen
	cd protos && ../$(BIN)/buf lint

migrate: gen
	$(BIN)/adtech migrate

token: $(STAMP)
	@$(BIN)/adtech token --role $(ROLE)

bench: bench-payments bench-approve

bench-payments: gen
	$(BIN)/python scripts/bench_payments.py

bench-approve: gen
	$(BIN)/python scripts/bench_approve.py

verify: gen
	$(BIN)/adtech verify

# The stack of docker-compose.yml, tests/e2e and tests/compose against it.
# Prepares what the machine lacks (as root: Debian's docker.io, a dockerd of
# its own, Compose v2+, stand-in base images without a registry) and takes it
# away again: README "Docker", operations/docker_machine.py.
test-compose: gen
	$(BIN)/adtech test-compose

clean:
	rm -rf gen .pytest_cache .hypothesis bench-results *.egg-info
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
	@echo "kept .venv and .data (the database and generated secrets); remove them by hand to start over"
