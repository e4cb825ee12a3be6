"""Scenario 5: vector operations (the spec's steps, then the real vector path).

Spec steps: insmod; 500 MB image on /dev/loop0; `which mkfs.vexfs`, mkfs,
`mkdir -p /mnt/vexfs_vector`, mount; in the mount, the spec's bash loop
writing `vector_$i: [1.0, 2.0, 3.0, 4.0]` to vector_$i.vec (i = 1..10);
`ls -la *.vec`; `cat vector_1.vec`; `cd /; umount`; cleanup.

Then what "vector search (if implemented)" means for VexFS, through the
vector engineer's client and CLI (vexfs.vector, `vexfs vec`), with every
check computed by code (the guest half is _s5_guest.py):
 - the `vexfs vec` CLI creates a collection, inserts the spec's files,
   searches and reports its stats;
 - the ten vectors parsed back from their files go into a collection; get
   and search return the expected neighbours (all ten at distance 0 for
   [1,2,3,4], ties broken by id; 1, 2, 3 at 30 for the origin);
 - distinct 4-d vectors give the hand-computed L2 order and numpy's order
   for l2, cosine and ip;
 - 10,000 x 128 random float32 vectors (64-bit ids, random insertion
   order), 105 queries, k = 10, per metric: ids identical to numpy's
   ground truth wherever there is no tie, distances within 1e-5 relative;
 - umount, `fsck.vexfs -n` clean, mount: the .vec files, every vector and
   every search answer are bit-identical to before;
 - `vexfs bench vectors --json` (vexfs.bench) in the same VM: insert rate
   and search QPS against numpy, stored in the `bench` metric;
 - umount, fsck clean again, cleanup (counters at zero before rmmod), no
   kernel warning.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vexfs.harness.framework import Scenario, ScenarioContext
from vexfs.harness.scenarios import _blockfs as B

IMAGE = "/tmp/vexfs_vector.img"
DEV = "/dev/loop0"
MNT = "/mnt/vexfs_vector"
SIZE_MIB = 500
MOUNT_LIMIT_S = 10.0
GUEST_SCRIPT = Path(__file__).with_name("_s5_guest.py")
GUEST_SCRIPT_AT = "/tmp/s5_guest.py"
STATE_AT = "/tmp/s5_state.npz"
ANN_SCRIPT = Path(__file__).with_name("_s5_ann_guest.py")
ANN_SCRIPT_AT = "/tmp/s5_ann_guest.py"
ANN_STATE_AT = "/tmp/s5_ann_state.npz"
ANN_BUILD_CHECK = "ANN index: recall@10 >= 0.95 at the default nprobe (fashion-mnist)"
ANN_VERIFY_CHECK = "ANN index survives umount/mount: identical answers"
ANN_GOAL = ("ANN goal: at recall@10 >= 0.95, VexFS QPS >= hnswlib's and >= 10x VexFS exact "
            "(vexfs bench ann)")
BENCH_MIN_ID_AGREEMENT = 0.999
# Speed criteria (issue 11): the kernel's exact search against numpy brute
# force in the same VM, batch and single queries, every benchmarked size.
# Below SPEED_MIN fails the scenario; SPEED_GOAL is printed beside it.
SPEED_MIN = 1.0
SPEED_GOAL = 1.5

# numpy 2.x dispatches sort/partition to AVX2 code (x86-simd-sort, its
# "X86_V3" group) that QEMU 7.2's TCG emulates wrongly: in the guest
# np.argpartition on float64 dies with a general protection fault in
# _multiarray_umath, and where it survives it returns wrong indices (the
# benchmark's numpy top-k then disagrees with the exact top-k on ~20% of
# ranks). Every numpy process of this scenario therefore runs on numpy's
# baseline (x86-64-v2) kernels; BLAS (OpenBLAS, its own dispatch) and the
# kernel module are unaffected.
NUMPY_ENV = {"NPY_DISABLE_CPU_FEATURES": "X86_V3"}

# The spec's loop, run by bash exactly as written (brace expansion).
SPEC_LOOP = """for i in {1..10}; do
  echo "vector_$i: [1.0, 2.0, 3.0, 4.0]" > "vector_$i.vec"
done"""


def spec_file(i: int) -> bytes:
    return f"vector_{i}: [1.0, 2.0, 3.0, 4.0]\n".encode()


def _read_back(ctx: ScenarioContext) -> list[str]:
    """Every .vec file read through VexFS, compared byte for byte."""
    problems = []
    for i in range(1, 11):
        try:
            data = ctx.vm.read_file(f"{MNT}/vector_{i}.vec")
        except Exception as exc:
            problems.append(f"vector_{i}.vec: {exc}")
            continue
        if data != spec_file(i):
            problems.append(f"vector_{i}.vec: {data[:80]!r}")
    return problems


def _guest_checks(ctx: ScenarioContext, mode: str, fallback: str) -> dict:
    """Run _s5_guest.py in the guest; record its checks; return its metrics."""
    result = B.sh(ctx, [B.GUEST_PYTHON, GUEST_SCRIPT_AT, mode, MNT, STATE_AT], timeout=900,
                  env=NUMPY_ENV)
    try:
        report = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        report = None
    if result.rc != 0 or not isinstance(report, dict) or not report.get("checks"):
        ctx.check(fallback, False, f"guest script `{mode}` exit {result.rc}: {B.err_tail(result, 800)}")
        return {}
    for c in report["checks"]:
        ctx.check(c["name"], c["passed"], c["detail"])
    return report.get("metrics", {})


def _bench_speed(raw: dict) -> tuple[bool, str]:
    """The speed criterion: every size's batch and single ratio >= SPEED_MIN."""
    parts, ok = [], bool(raw.get("results"))
    for r in raw.get("results", []):
        for mode in ("batch", "single"):
            ratio = r[f"ratio_{mode}"]
            ok = ok and ratio >= SPEED_MIN
            faiss = r.get(f"faiss_{mode}_qps")
            pairs = (f" ({r['single_pairs']} pairs)"
                     if mode == "single" and "single_pairs" in r else "")
            parts.append(f"n={r['n']} {mode} x{ratio:.2f}{pairs}"
                         + (" (goal met)" if ratio >= SPEED_GOAL else
                            " (below the goal)" if ratio >= SPEED_MIN else " (TOO SLOW)")
                         + (f", FAISS flat {faiss:.1f} qps = x{r[f'kernel_{mode}_qps'] / faiss:.2f}"
                            if faiss else ""))
    return ok, (f"kernel/numpy speed (median of back-to-back pairs), minimum x{SPEED_MIN:g}, "
                f"goal x{SPEED_GOAL:g}: "
                + ("; ".join(parts) if parts else "no results")
                + f"; FAISS {raw.get('faiss_version') or 'not installed'}")


def _bench_figures(raw: dict) -> tuple[dict, list[str], list[str]]:
    """`vexfs bench vectors --json` -> the report's `bench` metric shape
    ({figure: {"vexfs": n, "numpy": n, "faiss": n, "unit": u}}), summary, problems."""
    figures: dict = {}
    summary, problems = [], []
    for r in raw.get("results", []):
        tag = f"{r['n'] // 1000}k" if r["n"] % 1000 == 0 else str(r["n"])
        figures[f"insert_vectors_per_s_{tag}"] = {"vexfs": r["insert_vps"], "unit": "vectors/s"}
        for mode in ("batch", "single"):
            fig = {"vexfs": r[f"kernel_{mode}_qps"], "numpy": r[f"numpy_{mode}_qps"],
                   "unit": "queries/s"}
            if r.get(f"faiss_{mode}_qps"):
                fig["faiss"] = r[f"faiss_{mode}_qps"]
            figures[f"search_{mode}_qps_{tag}"] = fig
        summary.append(f"n={r['n']}: insert {r['insert_vps']:.0f} v/s, batch {r['kernel_batch_qps']:.1f} "
                       f"qps vs numpy {r['numpy_batch_qps']:.1f} (x{r['ratio_batch']:.2f}), single "
                       f"{r['kernel_single_qps']:.1f} vs {r['numpy_single_qps']:.1f} "
                       f"(x{r['ratio_single']:.2f}), kernel ids = exact top-k {r['id_agreement']:.4f}"
                       + (f" (numpy's: {r['numpy_id_agreement']:.4f})" if "numpy_id_agreement" in r else "")
                       + f", {r['simd']}")
        if r["id_agreement"] < BENCH_MIN_ID_AGREEMENT:
            problems.append(f"n={r['n']}: only {r['id_agreement']:.4f} of the kernel's ids equal "
                            "the exact top-k")
        err = r.get("max_rel_dist_err")
        if isinstance(err, (int, float)) and err == err and err > 1e-5:  # NaN: not measured
            problems.append(f"n={r['n']}: max relative distance error {err:.2e}")
    return figures, summary, problems


def run(ctx: ScenarioContext) -> None:
    klog = B.KernelLog()
    ctx.clear_dmesg()
    B.ensure_loop(ctx)
    mount_s: list[float] = []
    umount_s: list[float] = []

    def mount() -> bool:
        m = ctx.run(["mount", "-t", "vexfs", DEV, MNT], timeout=60)
        if m.rc == 0:
            mount_s.append(m.duration_s)
        else:
            ctx.note(f"mount failed: {B.err_tail(m)}")
        return m.rc == 0 and B.mounted(ctx, MNT) == "vexfs"

    def umount() -> bool:
        u = ctx.run(["umount", MNT], timeout=120)
        if u.rc == 0:
            umount_s.append(u.duration_s)
        else:
            ctx.note(f"umount failed: {B.err_tail(u)}")
        return u.rc == 0

    ctx.step("1. setup: insmod, 500 MB image, losetup")
    load = B.insmod(ctx)
    img_ok, img_detail = B.make_image(ctx, IMAGE, SIZE_MIB)
    lo_ok, lo_detail = B.losetup(ctx, DEV, IMAGE)

    ctx.step("2. format and mount")
    mk_ok, mk_detail = B.mkfs(ctx, DEV)
    ctx.run(["mkdir", "-p", MNT])
    mounted = mk_ok and mount()
    ctx.check("VexFS set up on a 500 MB loop device and mounted",
              load.rc == 0 and img_ok and lo_ok and mk_ok and mounted,
              f"insmod exit {load.rc}; {img_detail}; {lo_detail}; {mk_detail}; mount "
              + (f"ok in {mount_s[0]:.3f} s" if mounted else "FAILED"))
    if not mounted:
        ctx.run("dmesg | tail -10")
        for name in ("Vector files can be created", "Vector data can be stored and retrieved",
                     "VexFS-specific vector operations work"):
            ctx.check(name, False, "not attempted: no mounted VexFS")
        B.cleanup(ctx, DEV, IMAGE)
        klog.collect(ctx)
        klog.record(ctx)
        return

    ctx.step("3. === TESTING VECTOR OPERATIONS ===: the spec's ten .vec files")
    loop = ctx.run(["bash", "-c", SPEC_LOOP], cwd=MNT)
    ls = ctx.run(["bash", "-c", "ls -la *.vec"], cwd=MNT)
    cat = ctx.run(["cat", "vector_1.vec"], cwd=MNT)
    sizes = {}
    for line in ls.stdout.splitlines():
        f = line.split()
        if len(f) >= 9 and f[0].startswith("-"):
            sizes[f[8]] = int(f[4])
    want_sizes = {f"vector_{i}.vec": len(spec_file(i)) for i in range(1, 11)}
    ctx.check("Vector files can be created",
              loop.rc == 0 and ls.rc == 0 and sizes == want_sizes,
              f"loop exit {loop.rc}; ls -la *.vec: {len(sizes)} regular files, sizes "
              + ("as written" if sizes == want_sizes else f"{sizes} (want {want_sizes})"))
    bad_now = _read_back(ctx)
    B.drop_caches(ctx)
    bad_cold = _read_back(ctx)
    ctx.check("Vector data can be stored and retrieved",
              cat.rc == 0 and cat.stdout.encode() == spec_file(1) and not bad_now and not bad_cold,
              f"cat vector_1.vec -> {cat.stdout!r}; all 10 files byte for byte: "
              + ("identical" if not bad_now else "; ".join(bad_now))
              + "; again after dropping caches (from the device): "
              + ("identical" if not bad_cold else "; ".join(bad_cold)))

    ctx.step("4. the vexfs vec CLI on the spec's files")
    files = " ".join(f"vector_{i}.vec" for i in range(1, 11))
    cli = B.sh(ctx, ["bash", "-c",
                     f"set -e; cat {files} > spec_all.vec; echo '[0, 0, 0, 0]' > /tmp/s5_q.txt; "
                     "vexfs vec create cli.vcol --dim 4 --metric l2; "
                     "vexfs vec insert cli.vcol spec_all.vec --ids 1-10; "
                     "vexfs vec search cli.vcol /tmp/s5_q.txt -k 3 --json; "
                     "vexfs vec info cli.vcol --json"], cwd=MNT, timeout=300, env=NUMPY_ENV)
    out = cli.stdout.strip().splitlines()
    try:
        hits = json.loads(out[-2])
        info = json.loads(out[-1])
        cli_ok = (cli.rc == 0 and hits.get("ids") == [1, 2, 3] and hits.get("distances") == [30.0] * 3
                  and info.get("count") == 10 and info.get("dim") == 4)
        cli_detail = f"search [0,0,0,0] k=3 -> {hits}; info {info}"
    except (ValueError, IndexError):
        cli_ok, cli_detail = False, f"exit {cli.rc}: {B.err_tail(cli, 600)}"
    ctx.check("vexfs vec CLI: create, insert the spec's .vec files, search, info", cli_ok, cli_detail)

    ctx.step("5. collections: the ten vectors, distinct vectors, 10000 x 128 vs numpy")
    ctx.vm.put_file(GUEST_SCRIPT.read_bytes(), GUEST_SCRIPT_AT)
    accuracy = _guest_checks(ctx, "build", "VexFS-specific vector operations work")
    ctx.metric("vector_accuracy", accuracy)
    klog.collect(ctx)

    ctx.step("6. cd /; umount; fsck.vexfs -n; mount again")
    u_ok = umount()
    fs_ok, fs_detail = B.fsck_clean(ctx, DEV)
    ctx.check("fsck.vexfs -n clean after the vector workload (no data corruption)",
              u_ok and fs_ok, f"umount {'ok' if u_ok else 'FAILED'}; {fs_detail}")
    B.drop_caches(ctx)
    re_ok = u_ok and mount()
    bad_after = _read_back(ctx) if re_ok else ["not remounted"]
    ctx.check("After umount/mount: the .vec files are byte-identical",
              re_ok and not bad_after, "all 10 identical" if not bad_after else "; ".join(bad_after))

    ctx.step("7. after the remount: same vectors, same answers")
    if re_ok:
        _guest_checks(ctx, "verify", "After umount/mount: the same searches return the same answers")
    else:
        ctx.check("After umount/mount: the same searches return the same answers", False,
                  "not attempted: the remount failed")

    if ctx.options.ann_n > 0:
        re_ok = _ann_step(ctx, re_ok, mount, umount)

    ctx.step("8. benchmark: vexfs bench vectors --json (in this VM)")
    # 20 queries per batch and 10 single queries (not the CLI's 100/20), two
    # rounds: each batch and each single query is a kernel/numpy pair timed
    # back to back (order alternating), and the judged ratio is the median
    # of the pairs' ratios (20 single-query pairs per size, 2 batch pairs;
    # a batch of 20 is one kernel chunk, blocked 4 queries at a time, as 40),
    # so a burst of load from other VMs hits both sides of a pair rather
    # than deciding the criterion. The benchmark was 600 of S5's 850 s in a
    # loaded `make run` (issue 11: S5 <= 200 s), most of it the float64
    # reference over every stored vector; that is now a float32 screen with
    # an error bound plus a float64 re-rank of the candidates (exact).
    bench = B.sh(ctx, ["vexfs", "bench", "vectors", "--dir", MNT, "--json", "-",
                       "--sizes", ctx.options.bench_sizes, "--queries", "20",
                       "--single", "10", "--rounds", "2"],
                 timeout=1800, env=NUMPY_ENV) if re_ok else None
    try:
        raw = json.loads(bench.stdout) if bench is not None and bench.rc == 0 else None
    except ValueError:
        raw = None
    if raw:
        try:
            figures, summary, problems = _bench_figures(raw)
        except (KeyError, TypeError) as exc:  # the bench's JSON changed shape
            figures, summary, problems = {}, [], [f"unexpected bench JSON ({exc!r}): {str(raw)[:300]}"]
        ctx.metric("bench", figures)
        ctx.check("Vector benchmark runs in the VM; its answers agree with numpy",
                  bool(figures) and not problems,
                  f"in {bench.duration_s:.1f} s; " + "; ".join(summary + problems))
        try:
            speed_ok, speed_detail = _bench_speed(raw)
        except (KeyError, TypeError, ZeroDivisionError) as exc:
            speed_ok, speed_detail = False, f"unexpected bench JSON ({exc!r})"
        ctx.check(f"Kernel exact search >= {SPEED_MIN:g}x numpy in this VM (batch and single)",
                  speed_ok, speed_detail)
    else:
        ctx.check("Vector benchmark runs in the VM; its answers agree with numpy", False,
                  "not run: no mount" if bench is None else
                  f"exit {bench.rc}: {B.err_tail(bench, 800)}")
        ctx.check(f"Kernel exact search >= {SPEED_MIN:g}x numpy in this VM (batch and single)",
                  False, "benchmark did not run")

    ctx.step("9. cd /; umount; fsck.vexfs -n")
    u2_ok = re_ok and umount()
    fs2_ok, fs2_detail = B.fsck_clean(ctx, DEV)
    ctx.check("fsck.vexfs -n clean after the benchmark", u2_ok and fs2_ok,
              f"umount {'ok' if u2_ok else 'FAILED'}; {fs2_detail}")
    ctx.metric("mount_s", mount_s)
    ctx.metric("umount_s", umount_s)
    if mount_s:
        ctx.check(f"Filesystem mount time < {MOUNT_LIMIT_S:g} s (every mount)",
                  max(mount_s) < MOUNT_LIMIT_S, f"{len(mount_s)} mounts, max {max(mount_s):.3f} s")
    # The longest kernel_fpu_begin()..end() section of the whole scenario
    # (module parameters; preemption is off inside one, which is what a
    # PREEMPT_RT kernel cares about): a figure for the report and matrix.
    fpu = ctx.run("cat /sys/module/vexfs/parameters/fpu_max_ns "
                  "/sys/module/vexfs/parameters/fpu_sections")
    fpu_vals = fpu.stdout.split()
    if fpu.rc == 0 and len(fpu_vals) == 2 and all(v.isdigit() for v in fpu_vals):
        ctx.metric("fpu_max_ns", int(fpu_vals[0]))
        ctx.metric("fpu_sections", int(fpu_vals[1]))
    klog.collect(ctx)

    ctx.step("10. cleanup")
    ctx.run(["rm", "-f", STATE_AT, GUEST_SCRIPT_AT, "/tmp/s5_q.txt"])
    B.cleanup(ctx, DEV, IMAGE)

    klog.collect(ctx)
    klog.record(ctx)
    ctx.check("No kernel errors or warnings during vector operations", not klog.problems,
              "none at warn level or above (taint notices excepted"
              + (f"; {len(klog.ignored)} environment line(s) ignored, see ignored_kernel_lines"
                 if klog.ignored else "") + ")"
              if not klog.problems else " | ".join(klog.problems[:20]))


SCENARIO = Scenario(id="S5", name="Vector operations", fn=run, memory="3G",
                    description="500 MB VexFS: the spec's .vec files, collections checked against "
                                "numpy, persistence, fsck, benchmark")


def _ann_guest(ctx: ScenarioContext, args: list[str], fallback: str) -> dict:
    result = B.sh(ctx, [B.GUEST_PYTHON, ANN_SCRIPT_AT, *args], timeout=3600, env=NUMPY_ENV)
    try:
        report = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        report = None
    if result.rc != 0 or not isinstance(report, dict) or not report.get("checks"):
        ctx.check(fallback, False, f"guest `{args[0]}` exit {result.rc}: {B.err_tail(result, 800)}")
        return {}
    for c in report["checks"]:
        ctx.check(c["name"], c["passed"], c["detail"])
    return report.get("metrics", {})


def _ann_step(ctx: ScenarioContext, mounted: bool, mount, umount) -> bool:
    """Issue 12: the ANN index on fashion-mnist, its persistence, and `vexfs bench ann`."""
    n, nq = ctx.options.ann_n, ctx.options.ann_queries
    ctx.step(f"7b. ANN index: fashion-mnist n={n}, {nq} queries; umount/mount; vexfs bench ann")
    if not mounted:
        for name in (ANN_BUILD_CHECK, ANN_VERIFY_CHECK):
            ctx.check(name, False, "not attempted: no mounted VexFS")
        return mounted
    ctx.vm.put_file(ANN_SCRIPT.read_bytes(), ANN_SCRIPT_AT)
    metrics = _ann_guest(ctx, ["build", MNT, ANN_STATE_AT, str(n), str(nq)], ANN_BUILD_CHECK)
    if metrics.get("points"):
        # VexFS's own curve; `vexfs bench ann` (opt-in) replaces it with every system's
        ctx.metric("ann", {k: metrics.pop(k) for k in ("dataset", "n", "dim", "points")})
    ctx.metric("ann_index", metrics)
    mounted = umount() and mount()
    if mounted:
        _ann_guest(ctx, ["verify", MNT, ANN_STATE_AT], ANN_VERIFY_CHECK)
    else:
        ctx.check(ANN_VERIFY_CHECK, False, "the remount failed")
        return mounted
    ctx.run(["rm", "-f", f"{MNT}/fmnist.vec", ANN_STATE_AT])
    if not (ctx.options.ann_bench or os.environ.get("VEXFS_ANN_BENCH") == "1"):
        ctx.note("vexfs bench ann (hnswlib, FAISS; the ANN goal) not run: it takes tens of "
                 "minutes under TCG; opt in with VEXFS_ANN_BENCH=1")
        return mounted
    cmd = ["vexfs", "bench", "ann", "--dir", MNT, "--json", "-", "-n", str(n),
           "--queries", str(nq)] + ([] if ctx.options.ann_others else ["--no-others"])
    bench = B.sh(ctx, cmd, timeout=7200, env=NUMPY_ENV)
    try:
        raw = json.loads(bench.stdout) if bench.rc == 0 else None
    except ValueError:
        raw = None
    if not isinstance(raw, dict) or not raw.get("points"):
        ctx.check(ANN_GOAL, False, f"vexfs bench ann exit {bench.rc}: {B.err_tail(bench, 800)}")
        return mounted
    ctx.metric("ann", {k: raw[k] for k in ("dataset", "n", "dim", "points") if k in raw}
               | {"builds": raw.get("builds", {}), "goal": raw.get("goal", {})})
    g = raw.get("goal", {})
    if not ctx.options.ann_others:
        # without hnswlib/FAISS points (make test's small run) there is no goal to judge
        ctx.note(f"vexfs bench ann --no-others: {len(raw['points'])} VexFS points; the goal "
                 "is judged by `make run` (hnswlib + FAISS, n=60000)")
        return mounted

    def fmt(v) -> str:
        return f"{v:.2f}" if isinstance(v, (int, float)) else "n/a"
    builds = "; ".join(f"{k} build {b.get('build_s', 0):.1f} s, {b.get('index_bytes', 0)} B"
                       for k, b in raw.get("builds", {}).items())
    ctx.check(ANN_GOAL, bool(g.get("met")),
              f"at recall@10 >= 0.95: vexfs {fmt(g.get('vexfs_qps'))} qps, hnswlib "
              f"{fmt(g.get('hnswlib_qps'))} qps (ratio {fmt(g.get('vexfs_over_hnswlib'))}), "
              f"vexfs exact {fmt(g.get('exact_qps'))} qps (ratio "
              f"{fmt(g.get('vexfs_over_exact'))}); {len(raw['points'])} points; {builds}; "
              + "; ".join(raw.get("notes", [])))
    return mounted
