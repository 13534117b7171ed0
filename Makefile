# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Everything lands in .venv; Debian packages are installed when missing (needs root, else it says which).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint setup bench clean

demo: setup
	$(PY) -m optilab.demo $(DEMO_ARGS)

# Tests run in PYTEST_WORKERS processes (pytest-xdist; 0 runs them in this one). Most of a test's
# time is spent waiting on a real peer (sshd, Prometheus' scrape and rule intervals, a broker
# restart), so 3 workers on the 2-core test machine finish in well under half the serial time;
# every test has its own ports, database and queue names, so they can run side by side.
PYTEST_WORKERS ?= 3

test: lint
	scripts/ensure-services.sh
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	scripts/mypy.sh $(VENV)/bin/mypy

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml scripts/install-system-deps.sh
	scripts/install-system-deps.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,demo]'
	touch $@

bench: setup
	$(PY) -m bench.run_all

clean:
	rm -rf $(VENV) var .pytest_cache
