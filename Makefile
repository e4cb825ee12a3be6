# VexFS top-level targets. Both main targets install what they need first
# (tools/bootstrap.py: apt packages, .venv) and are safe to run again.
#
#   make run    the full scenario suite in a VM, with its report in results/latest/
#   make test   the whole pytest suite: host unit tests and VM tests

PYTHON ?= python3
VENV := .venv
VEXFS := $(VENV)/bin/vexfs
PYTEST := $(VENV)/bin/pytest

.PHONY: setup run test test-host module sparse checkpatch clean

setup:
	@command -v $(PYTHON) >/dev/null || (apt-get update -qq && apt-get install -y -qq python3 python3-venv)
	$(PYTHON) tools/bootstrap.py

run: setup
	$(VEXFS) run $(ARGS)

test: setup
	$(PYTEST) $(ARGS)

test-host: setup
	$(PYTEST) tests/host $(ARGS)

module: setup
	$(VENV)/bin/python -m vexfs.vm.build

sparse:
	$(MAKE) -C kernel sparse

checkpatch:
	$(VENV)/bin/python tools/checkpatch.py

clean:
	$(MAKE) -C kernel clean || true
	rm -rf .cache results logs
