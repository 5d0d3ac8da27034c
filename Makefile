# edgeprune build-and-benchmark flows. Every target sets itself up on a fresh machine.
PY_SYS ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup test test-all lint demo zoo bench-graph clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PY_SYS) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

test-all: $(STAMP)
	$(PY) -m pytest -n 2 -q -m "not gpu and not trt"

lint: $(STAMP)
	$(VENV)/bin/ruff check edgeprune tests tools

zoo: $(STAMP)
	$(PY) tools/zoo_check.py --out zoo

bench-graph: $(STAMP)
	$(PY) -m pip install -e ".[bench]" -q
	$(PY) tools/bench_graph.py --out bench/graph.json

# The foundation's demo: channel groups of a CIFAR ResNet, then a 30 % shrink checked by the oracle.
# (The full latency-budget pipeline arrives with the compress issue.)
demo: $(STAMP)
	$(VENV)/bin/edgeprune graph cifar_resnet56
	$(VENV)/bin/edgeprune shrink cifar_resnet56 --ratio 0.3 --out runs/demo

clean:
	rm -rf $(VENV) .pytest_cache
