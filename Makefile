# Everything runs from a project-local virtual environment (.venv). What it needs from the
# system (a C compiler, Python's headers and venv, libpcap; tcpdump, tcpreplay, iproute2 for
# the tests) is checked first by tools/system-packages, which installs what is missing with
# apt-get when run as root, or names the command to run.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NEEDS  ?= build

.PHONY: demo test bench build clean system-packages

# NEEDS=test for `make test` (target-specific values reach its prerequisites too)
test: NEEDS = test
system-packages:
	@PYTHON=$(PYTHON) tools/system-packages $(NEEDS)

# The stamp is written only when every step succeeded; a half-made .venv is said so and redone.
$(STAMP): pyproject.toml setup.cfg setup.py | system-packages
	@if [ -f $@ ]; then echo "$(VENV): $? changed since it was set up; updating it"; \
	elif [ -d $(VENV) ]; then echo "$(VENV): its last set-up did not finish (that run printed why); setting it up again"; fi
	@echo "setting up $(VENV): pip install of the build and test dependencies, then the extensions (minutes the first time)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "setuptools>=64" wheel "Cython>=3.0" "numpy>=1.24"
	$(BIN)/pip install -q --no-build-isolation -e '.[test]'
	touch $@

# Rebuild the extensions in place whenever a .pyx/.pxd changed (cythonize skips the rest).
build: system-packages $(STAMP)
	$(BIN)/python setup.py -q build_ext --inplace -j 2

demo: build
	$(BIN)/wirecap demo

test: build
	$(BIN)/python -m pytest -q

bench: build
	$(BIN)/wirecap bench model

clean:
	rm -rf build $(VENV) wirecap/*.so wirecap/*/*.so wirecap/*.c wirecap/*/*.c
