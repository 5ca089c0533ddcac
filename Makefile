# Every target starts with `install`, so a fresh clone needs nothing but Python 3.11, 3.12 or 3.13.
# PYTHON: the newest of python3.13, python3.12 and python3.11 on PATH that runs (the pyenv shim of a
# version pyenv has not selected is on PATH but does not run), unless set: `make PYTHON=python3.11`.
# VENV: where the virtualenv goes; `make PYTHON=python3.12 VENV=/tmp/venv312 test-unit` keeps a
# second one beside .venv.
PYTHON ?= $(firstword $(foreach python,python3.13 python3.12 python3.11,$(shell $(python) -c '' >/dev/null 2>&1 && echo $(python))) python3.11)
VENV ?= .venv
BIN := $(VENV)/bin
# No usage tracking: the report sends nothing out, and an unreachable host would only slow dbt.
export DO_NOT_TRACK := 1

.PHONY: install demo test test-unit lint format docs bench bench-smoke clean

install: $(VENV)/.installed profiles.yml

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,demo]'
	touch $@

profiles.yml:
	cp profiles.example.yml profiles.yml

demo: install
	$(BIN)/python -m demo $(DEMO_ARGS)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The unit tier needs no database and takes seconds: in one process, without xdist's workers.
test-unit: install
	$(BIN)/python -m pytest tests/unit --numprocesses=0 $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check runner tests bench demo crm_data
	$(BIN)/ruff format --check runner tests bench demo crm_data
	$(BIN)/mypy --cache-dir $(VENV)/.mypy_cache
	$(BIN)/sqlfluff lint models tests/dbt

format: install
	$(BIN)/ruff check --fix runner tests bench demo crm_data
	$(BIN)/ruff format runner tests bench demo crm_data
	$(BIN)/sqlfluff fix models

# Without a reachable PostgreSQL the catalog (column types) stays empty; descriptions and lineage
# come from the project alone.
docs: install
	$(BIN)/dbt docs generate || { $(BIN)/dbt parse && $(BIN)/dbt docs generate --no-compile --empty-catalog; }
	$(BIN)/dbt docs serve --host 127.0.0.1 --port 8080

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-smoke: install
	$(BIN)/python -m bench --smoke $(BENCH_ARGS)

clean:
	rm -rf target logs .pytest_cache .ruff_cache
