"""The module build cache (vexfs.vm.build): a build is keyed by the hash of
its sources, kernel release, headers config and compiler; a stamped or
cached key runs no make, a changed source does, and parallel builders of
one target are serialised by a file lock."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from vexfs.vm import build as b
from vexfs.vm.kernel import GuestKernel


@pytest.fixture()
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    src = tmp_path / "kernel"
    (src / "vec").mkdir(parents=True)
    (src / "super.c").write_text("int a;\n")
    (src / "vec" / "vec_scan.c").write_text("int b;\n")
    (src / "Kbuild").write_text("obj-m += vexfs.o\n")
    (src / "test").mkdir()
    (src / "test" / "ignored.c").write_text("x")
    ko = src / "build" / "vexfs.ko"
    calls: list[float] = []
    active, peak = [0], [0]
    lock = threading.Lock()

    def fake_make(path: Path, kernel: GuestKernel, target: str = "") -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        ko.parent.mkdir(exist_ok=True)
        ko.write_bytes(b"ko:" + (src / "super.c").read_bytes())
        calls.append(time.monotonic())
        with lock:
            active[0] -= 1

    monkeypatch.setenv("VEXFS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VEXFS_SHARED_CACHE", str(tmp_path / "shared"))
    monkeypatch.delenv(b.KEY_ENV, raising=False)
    monkeypatch.setattr(b, "KERNEL_SRC", src)
    monkeypatch.setattr(b, "VEXFS_KO", ko)
    monkeypatch.setattr(b, "module_path", lambda kernel: ko)
    monkeypatch.setattr(b, "_make", fake_make)
    monkeypatch.setattr(b, "check_module", lambda path, kernel: path)
    kernel = GuestKernel(version="6.1.0-57-amd64", root=tmp_path, package_version="6.1.192-3")
    return src, ko, kernel, calls, peak


def test_unchanged_sources_run_no_make(tree) -> None:
    src, ko, kernel, calls, _ = tree
    b.build_vexfs(kernel)
    assert len(calls) == 1 and ko.read_bytes() == b"ko:int a;\n"
    b.build_vexfs(kernel)
    assert len(calls) == 1  # stamped: no make
    (src / "test" / "ignored.c").write_text("changed")  # test-only modules are not in the key
    b.build_vexfs(kernel)
    assert len(calls) == 1


def test_a_changed_source_rebuilds_and_an_old_one_comes_from_the_cache(tree) -> None:
    src, ko, kernel, calls, _ = tree
    b.build_vexfs(kernel)
    (src / "vec" / "vec_scan.c").write_text("int c;\n")
    b.build_vexfs(kernel)
    assert len(calls) == 2
    (src / "vec" / "vec_scan.c").write_text("int b;\n")  # back to the first sources
    ko.write_bytes(b"stale")
    b.build_vexfs(kernel)
    assert len(calls) == 2 and ko.read_bytes() == b"ko:int a;\n"  # the cached module


def test_a_fresh_checkout_takes_the_module_from_the_shared_cache(tree, tmp_path: Path) -> None:
    src, ko, kernel, calls, _ = tree
    b.build_vexfs(kernel)
    ko.unlink()
    b._stamp(ko).unlink()
    b.build_vexfs(kernel)
    assert len(calls) == 1 and ko.is_file()


def test_the_key_follows_kernel_and_sources(tree) -> None:
    src, ko, kernel, calls, _ = tree
    key = b.build_key(src, kernel, ("build", "test"))
    other = GuestKernel(version="6.12.57+deb13-amd64", root=kernel.root)
    assert b.build_key(src, other, ("build", "test")) != key
    newer = GuestKernel(version=kernel.version, root=kernel.root, package_version="6.1.193-1")
    assert b.build_key(src, newer, ("build", "test")) != key
    (src / "new.h").write_text("#define X 1\n")
    assert b.build_key(src, kernel, ("build", "test")) != key


def test_cache_off_always_runs_make(tree, monkeypatch: pytest.MonkeyPatch) -> None:
    src, ko, kernel, calls, _ = tree
    monkeypatch.setenv(b.KEY_ENV, "0")
    b.build_vexfs(kernel)
    b.build_vexfs(kernel)
    assert len(calls) == 2


def test_parallel_builders_make_once(tree) -> None:
    src, ko, kernel, calls, peak = tree
    threads = [threading.Thread(target=b.build_vexfs, args=(kernel,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and peak[0] == 1


def test_apt_answers_are_kept_until_apt_state_changes(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import subprocess

    from vexfs.vm import kernel as k

    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "deb_Packages").write_text("a")
    status = tmp_path / "status"
    status.write_text("s")
    monkeypatch.setenv("VEXFS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VEXFS_APT_MEMO", raising=False)
    monkeypatch.setattr(k, "APT_STATE", (lists, status))
    calls: list[list[str]] = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout=f"answer {len(calls)}\n", stderr="")

    monkeypatch.setattr(k.subprocess, "run", fake_run)
    cmd = ["apt-cache", "depends", "linux-headers-amd64"]
    assert k._run(cmd) == "answer 1\n"
    assert k._run(cmd) == "answer 1\n" and len(calls) == 1  # kept
    assert k._run(["apt-cache", "policy", "x"]) == "answer 2\n"  # another question
    st = status.stat()
    os.utime(status, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # dpkg installed something
    assert k._run(cmd) == "answer 3\n"
    (lists / "deb_Packages").write_text("updated")  # apt-get update
    os.utime(lists / "deb_Packages", ns=(1, 2 * 10**18))
    assert k._run(cmd) == "answer 4\n"
    k._run(["apt-get", "download", "x"])
    k._run(["apt-get", "download", "x"])
    assert len(calls) == 6  # only apt-cache is kept
    monkeypatch.setenv("VEXFS_APT_MEMO", "0")
    k._run(cmd)
    assert len(calls) == 7


def test_a_fresh_checkout_links_the_shared_kernel_cache(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from vexfs.vm import kernel as k
    from vexfs.vm import paths

    monkeypatch.delenv("VEXFS_CACHE", raising=False)
    monkeypatch.setenv("VEXFS_SHARED_CACHE", str(tmp_path / "shared"))
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path / "clone")
    monkeypatch.setattr(k, "cache_dir", lambda: tmp_path / "clone" / ".cache")
    base = k.kernels_base()
    assert base.is_symlink() and base.resolve() == (tmp_path / "shared" / "kernel").resolve()
    assert k.kernel_dir("6.1.0-57-amd64") == (tmp_path / "shared" / "kernel" / "6.1.0-57-amd64")
    k._remember_default("6.1.0-57-amd64")
    assert (tmp_path / "shared" / "kernel" / "default-version").read_text() == "6.1.0-57-amd64\n"
    # a checkout with its own .cache/kernel directory keeps it
    own = tmp_path / "own" / ".cache"
    (own / "kernel").mkdir(parents=True)
    monkeypatch.setattr(k, "cache_dir", lambda: own)
    assert k.kernels_base() == own / "kernel" and not (own / "kernel").is_symlink()
