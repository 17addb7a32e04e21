# The two commands of the README: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3.10
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint constraints clean

install: $(STAMP)

# Re-install when the pins or the package metadata change.
$(STAMP): constraints.txt setup.py
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) (pyenv: .python-version pins 3.10)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==24.2"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
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
