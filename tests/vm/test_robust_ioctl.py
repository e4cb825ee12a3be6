"""ioctl fuzzing in the VM: 100,000 calls of every vector ioctl (and other
numbers) with hostile arguments, fd types and concurrency, an unprivileged
child on root's files, a read-only bind mount, immutable/append-only files
(when chattr works) and a forged collection header; no crash, errno always
documented (with exact expectations where certain), every SIGKILLed call
reaped within 1 s (scaled by the guest's measured slowdown), counters back
to baseline after umount, fsck clean, rmmod works, no slab left."""

from __future__ import annotations

import json

import pytest

from vexfs.fuzz.ioctlfuzz import run_ioctl_fuzz
from vexfs.vm.build import VEXFS_KO
from vexfs.vm.paths import cache_dir

CALLS = 100_000


_RESULT: dict = {}


def _fuzz() -> dict:
    """One 100k-call run shared by the tests of this file."""
    if not _RESULT:
        _RESULT.update(run_ioctl_fuzz(CALLS, seed=7, threads=3, module=VEXFS_KO,
                                      out=cache_dir() / "fuzz" / "ioctl-test", echo=print))
    return _RESULT


@pytest.mark.vm
@pytest.mark.timeout(1200)
def test_ioctl_fuzz_100k_calls() -> None:
    res = _fuzz()
    print(json.dumps({k: res.get(k) for k in ("summary", "fuzz_s", "calls_per_s", "fsck_exit",
                                              "counters_after_umount", "slab_after_rmmod")},
                     indent=1))
    # the kill watchdog's time bound is judged below, on its own
    problems = [p for p in res["problems"] if "SIGKILLed victims" not in p]
    assert not problems, "\n".join(problems)
    s = res["summary"]
    assert s["calls"] >= CALLS * 0.95
    assert s["ok"] > 0 and s["bad"] == 0
    # the hostile arguments must actually be hostile: EFAULT, EINVAL, ENOTTY and EBADF seen
    for e in ("14", "22", "25", "9", "30", "117"):   # ... EROFS, EUCLEAN (forged header)
        assert s["errno"].get(e, 0) > 0, (e, s["errno"])
    ctx = s["contexts"]
    assert ctx["read_only_mount"] > 0 and ctx["forged_header"] > 0, ctx
    assert ctx["unprivileged_child"] > 0 and s["child_status"] == 0, (ctx, s["child_status"])
    assert s["killwatch"]["rounds"] >= 20, s["killwatch"]
    assert set(s["per_ioctl"]) == {"CREATE", "INSERT", "GET", "DELETE", "SEARCH", "STATS",
                                   "other"}
    assert all(v["calls"] > 0 for v in s["per_ioctl"].values()), s["per_ioctl"]


@pytest.mark.vm
@pytest.mark.timeout(1200)
def test_every_sigkilled_call_returns_within_1s() -> None:
    """1 s on real hardware: the guest's bound is 1 s times its CPU slowdown
    against the host (the same sorting workload timed on both, in this run)
    plus the slowest reap of a victim making no VexFS call (interleaved with
    the VexFS victims, so both see the same load)."""
    kw = _fuzz()["summary"]["killwatch"]
    print(json.dumps(kw, indent=1))
    assert kw["rounds"] >= 20 and kw["calibrate_host_ms"] > 0 and kw["slowdown"] >= 1, kw
    assert kw["limit_ms"] == pytest.approx(1000 * kw["slowdown"] + kw["baseline_max_reap_ms"],
                                           abs=1.0), kw
    assert kw["slow"] == 0 and kw["max_reap_ms"] <= kw["limit_ms"], kw
    print(f"slowest VexFS victim {kw['max_reap_ms']} ms in the guest (in "
          f"{kw['slowest_call']}), about {kw['max_reap_ms'] / kw['slowdown']:.0f} ms of host "
          f"time; baseline slowest {kw['baseline_max_reap_ms']} ms")
