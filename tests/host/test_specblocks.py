"""The spec's shell blocks as the verbatim VM test takes them (vexfs.vm.specblocks),
and the interactive VM's boot additions (vexfs.vm.persistent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vexfs.vm import persistent, specblocks


@pytest.fixture(scope="module")
def spec() -> str:
    return specblocks.find_spec().read_text()


def test_six_blocks_exactly_as_in_the_file(spec: str) -> None:
    blocks = specblocks.scenario_blocks(spec)
    assert [b.number for b in blocks] == [1, 2, 3, 4, 5, 6]
    for block in blocks:
        assert block.text in spec  # verbatim, not retyped
        assert block.text.startswith("# In VM:\n")
    assert blocks[0].host_lines == ["scp -P 2222 kernel/build/vexfs.ko root@localhost:/tmp/"]
    assert "scp" not in blocks[0].guest_script and "insmod /tmp/vexfs.ko" in blocks[0].guest_script
    assert 'for i in {1..20}; do' in blocks[1].guest_script
    assert 'echo "=== MOUNT SUCCESSFUL ==="' in blocks[3].guest_script
    assert all(not b.host_lines for b in blocks[1:])


def test_monitoring_and_access_commands(spec: str) -> None:
    assert specblocks.monitoring_commands(spec) == [
        "cd tests/legacy/vm_management/vm/",
        "tail -f logs/test-kernel-vm_*.log",
        "ssh -p 2222 root@localhost \"watch -n 1 'dmesg | tail -10'\"",
        "ssh -p 2222 root@localhost \"watch -n 2 'free -h; echo ---; lsmod | grep vexfs'\"",
    ]
    assert specblocks.vm_access_commands(spec)[:3] == [
        "cd tests/legacy/vm_management/vm/", "./run_qemu_fast.sh", "ssh -p 2222 root@localhost"]


def test_port_substitution() -> None:
    assert specblocks.with_port("scp -P 2222 a root@localhost:/tmp/", 2301) == \
        "scp -P 2301 a root@localhost:/tmp/"
    assert specblocks.with_port("ssh -p 2222 root@localhost \"x 22222\"", 9) == \
        "ssh -p 9 root@localhost \"x 22222\""


def test_find_spec_beside_the_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VEXFS_SPEC", raising=False)
    (tmp_path / "shared" / "seed").mkdir(parents=True)
    spec = tmp_path / "shared" / "seed" / "vm-testing-scenarios.md"
    spec.write_text("x")
    assert specblocks.find_spec(tmp_path / "clone") == spec
    assert specblocks.find_spec(tmp_path / "wt" / "S") == spec
    monkeypatch.setenv("VEXFS_SPEC", str(tmp_path / "missing.md"))
    with pytest.raises(specblocks.SpecError):
        specblocks.find_spec(tmp_path / "clone")


def test_missing_block_is_an_error() -> None:
    with pytest.raises(specblocks.SpecError):
        specblocks.scenario_blocks("### Scenario 1: x\nno block\n")


def test_interactive_vm_boot_additions() -> None:
    script = persistent.interactive_setup_script(Path("/repo/.venv/bin"))
    assert 'for m in jbd2 loop; do modprobe "$m"' in script
    for tool in ("mkfs.vexfs", "fsck.vexfs", "vexfs"):
        assert f"ln -sf /repo/.venv/bin/{tool} /usr/local/sbin/{tool}" in script
    assert "-o lowerdir=/usr/local/sbin,upperdir=" in script and "mount -t overlay" in script
    assert "printenv TERM >/dev/null || export TERM=xterm" in script
