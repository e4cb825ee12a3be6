"""C1: crash consistency, in the run report (issue 10's proof).

Judged by code from vexfs.crashsafe (docs/robustness.md, "Crash-point
replay"):

 1. tool self-test on ext4 (it journals already): a seeded workload recorded
    with dm-log-writes, every FLUSH/FUA point and mark replayed, mounted,
    checked against the model and `e2fsck -n -f`: 0 violations;
 2. VexFS: the same kind of workload (every operation kind of issue 10:
    create, mknod, symlink, link, unlink, mkdir, rmdir, the renames, setattr,
    truncate, fallocate, allocating writes, syncfs) plus collection
    insert/upsert/delete batches (`--crash-episodes`), every point mounted
    through a throw-away dm-snapshot, checked (fsynced files, atomic renames,
    whole collection batches) and `fsck.vexfs -n -f` must exit 0, and every
    10th point also with its last write torn in half: points >= 1,000,
    violations == 0, the torn points clean too;
 3. power cuts in a real VM (`--power-cuts`, one QEMU process, a sysrq-b
    reset per round): >= 20 rounds, each next boot's fsck -n (reports, writes
    nothing), fsck -y on a copy (exit 1 after a replay), mount (the journal
    replays: its time is a metric), model check and fsck -n -f clean;
 4. `vexfs bench fs` against ext4 in a VM of its own (lane B's criterion:
    >= 1.0x ext4 on all three workloads).
"""

from __future__ import annotations

import json
import shlex
import tempfile
from pathlib import Path

from vexfs.harness.framework import Scenario, ScenarioContext
from vexfs.vm.paths import REPO_ROOT

PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")
MIN_POINTS = 1000
MIN_POWER_CUTS = 20
# every operation kind issue 10 lists, as the workload names its episodes
REQUIRED_KINDS = ("create", "mknod", "symlink", "link", "unlink", "mkdir", "rmdir", "rename",
                  "replace-rename", "rename-dir", "rename-over-dir", "rename-exchange",
                  "rename-noreplace", "setattr", "truncate", "fallocate", "overwrite", "append",
                  "syncfs", "coll-insert", "coll-upsert", "coll-delete")


def _crashsafe(ctx: ScenarioContext, name: str, args: str, timeout: float) -> dict | None:
    out = f"/tmp/{name}.json"
    res = ctx.run(f"cd {shlex.quote(str(REPO_ROOT))} && {PYTHON} -m vexfs.crashsafe.run {args} "
                  f"--work /tmp/cs-{name} --out {out} 2>&1 | grep -v '^INFO' | tail -12; "
                  f"cat {out}", timeout=timeout, hang_timeout=900)
    text = res.stdout
    start = text.find("{\n")
    if start < 0:
        ctx.note(f"{name}: no JSON; output tail:\n{text[-3000:]}")
        return None
    try:
        return json.loads(text[start:])
    except json.JSONDecodeError:
        return None


def _record(ctx: ScenarioContext, prefix: str, r: dict) -> None:
    for key in ("points", "torn_points", "violations", "log_entries", "marks", "ops",
                "episodes", "record_s", "replay_s", "mount_s", "fsck_s", "snapshot_s",
                "recoveries", "recovery_ms_max", "recovered_transactions_max"):
        ctx.metric(f"{prefix}_{key}", round(r[key], 1) if isinstance(r[key], float) else r[key])
    if r["recoveries"]:
        ctx.metric(f"{prefix}_recovery_ms_mean",
                   round(r["recovery_ms_total"] / r["recoveries"], 1))
    if r["points"]:
        ctx.metric(f"{prefix}_s_per_point", round(r["replay_s"] / r["points"], 2))
    if r["violation_list"]:
        ctx.note(f"{prefix}: first violations:\n" + "\n".join(
            f"  point {v['point']} ({v['kind']}): {v['problem']}"
            for v in r["violation_list"][:20]))


def _power_cuts(ctx: ScenarioContext) -> None:
    from vexfs.crashsafe import powercut

    rounds = ctx.options.power_cuts
    ctx.step(f"power cuts: {rounds} rounds in one VM (sysrq-b, next boot checks)")
    if rounds == 0:
        ctx.check("power_cut_rounds", False,
                  f"not run (--power-cuts 0; goal >= {MIN_POWER_CUTS})")
        return
    work = ctx.work_dir / "powercut" if ctx.work_dir else Path(tempfile.mkdtemp(prefix="c1-pc-"))
    module = ctx.options.module_path
    if module is None:
        from vexfs.vm.build import module_path
        from vexfs.vm.kernel import ensure_kernel

        module = module_path(ensure_kernel(headers=False))
    r = powercut.run_rounds("vexfs", rounds, seed=1000, module=module, work_dir=work,
                            vectors=True, max_delay=10.0, timeout=300 + 240 * rounds,
                            fsck_every=5)
    if ctx.work_dir:
        ctx.logs.append(str(Path(r["log"]).resolve()))
    s = powercut.summarize(r)
    for k, v in s.items():
        ctx.metric(f"powercut_{k}", v)
    bad = [x for x in r["rounds"] if x["violations"]]
    if bad:
        ctx.note("power cuts: rounds with violations:\n" + "\n".join(
            f"  round {x['round']} (seed {x['seed']}): {'; '.join(x['violations'][:3])}"
            for x in bad[:10]))
    if r["crashes"] or r["step_failures"] or r["timed_out"]:
        ctx.note(f"power cuts: crashes {r['crashes']}, failed steps {r['step_failures']}, "
                 f"timed out {r['timed_out']}; console {r['log']}")
    complete = s["rounds"] == rounds and s["cuts"] == rounds and r["done"] and \
        not r["crashes"] and not r["step_failures"]
    ctx.check("power_cut_rounds", complete and s["clean"] >= MIN_POWER_CUTS and not bad,
              f"{s['clean']} of {s['rounds']} rounds clean (goal >= {MIN_POWER_CUTS}), "
              f"{s['cuts']} cuts, {s['boots']} boots in one QEMU, {s['needed_recovery']} "
              f"needed recovery, {s['fsck_before_mount']} with fsck -n/-y before the mount, "
              f"journal replay max {s['replay_ms_max']} ms "
              f"(mean {s['replay_ms_mean']} ms), {s['s_per_round']} s per round")


def run(ctx: ScenarioContext) -> None:
    ctx.step("modules: dm-log-writes, dm-snapshot, loop, ext4, vexfs")
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
                     "--size-mb 24 --log-mb 2048 --torn-every 10", timeout=3 * 3600)
    if ctx.check("vexfs_replay_ran", vex is not None, "the driver wrote its JSON"):
        assert vex is not None
        _record(ctx, "vexfs", vex)
        ctx.check("vexfs_points", vex["points"] >= MIN_POINTS,
                  f"{vex['points']} points replayed (goal >= {MIN_POINTS}), "
                  f"replay {vex['replay_s']:.0f} s ({vex['replay_s'] / max(1, vex['points']):.2f}"
                  f" s per point), record {vex['record_s']:.0f} s")
        ctx.check("vexfs_violations", vex["violations"] == 0,
                  f"{vex['violations']} violations over {vex['points']} points "
                  f"+ {vex['torn_points']} torn")
        torn_bad = sum(1 for v in vex["violation_list"] if v["kind"] == "torn")
        ctx.check("vexfs_torn_writes", vex["torn_points"] >= 1 and torn_bad == 0,
                  f"{vex['torn_points']} points with the last write torn in half "
                  f"(its second half kept the old bytes): {torn_bad} violations")
        kinds = vex["episode_kinds"]
        missing = [k for k in REQUIRED_KINDS if not kinds.get(k)]
        ctx.check("vexfs_workload_kinds", not missing,
                  "every operation kind ran: " + ", ".join(f"{k} {kinds.get(k, 0)}"
                                                           for k in REQUIRED_KINDS)
                  + (f"; missing {missing}" if missing else ""))
        if vex["recoveries"]:
            ctx.note(f"journal replay at the points' mounts: {vex['recoveries']} replays, "
                     f"max {vex['recovery_ms_max']} ms, mean "
                     f"{vex['recovery_ms_total'] / vex['recoveries']:.0f} ms, up to "
                     f"{vex['recovered_transactions_max']} transactions")

    _power_cuts(ctx)
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


SCENARIO = Scenario(id="C1", name="crash consistency (dm-log-writes replay, power cuts)", fn=run,
                    description=__doc__ or "", hang_timeout=900.0)
