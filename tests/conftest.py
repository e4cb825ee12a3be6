"""Suite-wide setup.

Every test under tests/vm is marked `vm`. When any such test is selected,
the guest kernel is fetched (cached in .cache/kernel) and vexfs.ko plus the
test-only crash module are built once, before the first VM test, so VM tests
can use kernel/build/vexfs.ko as they find it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

VM_DIR = Path(__file__).parent / "vm"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if VM_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.vm)


@pytest.fixture(scope="session", autouse=True)
def built_modules(request: pytest.FixtureRequest) -> None:
    if not any(item.get_closest_marker("vm") for item in request.session.items):
        return
    from vexfs.vm.build import build_crashtest, build_vexfs
    from vexfs.vm.kernel import ensure_kernel

    kernel = ensure_kernel()
    build_vexfs(kernel)
    build_crashtest(kernel)
