# Every target creates or reuses the virtual environment .venv itself.
#   make book    build the whole book at the default `cpu` profile (trains what the artifact store lacks)
#   make test    run the test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export OMP_WAIT_POLICY := PASSIVE

.PHONY: venv test test-all book book-render benchmark clean
venv: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

test: venv
	$(PY) -m pytest -q -m "not slow" --durations=15

test-all: venv
	$(PY) -m pytest -q -m "slow or not slow" --durations=15

book: venv
	$(PY) -m ferd book --profile cpu

book-render: venv
	$(VENV)/bin/jupyter-book build -W -n --keep-going .

benchmark: venv
	$(PY) benchmarks/bench_steps.py --profile cpu

clean:
	rm -rf _build
