# golive: `make run` starts a server, `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# The watch page's vendored hls.js (scripts/build-web.sh, from package-lock.json).
WEB_VENDOR = src/golive/web/static/vendor/hls.min.js

.PHONY: run test lint typecheck bench clean system-deps web dist

# Every machine installs the same versions: requirements.lock (with hashes) pins the
# dependencies of pyproject.toml and its test extra, requirements-serve.lock the same
# versions without the test extra (what a node installs: deploy/). After changing them,
# regenerate both (the second keeps the first's versions: it starts from a copy):
#   $(BIN)/pip install uv && $(BIN)/uv pip compile pyproject.toml --extra test \
#     --universal --python-version 3.11 --generate-hashes -o requirements.lock
#   cp requirements.lock requirements-serve.lock && $(BIN)/uv pip compile pyproject.toml \
#     --universal --python-version 3.11 --generate-hashes -o requirements-serve.lock
# (Debian's python3 makes no venv without its python3-venv package: installed if it fails.)
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/pip || $(PYTHON) -m venv $(VENV) \
	  || { bash scripts/apt-install.sh python3-venv && $(PYTHON) -m venv --clear $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

$(WEB_VENDOR): package-lock.json scripts/build-web.sh
	bash scripts/build-web.sh

web: $(WEB_VENDOR)

system-deps:
	bash scripts/install-system-deps.sh

run: $(STAMP) web
	$(BIN)/golive serve

test: $(STAMP) system-deps web
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q -n 2 -m "not serial" --durations=25
	$(BIN)/pytest -q -m serial

# A wheel and an sdist for installing a node elsewhere (deploy/systemd), with the watch
# page's hls.js in them: dist/golive-VERSION-py3-none-any.whl.
dist: $(STAMP) web
	$(BIN)/python -m build --no-isolation --wheel --sdist --outdir dist .

bench: $(STAMP) system-deps
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache node_modules src/golive/web/static/vendor
