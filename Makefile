# Two commands: `make demo` (set everything up, run the main job) and `make test`; `make bench` runs benchmarks/.
# Both create the virtual environment on first use and reuse it afterwards.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.harness-installed
EXTRAS ?= all,dev,bench
# make test runs the suite on this many pytest-xdist workers (1: one process, no workers); --dist loadscope keeps
# each test module in one worker: its module fixtures are built once, and the tests of one module that look for
# their own processes (fork bombs, Ray instances) never run beside each other
TEST_WORKERS ?= 2

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("harness needs Python >= 3.10") if sys.version_info < (3, 10) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/harness demo

test: $(STAMP)
	$(BIN)/python -m pytest $(if $(filter 1,$(TEST_WORKERS)),-p no:xdist,-n $(TEST_WORKERS) --dist loadscope) $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
