# The two commands: `make demo` runs the approval demo end to end; `make test` runs every test.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench clean chromium

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py approval_demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The browser tests drive Debian's Chromium (Playwright's own browser download is not used).
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "chromium could not be installed"

# PostgreSQL, Redis, Chromium and the package index are optional: what needs a missing one is
# skipped, with a message, unless ZART_REQUIRE_SERVICES=1 (.ci/run sets it): then a missing one
# fails the run, before any test runs. tests/services.py decides, here and in pytest. PYTEST_ARGS narrows both runs.
test: lint chromium
	@$(PY) -m tests.services postgres postgres-binaries redis chromium package-index || [ $$? -eq 2 ]
	ZART_DB=sqlite $(PY) -m pytest $(PYTEST_ARGS)
	@$(PY) -m tests.services postgres; case $$? in \
		0) ZART_DB=postgres $(PY) -m pytest $(PYTEST_ARGS) ;; \
		2) ;; \
		*) exit 1 ;; \
	esac

# The bench extra adds DBOS Transact, which the benchmarks run beside ours (skipped without it).
# BENCH_ARGS=--quick: the smoke run of a few minutes.
bench: $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev,bench]"
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var db.sqlite3 test-output build dist
