"""C1: crash consistency, in the run report (issue 10's proof).

Judged by code from vexfs.crashsafe (docs/robustness.md, "Crash-point
replay"):

 1. tool self-test on ext4 (it journals already): a seeded workload recorded
    with dm-log-writes, every FLUSH/FUA point and mark replayed, mounted,
    checked against the model and `e2fsck -n -f`: 0 violations;
 2. VexFS: the same kind of workload plus collection insert/upsert/delete
    batches (`--crash-episodes`), every point mounted, checked (fsynced files,
    atomic renames, whole collection batches) and `fsck.vexfs -n -f` must
    exit 0, and every 10th point also with its last write torn in half:
    points >= 1,000, violations == 0;
 3. power cuts in real VMs (>= 20 clean rounds) and `vexfs bench fs` against
    ext4 are criteria too. They are not built yet: their criteria fail
    with "not run" rather than pass empty.
"""

from __future__ import annotations

import json
import shlex

from vexfs.harness.framework import Scenario, ScenarioContext
from vexfs.vm.paths import REPO_ROOT

PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")
MIN_POINTS = 1000
MIN_POWER_CUTS = 20


def _crashsafe(ctx: ScenarioContext, name: str, args: str, timeout: float) -> dict | None:
    out = f"/tmp/{name}.json"
    res = ctx.run(f"cd {shlex.quote(str(REPO_ROOT))} && {PYTHON} -m vexfs.crashsafe.run {args} "
                  f"--work /tmp/cs-{name} --out {out} 2>&1 | grep -v '^INFO' | tail -5; "
                  f"cat {out}", timeout=timeout, hang_timeout=900)
    text = res.stdout
    start = text.find("{\n")
    if start < 0:
        return None
    try:
        return json.loads(text[start:])
    except json.JSONDecodeError:
        return None


def _record(ctx: ScenarioContext, prefix: str, r: dict) -> None:
    for key in ("points", "torn_points", "violations", "log_entries", "marks", "ops",
                "episodes", "record_s", "replay_s", "mount_s", "fsck_s"):
        ctx.metric(f"{prefix}_{key}", round(r[key], 1) if isinstance(r[key], float) else r[key])
    if r["violation_list"]:
        ctx.note(f"{prefix}: first violations:\n" + "\n".join(
            f"  point {v['point']} ({v['kind']}): {v['problem']}" for v in r["violation_list"][:20]))


def run(ctx: ScenarioContext) -> None:
    ctx.step("modules: dm-log-writes, loop, ext4, vexfs")
    ctx.run(f"modprobe jbd2; insmod {ctx.module}", timeout=60)

    ctx.step("tool self-test: ext4, every crash point")
    ext4 = _crashsafe(ctx, "c1-ext4", "--fs ext4 --episodes 10 --seed 11 --size-mb 16 "
                      "--log-mb 256 --torn-every 5", timeout=1800)
    if ctx.check("ext4_selftest_ran", ext4 is not None, "the driver wrote its JSON"):
        assert ext4 is not None
        _record(ctx, "ext4", ext4)
        ctx.check("ext4_selftest_clean", ext4["violations"] == 0 and ext4["points"] >= 30,
                  f"{ext4['points']} points (+{ext4['torn_points']} torn), "
                  f"{ext4['violations']} violations, e2fsck -n -f at each")

    n = ctx.options.crash_episodes
    ctx.step(f"VexFS: every crash point of {n} episodes (files, renames, collections)")
    vex = _crashsafe(ctx, "c1-vexfs", f"--fs vexfs --vectors --episodes {n} --seed 1 "
                     "--size-mb 64 --log-mb 2048 --torn-every 10", timeout=3 * 3600)
    if ctx.check("vexfs_replay_ran", vex is not None, "the driver wrote its JSON"):
        assert vex is not None
        _record(ctx, "vexfs", vex)
        ctx.check("vexfs_points", vex["points"] >= MIN_POINTS,
                  f"{vex['points']} points replayed (goal >= {MIN_POINTS}), "
                  f"replay {vex['replay_s']:.0f} s")
        ctx.check("vexfs_violations", vex["violations"] == 0,
                  f"{vex['violations']} violations over {vex['points']} points "
                  f"+ {vex['torn_points']} torn")
    ctx.check("power_cut_rounds", False,
              f"not run: power-cut VM rounds are not built yet (goal >= {MIN_POWER_CUTS} clean)")
    _bench_fs(ctx)


def _bench_fs(ctx: ScenarioContext) -> None:
    """`vexfs bench fs` in a VM of its own (a virtio scratch disk, which
    this scenario's VM has not): goal >= 1.0x ext4 on all three workloads."""
    from vexfs.bench import fsvm

    ctx.step("vexfs bench fs: VexFS vs ext4 on one virtio disk (10,000 fsyncs, 100 MB, "
             "20,000-entry tree)")
    module = ctx.options.module_path
    if module is None:
        from vexfs.vm.build import module_path
        from vexfs.vm.kernel import ensure_kernel

        module = module_path(ensure_kernel(headers=False))   # the run's ($VEXFS_KERNEL)
    run = fsvm.run_in_vm(module)
    r = run.result
    ctx.note(f"bench fs VM: exit {run.returncode}, {run.total_s:.0f} s, console {run.log_path}")
    if not ctx.check("bench_fs_ran", r is not None and not run.crashed,
                     "the bench wrote its JSON" if r is not None else
                     f"no result (exit {run.returncode}): {run.output[-800:]}"):
        return
    assert r is not None
    for w in r["workloads"]:
        ctx.metric(f"bench_fs_{w['name']}_ext4_s", round(w["ext4_s"], 2))
        ctx.metric(f"bench_fs_{w['name']}_vexfs_s", round(w["vexfs_s"], 2))
        ctx.metric(f"bench_fs_{w['name']}_ratio", round(w["ratio"], 3))
    ctx.check("bench_fs_vs_ext4", bool(r["all_goals_met"]),
              "goal >= 1.0x ext4 (ext4_time / vexfs_time) on all three:\n" + fsvm.summary(r))


SCENARIO = Scenario(id="C1", name="crash consistency (dm-log-writes replay)", fn=run,
                    description=__doc__ or "", hang_timeout=900.0)
