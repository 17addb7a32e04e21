# The two commands of the README: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3.10
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint constraints clean

install: $(STAMP)

# Re-install when the pins or the package metadata change.
# uv installs the same pinned set as pip (pip freeze equal but for uv itself) in 31.6 s against pip's
# 4-6 min on 2 cores (issue 35; the README's first section): it resolves and unpacks in parallel. It comes from
# the registry at a pinned version; where it cannot be had, pip installs the same constraints.
UV_VERSION := 0.13.8
$(STAMP): constraints.txt setup.py
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) (pyenv: .python-version pins 3.10)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if $(BIN)/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"; then \
		$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e ".[dev]"; \
	else \
		echo "uv==$(UV_VERSION) could not be installed: installing with pip (4-6 min)"; \
		$(BIN)/pip install --quiet --upgrade "pip==24.2" && \
		$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"; \
	fi
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/embedpipe run $(ARGS)

# Both cores, one test file per worker (files share their module fixtures): 251 tests took
# 16 min 42 s in one process and 10 min 51 s in two on a fresh clone (2026-12-01). Files go out
# in collection order, the longest first (tests/conftest.py LONGEST_FIRST), not xdist's default
# (the files with most tests first), which left the longest ones for the end.
PYTEST_XDIST ?= -n 2 --dist loadfile --no-loadscope-reorder

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# Regenerate constraints.txt from the current .venv (after changing a pin on purpose).
constraints:
	{ sed -n '1,2p' constraints.txt; $(BIN)/pip freeze --exclude-editable | sort -f; } > constraints.txt.new && mv constraints.txt.new constraints.txt

clean:
	rm -rf runs .pytest_cache
