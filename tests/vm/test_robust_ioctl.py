"""ioctl fuzzing in the VM: 100,000 calls of every vector ioctl (and other
numbers) with hostile arguments, fd types and concurrency, an unprivileged
child on root's files, a read-only bind mount, immutable/append-only files
(when chattr works) and a forged collection header; no crash, errno always
documented (with exact expectations where certain), every SIGKILLed call
reaped within 1 s, counters back to baseline after umount, fsck clean,
rmmod works, no slab left."""

from __future__ import annotations

import json

import pytest

from vexfs.fuzz.ioctlfuzz import run_ioctl_fuzz
from vexfs.vm.build import VEXFS_KO
from vexfs.vm.paths import cache_dir

CALLS = 100_000


@pytest.mark.vm
@pytest.mark.timeout(1200)
def test_ioctl_fuzz_100k_calls() -> None:
    res = run_ioctl_fuzz(CALLS, seed=7, threads=3, module=VEXFS_KO,
                         out=cache_dir() / "fuzz" / "ioctl-test", echo=print)
    print(json.dumps({k: res.get(k) for k in ("summary", "fuzz_s", "calls_per_s", "fsck_exit",
                                              "counters_after_umount", "slab_after_rmmod")},
                     indent=1))
    assert res["ok"], "\n".join(res["problems"])
    s = res["summary"]
    assert s["calls"] >= CALLS * 0.95
    assert s["ok"] > 0 and s["bad"] == 0
    # the hostile arguments must actually be hostile: EFAULT, EINVAL, ENOTTY, EBADF all seen
    for e in ("14", "22", "25", "9", "30", "117"):   # ... EROFS, EUCLEAN (forged header)
        assert s["errno"].get(e, 0) > 0, (e, s["errno"])
    ctx = s["contexts"]
    assert ctx["read_only_mount"] > 0 and ctx["forged_header"] > 0, ctx
    assert ctx["unprivileged_child"] > 0 and s["child_status"] == 0, (ctx, s["child_status"])
    kw = s["killwatch"]
    assert kw["rounds"] >= 20 and kw["slow"] == 0, kw
    assert kw["max_reap_ms"] <= 1000 + kw["baseline_max_reap_ms"] == kw["limit_ms"], kw
    assert set(s["per_ioctl"]) == {"CREATE", "INSERT", "GET", "DELETE", "SEARCH", "STATS",
                                   "other"}
    assert all(v["calls"] > 0 for v in s["per_ioctl"].values()), s["per_ioctl"]
