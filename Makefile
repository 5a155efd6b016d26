# The two commands a fresh machine needs (see README.md):
#   make serve   run minisentry on the embedded default config (minisentry.toml)
#   make test    install everything, start a real Redis and Kafka, run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve test venv clean

$(BIN)/minisentry: pyproject.toml plugins/minisentry-deploys/pyproject.toml plugins/minisentry-jsonl-archive/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,kafka,redis]'
	# The example plugins (plugins/): installed like any third-party plugin, tested with the rest.
	$(BIN)/pip install --quiet -e plugins/minisentry-deploys -e plugins/minisentry-jsonl-archive
	touch $@

venv: $(BIN)/minisentry

serve: venv
	$(BIN)/minisentry --config minisentry.toml serve

test: venv
	PYTHON=$(BIN)/python bash scripts/test.sh

clean:
	rm -rf $(VENV) .services data .pytest_cache .hypothesis
