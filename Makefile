# Two targets do all set-up on a fresh machine: `make demo` runs the main job, `make test` the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install clean

$(BIN)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned, so pip takes the CPU wheel instead of pulling a CUDA build
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test,plot]'
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/review-transfer data show rt
	$(BIN)/review-transfer compare rt --preset quick --jobs 2 --out reports/quick

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) *.egg-info
