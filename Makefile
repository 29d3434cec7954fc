PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install gen test lint run

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

gen: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

test: gen
	$(BIN)/python -m pytest -q

lint: gen
	cd protos && ../$(BIN)/buf lint
