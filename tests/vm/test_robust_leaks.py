"""Leaks and lifetime under slub_debug: 20 mount/workload/umount cycles with
counters and slab objects back to zero and bounded memory, EBUSY on umount
with an open file, rmmod refused while mounted, concurrent mount/umount
races, and a clean rmmod with no slab cache left (see vexfs/fuzz/leaks.py)."""

from __future__ import annotations

import json
import re

import pytest

from vexfs.fuzz.leaks import CYCLES, MEM_TOLERANCE_KB, analyse, run_leaks
from vexfs.vm.build import VEXFS_KO
from vexfs.vm.paths import cache_dir


@pytest.mark.vm
@pytest.mark.timeout(1800)
def test_leaks_and_lifetime_under_slub_debug() -> None:
    res = run_leaks(cache_dir() / "fuzz" / "leaks-test", VEXFS_KO)
    assert not res["crashes"], res["crashes"]
    assert "slub_debug" in res.get("proc_cmdline", ""), res.get("proc_cmdline")
    r = res["results"]
    a = analyse(res)
    print(json.dumps(a, indent=1))
    assert r.get("cnt_base") == "0,0,0,0"
    assert not a["failures"], (a["failures"], res.get("transcript", "")[-3000:])
    assert a["counters_zero_every_cycle"], a["counters"]
    assert all(s == 0 for s in a["slab_objects_after_umount"]), a["slab_objects_after_umount"]
    assert a["mem_growth_kb"] is not None and a["mem_growth_kb"] <= MEM_TOLERANCE_KB, a
    # lifetime
    assert r["busy_rc"] != "0" and "busy" in r["busy_msg"].lower(), r
    assert r["busy_still_mounted"] == "yes"
    assert r["rmmod_mounted_rc"] != "0" and r["module_still_loaded"] == "yes", r
    assert r["umount_after_close"] == "0"
    assert r["race_left_mounted"] == "0" and r["cnt_after_race"] == "0,0,0,0", r
    assert r["rmmod_rc"] == "0" and r["slab_caches_left"] == "0", r
    # slub_debug's own reports (poison/redzone damage, objects left in a
    # destroyed cache); the boot banner lines ("SLUB: HWalign=...") are not
    reports = re.compile(r"BUG \S+ \(|Poison overwritten|Redzone|Objects remaining|"
                         r"still has objects|Freepointer corrupt")
    assert not [ln for ln in res.get("slub_lines", []) if reports.search(ln)], res["slub_lines"]
