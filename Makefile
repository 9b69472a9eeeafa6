# The README's two commands: `make demo` and `make test`.  Both create and use
# .venv/ when it is missing and install the project into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test check bench soak venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@# The MySQL/MariaDB warehouse's driver (mysqlclient) compiles against MariaDB's client headers:
	@# installed here when we may (root, apt), else the MariaDB legs of the tests are skipped.
	command -v mariadb_config >/dev/null || command -v mysql_config >/dev/null || \
		{ test "$$(id -u)" = 0 && command -v apt-get >/dev/null && apt-get update -qq && \
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libmariadb-dev pkg-config; } || true
	$(PY) -m pip install --quiet -e '.[mysql]' || \
		echo "mysqlclient could not be built (no libmariadb-dev): the MariaDB warehouse tests will be skipped"
	touch $(STAMP)

LINTED := plugins dags bench tests scripts

# Lint, format and type checks: cheap, so they run before the suite and fail it first.
check: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy

# The suite on as many workers as cores, at most 4, one test file per worker at a time (files share
# module fixtures: a migrated Airflow home, an api-server).  PYTEST_ARGS="-n 0" runs it in one process.
PYTEST_ARGS ?= -n auto --maxprocesses 4 --dist loadfile

test: check
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) scripts/demo.py

# The benchmarks, each against its naive baseline (bench/loadgen.py, memory.py and sandbox_load.py
# are their helpers, not benchmarks).  The long seeded soak has its own target: it takes hours.
BENCHMARKS := send ingest status_cycle pushes campaign_start dag_parse

bench: $(STAMP)
	@for b in $(BENCHMARKS); do echo "== bench/$$b.py"; $(PY) bench/$$b.py || exit 1; done

soak: $(STAMP)
	$(PY) bench/campaign_soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .demo
