"""Suite-wide setup.

Every test under tests/vm is marked `vm`. When any such test is selected,
the guest kernel is fetched (cached in .cache/kernel) and vexfs.ko plus the
test-only crash module are built once, before the first VM test, so VM tests
can use kernel/build/vexfs.ko as they find it (vexfs.vm.build's cache: an
unchanged tree runs no make, and parallel workers build once under a lock).

Parallel runs (`make test` = pytest -n <cores> --dist loadgroup, see the
Makefile): every test is put in the xdist group of its file, so a file's
module-scoped fixture (one VM boot or one scenario run shared by its tests)
runs once, on one worker; the files that start `vexfs vm start`
persistent VMs share one group. Files are handed out longest first
(FILE_WEIGHT, estimated seconds of one file alone), so the long VM files do
not start last and leave one worker idle.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

VM_DIR = Path(__file__).parent / "vm"
# Files that share one xdist group (they run on one worker, one after the other).
SHARED_GROUPS = {
    "test_harness_persistent.py": "persistent-vm",  # `vexfs vm start`, ssh ports
    "test_spec_verbatim.py": "persistent-vm",
}
# Estimated seconds each file takes alone on the 2-core TCG machine (from
# what it runs: VM boots, scenario counts, kernel builds); only the order
# matters: the longest go first. Unlisted VM files count 60, host files 5.
FILE_WEIGHT = {
    "test_kernel_matrix.py": 400, "test_robust_fuzz_image.py": 400,
    "test_scenarios_s3_s5.py": 300, "test_robust_ioctl.py": 250,
    "test_spec_verbatim.py": 250, "test_crash_recovery.py": 200,
    "test_robust_report.py": 200, "test_robust_leaks.py": 150,
    "test_crashsafe_replay.py": 150, "test_crashsafe_powercut.py": 150,
    "test_harness.py": 120, "test_journal_crash.py": 120, "test_fs_reboot.py": 100,
    "test_robust_faults.py": 100, "test_vector_ioctl.py": 90, "test_tools_vm.py": 90,
    "test_fs_workload.py": 90, "test_fs_corrupt.py": 60, "test_fs_ops.py": 60,
    "test_harness_persistent.py": 60,
    "test_packages.py": 1,
}
# host files with kernel builds, checkpatch or sparse (pytest --durations, loaded host)
HOST_FILE_WEIGHT = {"test_kernel_style.py": 150, "test_vector_build.py": 100,
                    "test_crash_module.py": 70, "test_ship.py": 30}
HOST_WEIGHT = 5  # any other host test file: seconds, mostly
SUITE_GOAL_S = 720.0  # issue 17: `make test` <= 12 min on the 2-core TCG machine

_started = time.monotonic()


def _weight(item: pytest.Item) -> float:
    path = Path(str(item.fspath))
    if VM_DIR in path.parents:
        return FILE_WEIGHT.get(path.name, 60)
    return HOST_FILE_WEIGHT.get(path.name, HOST_WEIGHT)


# xdist's worker turns each item's xdist_group marker into a "@group"
# suffix of its nodeid in its own pytest_collection_modifyitems; this hook
# adds the markers, so it must run first. (pytest 9.2 derives nodeid from a
# new private field that xdist 3.8's `item._nodeid = ...` no longer reaches:
# every test became its own scope, one file's tests were spread over both
# workers and its module-scoped VM fixture ran on each. pyproject.toml keeps
# pytest < 9.2; tests/host/test_xdist_groups.py checks the grouping.)
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        if VM_DIR in path.parents:
            item.add_marker(pytest.mark.vm)
        group = SHARED_GROUPS.get(path.name, f"{path.parent.name}/{path.name}")
        item.add_marker(pytest.mark.xdist_group(group))
    if _worker() or getattr(config.option, "numprocesses", None):
        # stable: within a file (and among equal weights) the order is kept
        items.sort(key=lambda item: -_weight(item))


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "")


@pytest.fixture(scope="session", autouse=True)
def built_modules(request: pytest.FixtureRequest) -> None:
    if not any(item.get_closest_marker("vm") for item in request.session.items):
        return
    from vexfs.vm.build import build_crashtest, build_vexfs
    from vexfs.vm.kernel import ensure_kernel

    kernel = ensure_kernel()
    build_vexfs(kernel)
    build_crashtest(kernel)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """The suite's wall time against the 12-min goal, when the whole suite
    ran (tests/host and tests/vm, no -k/-m selection): printed, not a test
    verdict, since a loaded machine misses it whatever the code does."""
    if _worker():
        return
    wall = time.monotonic() - _started
    args = [str(a) for a in config.args]
    whole = (not config.option.keyword and not config.option.markexpr
             and all(Path(a).resolve() in (Path(__file__).parent, Path(__file__).parent.parent)
                     for a in args))
    jobs = getattr(config.option, "numprocesses", None) or 1
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    if whole:
        verdict = "met" if wall <= SUITE_GOAL_S else "MISSED"
        terminalreporter.write_line(
            f"make test wall time {wall:.0f} s with -n {jobs} (goal <= {SUITE_GOAL_S:.0f} s: "
            f"{verdict}; host load {load})")
    else:
        terminalreporter.write_line(f"wall time {wall:.0f} s with -n {jobs} (host load {load})")
