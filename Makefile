# VexFS top-level targets. Both main targets install what they need first
# (tools/bootstrap.py: apt packages, .venv) and are safe to run again.
#
#   make run    the full scenario suite in a VM, with its report in results/latest/
#               (KERNEL=6.12 / 6.12-rt / 6.1.0-57-amd64: another Debian guest kernel;
#               JOBS=N: scenario VMs at once, default one per core)
#   make test   the whole pytest suite: host unit tests and VM tests, one
#               pytest-xdist worker per core (TEST_JOBS=N)
#   make deb    dist/vexfs-dkms_<ver>_all.deb and dist/vexfs-tools_<ver>_all.deb

PYTHON ?= python3
VENV := .venv
VEXFS := $(VENV)/bin/vexfs
PYTEST := $(VENV)/bin/pytest

.PHONY: setup run test test-host module sparse checkpatch clean deb test-packages

setup:
	@command -v $(PYTHON) >/dev/null || (apt-get update -qq && apt-get install -y -qq python3 python3-venv)
	$(PYTHON) tools/bootstrap.py

KERNEL ?=
JOBS ?=
RUN_FLAGS = $(if $(KERNEL),--kernel $(KERNEL)) $(if $(JOBS),-j $(JOBS))

run: setup
	$(VEXFS) run $(RUN_FLAGS) $(ARGS)

# pytest-xdist: one worker per core (TEST_JOBS=0: no workers, one process);
# each test file stays on one worker, the longest files first (tests/conftest.py:
# xdist groups and weights; --no-loadscope-reorder keeps that order).
TEST_JOBS ?= $(shell nproc 2>/dev/null || echo 1)

test: setup
	$(PYTEST) -n $(TEST_JOBS) --dist loadgroup --no-loadscope-reorder $(ARGS)

test-host: setup
	$(PYTEST) tests/host $(ARGS)

module: setup
	$(VENV)/bin/python -m vexfs.vm.build $(if $(KERNEL),--kernel $(KERNEL))

sparse:
	$(MAKE) -C kernel sparse

checkpatch:
	$(VENV)/bin/python tools/checkpatch.py

clean:
	$(MAKE) -C kernel clean || true
	rm -rf .cache results logs

deb: setup
	$(VENV)/bin/python tools/mkdeb.py

# The packages installed in a guest (DKMS builds vexfs.ko under TCG: slow).
test-packages: setup
	VEXFS_PACKAGE_TEST=1 $(PYTEST) tests/vm/test_packages.py $(ARGS)
