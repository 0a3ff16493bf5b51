# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?=
# make run UPSTREAM=http://localhost:11434/v1 ARGS="--capture-content --port 9000"
UPSTREAM ?=
ARGS ?=

.PHONY: run test soak bench train-detector eval-security mutation lint typecheck clean \
	chromium redis-server postgresql

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# PYTHONWARNINGS: setuptools' editable install of a renamed package (processors/ ->
# llmtrace_processors, pyproject.toml) prints an information-only notice on every install.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/llmtrace-otel serve $(if $(CONFIG),--config $(CONFIG),) \
	  $(if $(UPSTREAM),--upstream-url $(UPSTREAM),) $(ARGS)

# The tenancy tests start their own redis-server (tests/tenancy/conftest.py); install it
# when missing and we may (root, Debian). Without it those tests skip with the reason.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's redis-server for the tenancy tests"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; } \
	      || echo "could not install redis-server: the Redis tests will skip"; \
	  else echo "redis-server missing (not root or no apt-get): Redis tests will skip"; fi; }

# The PostgreSQL store's tests start their own throw-away cluster from Debian's server binaries
# (/usr/lib/postgresql/<version>/bin; tests/support/postgres_server.py): install them when
# missing and we may (root, Debian). No system service is started or needed.
postgresql:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || command -v postgres >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's postgresql for the PostgreSQL store's tests"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; } \
	      || echo "could not install postgresql: the PostgreSQL tests will skip"; \
	  else echo "postgresql missing (not root or no apt-get): PostgreSQL tests will skip"; fi; }

# The train extra too: a test retrains the injection classifier and compares it with the
# shipped artifact (tests/processors/security/test_classifier.py). Random order
# (pytest-randomly); the seed is printed at the end. Replay a run's order with
# `make test PYTEST_ARGS=--randomly-seed=N` (docs/testing.md).
PYTEST_ARGS ?=
test: $(VENV)/.installed-train | chromium redis-server postgresql
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The viewer's browser tests drive Debian's Chromium. Installed here (as root, when missing)
# so a clean CI machine has it; elsewhere the tests skip and say why.
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the viewer's browser tests"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
	    || echo "could not install chromium: the browser tests will skip"; \
	else echo "chromium not installed and not root: the browser tests will skip"; fi

# The fault-injection and soak suite at full size (docs/reliability.md); `make test` runs it
# reduced. RELIABILITY_REPORT=FILE also writes the soak figures there as JSON.
soak: $(VENV)/.installed-dev
	RELIABILITY_FULL=1 $(BIN)/python -m pytest -q -s tests/reliability

# make bench BENCH_ARGS="--workers 1 --workers 2" (bench/README.md lists the options);
# STORAGE_URL=postgresql://... (or BENCH_ARGS=--postgres: a throw-away local server) measures
# the proxy with the PostgreSQL span store; stored spans are counted there.
BENCH_ARGS ?=
bench: $(VENV)/.installed-dev
	$(BIN)/python bench/run.py $(if $(STORAGE_URL),--storage-url $(STORAGE_URL),) $(BENCH_ARGS)

$(VENV)/.installed-train: pyproject.toml | $(BIN)/python
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet -e '.[dev,train]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-dev

# Trains the learned injection classifier on ../shared/datasets (fixed seed) and writes
# processors/security/models/injection-linear-v1.json.gz (docs/security.md).
train-detector: $(VENV)/.installed-train
	$(BIN)/python bench/train_detector.py

# Scores the security detectors on ../shared/datasets (rules, model and both, leave one
# dataset out) and writes the tables into docs/security.md.
eval-security: $(VENV)/.installed-train
	$(BIN)/python bench/security_eval.py --write-docs

# Mutation testing of pricing, limits, budgets, PII validation, redaction and enforcement
# (docs/testing.md); not part of `make test` (tens of minutes). MUTATION_ARGS, e.g.
# `--module limiter` for one module, `--list` to see the mutants.
MUTATION_ARGS ?=
mutation: $(VENV)/.installed-dev
	$(BIN)/python tools/mutation.py $(MUTATION_ARGS)

# ruff, and the import contract: one-way arrows between the parts (tests/test_import_contract.py).
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check llmtrace_otel processors tests bench tools
	$(BIN)/python -m pytest -q -p no:randomly tests/test_import_contract.py

# mypy does not follow setuptools' package-dir: show it processors/ under its import name.
typecheck: $(VENV)/.installed-dev
	@mkdir -p .typecheck && ln -sfn ../processors .typecheck/llmtrace_processors
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .typecheck build *.egg-info
