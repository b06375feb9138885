# finmon: the two quick-start commands are `make demo` and `make test`.
PY ?= python3
PIP_INSTALL = $(PY) -m pip install --disable-pip-version-check -q
SAMPLE = var/sample.jsonl
FEED_PORT ?= 8765
DEMO_FEEDS = [{"name": "demo-wire", "url": "http://127.0.0.1:$(FEED_PORT)/sample-feed.xml"}]

.PHONY: install demo test test-unit stack-up stack-down lint typecheck install-check audit bench lock

# Installs finmon and its locked dependencies. An already installed torch (CPU or CUDA build)
# in the accepted range is kept; pip's wheel cache makes a re-install quick.
install:
	$(PIP_INSTALL) -c constraints.txt -e '.[dev]'

# Runs the main job on the embedded default (SQLite): a generated sample feed, replayed through
# the real model into var/finmon.sqlite3, then the trend table. Then the feed path: an RSS
# file served on 127.0.0.1, polled once by `finmon ingest --once` (no Kafka needed), replayed,
# and the stories its syndicated headlines make (v_stories).
demo: install
	finmon sample $(SAMPLE)
	finmon replay $(SAMPLE) --quiet
	finmon trends --dimension ticker --window 1h --top 10
	finmon alerts --since 24h
	finmon sample --format rss --hours 1 --per-hour 60 --seed 8 var/sample-feed.xml
	$(PY) -m http.server --bind 127.0.0.1 --directory var $(FEED_PORT) >/dev/null 2>&1 & \
	  server=$$!; sleep 1; \
	  FINMON_INGEST__FEEDS='$(DEMO_FEEDS)' finmon ingest --once var/feed.jsonl; status=$$?; \
	  kill $$server; exit $$status
	finmon replay var/feed.jsonl --quiet
	$(PY) -c "import sqlite3; c = sqlite3.connect('var/finmon.sqlite3'); \
	  [print(n, '|', h) for h, n in c.execute('SELECT first_headline, n_items FROM v_stories \
	  WHERE n_items > 1 ORDER BY n_items DESC LIMIT 5')]"

# The whole test suite against the real stack (Kafka broker + PostgreSQL, started here).
test: install stack-up
	$(PY) -m pytest -q -ra

test-unit: install
	$(PY) -m pytest -q -ra -m "not stack"

stack-up:
	bash scripts/stack.sh up

stack-down:
	bash scripts/stack.sh down

lint:
	ruff check .
	ruff format --check .

# Types (mypy over finmon/, ingest/, monitor/, pipelines/, alerts/, bench/, harness/) and the architecture's import
# contracts (import-linter: layers, no cycles; see ARCHITECTURE.md).
typecheck:
	mypy
	lint-imports

# The wheel, installed into a fresh venv, run from an empty directory (scripts/install_check.sh).
install-check:
	PY=$(PY) bash scripts/install_check.sh

audit:
	PY=$(PY) bash scripts/audit.sh

bench: install stack-up
	$(PY) -m bench

# Regenerates constraints.txt from the current environment (torch and its CUDA wheels are left
# to the range in pyproject.toml, so an installed build is accepted).
lock:
	$(PY) scripts/lock.py constraints.txt
