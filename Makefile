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
		|| echo "chromium could not be installed: the browser tests will skip"

test: lint chromium
	ZART_DB=sqlite $(PY) -m pytest
	@if $(PY) -m tests.services postgres; then \
		ZART_DB=postgres $(PY) -m pytest; \
	else \
		echo "SKIPPED: the PostgreSQL run: no server at 127.0.0.1:5432 (user postgres)."; \
	fi

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) var db.sqlite3 test-output
