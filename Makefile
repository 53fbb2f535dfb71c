# Everything runs from a project-local virtual environment (.venv) so that a fresh
# clone needs only Python 3.10+ and a C compiler; .ci/run adds the system packages.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench build clean test-vm

$(STAMP): pyproject.toml setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "setuptools>=64" wheel "Cython>=3.0" "numpy>=1.24"
	$(BIN)/pip install -q --no-build-isolation -e '.[test]'
	touch $@

# Rebuild the extensions in place whenever a .pyx/.pxd changed (cythonize skips the rest).
build: $(STAMP)
	$(BIN)/python setup.py -q build_ext --inplace -j 2

demo: build
	$(BIN)/wirecap demo

test: build
	$(BIN)/python -m pytest -q

# --- VM tests (helper vfio; tests/vm): vfio against Linux's vfio-pci in a QEMU guest with a
# virtual IOMMU. The harness installs QEMU, a kernel and static busybox with apt-get when run as
# root; where it cannot, the tests skip and say why.
test-vm: build
	$(BIN)/python tests/vm/harness.py --prepare
	$(BIN)/python -m pytest -q -m vm tests/vm

bench: build
	$(BIN)/wirecap bench model

clean:
	rm -rf build $(VENV) wirecap/*.so wirecap/*/*.so wirecap/*.c wirecap/*/*.c
