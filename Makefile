# The two set-up commands of bitscout (see README.md):
#   make demo   - install into .venv, train the default digits model if needed, run the default search
#   make test   - install into .venv with the dev extras and run the whole test suite
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
DEMO_CONFIG := configs/digits.toml

.PHONY: demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when pyproject.toml changes; the stamp files record what was installed.
$(VENV)/.stamp-base: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.stamp-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.stamp-base

demo: $(VENV)/.stamp-base
	$(BIN)/bitscout train $(DEMO_CONFIG) --if-missing
	$(BIN)/bitscout search $(DEMO_CONFIG)

test: $(VENV)/.stamp-dev
	bash scripts/test.sh

clean:
	rm -rf $(VENV) runs .pytest_cache
