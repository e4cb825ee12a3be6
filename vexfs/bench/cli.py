"""`vexfs bench`: benchmarks meant to run inside the test VM."""

from __future__ import annotations

import os

# Single-threaded numpy: the kernel side is one thread, so BLAS must be too.
# (Effective only if numpy is not imported yet, which the lazy CLI ensures.)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import click  # noqa: E402

log = logging.getLogger(__name__)


@click.group()
def bench() -> None:
    """Benchmarks run inside the VM."""


@bench.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, exists=True),
              required=True, help="A directory on a mounted VexFS.")
@click.option("--sizes", default="10000,100000", show_default=True,
              help="Comma-separated collection sizes.")
@click.option("--dim", type=click.IntRange(1, 4096), default=128, show_default=True)
@click.option("-k", type=click.IntRange(1, 1024), default=10, show_default=True)
@click.option("--queries", "nq", type=click.IntRange(1, 65536), default=100, show_default=True)
@click.option("--batch", type=click.IntRange(1, 65536), default=10000, show_default=True,
              help="Vectors per insert ioctl.")
@click.option("--single", type=click.IntRange(1), default=20, show_default=True,
              help="Queries timed one ioctl (one matmul) at a time.")
@click.option("--rounds", type=click.IntRange(1, 20), default=2, show_default=True,
              help="Timing rounds: per round one kernel/numpy pair for the batch and one "
                   "per single query, back to back; ratios are medians over the pairs.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--faiss/--no-faiss", "use_faiss", default=True, show_default=True,
              help="Also time FAISS's exact IndexFlatL2 (if faiss-cpu is installed).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the results as JSON here ('-' for stdout).")
def vectors(directory: str, sizes: str, dim: int, k: int, nq: int, batch: int, single: int,
            rounds: int, seed: int, use_faiss: bool, json_out: str | None) -> None:
    """Insert throughput and k-NN QPS: VexFS kernel vs numpy brute force."""
    from vexfs.bench.vectors import run

    try:
        size_list = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"not a list of integers: {sizes!r}", param_hint="--sizes")
    if not size_list or min(size_list) < 1:
        raise click.BadParameter("sizes must be positive", param_hint="--sizes")
    result = run(Path(directory), size_list, dim=dim, k=k, nq=nq, batch=batch, single=single,
                 seed=seed, rounds=rounds, use_faiss=use_faiss)
    if json_out == "-":
        json.dump(result.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    if json_out:
        Path(json_out).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    click.echo(f"{'n':>8} {'dim':>4} {'insert v/s':>11} {'kernel qps':>11} {'numpy qps':>10} "
               f"{'ratio':>6} {'1q kern':>8} {'1q numpy':>8} {'ratio':>6} {'ids=':>6} simd")
    for r in result.results:
        click.echo(f"{r.n:>8} {r.dim:>4} {r.insert_vps:>11.0f} {r.kernel_batch_qps:>11.1f} "
                   f"{r.numpy_batch_qps:>10.1f} {r.ratio_batch:>6.2f} "
                   f"{r.kernel_single_qps:>8.1f} {r.numpy_single_qps:>8.1f} "
                   f"{r.ratio_single:>6.2f} {r.id_agreement:>6.3f} {r.simd} "
                   f"(numpy ids= {r.numpy_id_agreement:.3f})"
                   + (f" faiss batch {r.faiss_batch_qps:.1f} single {r.faiss_single_qps:.1f}"
                      if r.faiss_batch_qps is not None else ""))


@bench.command()
@click.option("--sizes", default="100000,1000000", show_default=True,
              help="Comma-separated numbers of stored vectors.")
@click.option("--dim", type=click.IntRange(1, 4096), default=128, show_default=True)
@click.option("-k", type=click.IntRange(1, 1024), default=10, show_default=True)
@click.option("--queries", "nq", type=click.IntRange(1, 65536), default=100, show_default=True,
              help="Queries of the batch.")
@click.option("--single", type=click.IntRange(1), default=20, show_default=True,
              help="Queries timed one call at a time.")
@click.option("--rounds", type=click.IntRange(1, 20), default=3, show_default=True,
              help="Alternating timing rounds; the best time of each side counts.")
@click.option("--check", is_flag=True,
              help="Exit 1 unless every figure meets the goal (>= 1.0x FAISS single, "
                   ">= 0.9x FAISS batch) and the ids agree with FAISS.")
@click.option("--float16/--no-float16", default=True, show_default=True,
              help="Also float16 storage (L2): the core against FAISS SQfp16.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the results as JSON here ('-' for stdout).")
def native(sizes: str, dim: int, k: int, nq: int, single: int, rounds: int, check: bool,
           float16: bool, json_out: str | None) -> None:
    """On the host: the kernel's vector core (kernel/vec/) vs FAISS flat and numpy."""
    from vexfs.bench import native as nb

    try:
        size_list = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"not a list of integers: {sizes!r}", param_hint="--sizes")
    if not size_list or min(size_list) < 1:
        raise click.BadParameter("sizes must be positive", param_hint="--sizes")
    try:
        result = nb.run(size_list, dim=dim, k=k, nq=nq, single=single, rounds=rounds,
                        float16=float16)
    except RuntimeError as exc:
        raise click.ClickException(str(exc))
    if json_out == "-":
        json.dump(result.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif json_out:
        Path(json_out).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    out = sys.stderr if json_out == "-" else sys.stdout
    bw = result.memory_bandwidth_bytes_per_s
    click.echo(f"host: {result.host_cpu}; FAISS {result.faiss_version}; numpy "
               f"{result.numpy_version}; core path {result.simd}; memory copy bandwidth "
               f"{bw / 1e9:.1f} GB/s; {result.openblas_env}", file=out)
    ok = True
    for r in result.results:
        verdict_b = "goal met" if r.batch_goal_met else f"BELOW the {nb.GOAL_BATCH:g}x goal"
        verdict_s = "goal met" if r.single_goal_met else f"BELOW the {nb.GOAL_SINGLE:g}x goal"
        ok = ok and r.batch_goal_met and r.single_goal_met and r.id_agreement_faiss >= 0.999
        what = r.metric + (f" float16 (FAISS SQfp16, core {r.f16cvt})"
                           if r.dtype == "float16" else "")
        click.echo(f"n={r.n} dim={r.dim} {what}: batch vexfs {r.vexfs_batch_qps:.1f} qps, "
                   f"FAISS {r.faiss_batch_qps:.1f} (x{r.ratio_batch_faiss:.2f}, {verdict_b}), "
                   f"numpy {r.numpy_batch_qps:.1f} (x{r.ratio_batch_numpy:.2f}); single vexfs "
                   f"{r.vexfs_single_qps:.1f} qps, FAISS {r.faiss_single_qps:.1f} "
                   f"(x{r.ratio_single_faiss:.2f}, {verdict_s}), numpy {r.numpy_single_qps:.1f} "
                   f"(x{r.ratio_single_numpy:.2f}); single scans "
                   f"{r.vexfs_single_bytes_per_s / 1e9:.2f} GB/s = "
                   f"{r.vexfs_single_bytes_per_s / bw:.0%} of the copy bandwidth; "
                   f"ids = FAISS's {r.id_agreement_faiss:.4f}", file=out)
    if check and not ok:
        raise SystemExit(1)


@bench.command("fs")
@click.option("--dev", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A scratch block device: mkfs'd afresh (ext4, then VexFS) for every workload.")
@click.option("--mnt", default="/mnt/vexfs-bench", show_default=True,
              type=click.Path(file_okay=False), help="Mount point to use.")
@click.option("--files", type=click.IntRange(1, 1_000_000), default=10_000, show_default=True,
              help="(a) files created, written (4 KiB), fsynced and unlinked.")
@click.option("--seq-mb", type=click.IntRange(1, 100_000), default=100, show_default=True,
              help="(b) MB written sequentially, then fsync.")
@click.option("--tree", type=click.IntRange(1, 1_000_000), default=20_000, show_default=True,
              help="(c) files and directories of the untar-like tree, then sync.")
@click.option("--rounds", type=click.IntRange(1, 20), default=1, show_default=True,
              help="Alternating ext4/VexFS rounds; the best time of each counts.")
@click.option("--only", type=click.Choice(["fsync", "seqwrite", "untar"]), multiple=True,
              help="Run only these workloads (repeatable).")
@click.option("--seed", type=int, default=1, show_default=True, help="Tree generator seed.")
@click.option("--check", is_flag=True,
              help="Exit 1 unless VexFS is >= 1.0x ext4 on every workload.")
@click.option("--yes", is_flag=True, help="Do not ask before overwriting --dev.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the results as JSON here ('-' for stdout).")
def fs(dev: str, mnt: str, files: int, seq_mb: int, tree: int, rounds: int,
       only: tuple[str, ...], seed: int, check: bool, yes: bool, json_out: str | None) -> None:
    """In the VM, as root: VexFS vs ext4 (data=ordered) on the same device.

    DESTROYS what is on --dev. Prints each workload's seconds and the ratio
    ext4_time / vexfs_time (>= 1.0: VexFS at least as fast)."""
    from vexfs.bench import fs as fb

    if not yes and not click.confirm(f"mkfs {dev} (ext4 and VexFS, several times)?"):
        raise click.Abort()
    out = sys.stderr if json_out == "-" else sys.stdout
    try:
        result = fb.run(dev, Path(mnt), files=files, seq_mb=seq_mb, tree_n=tree, rounds=rounds,
                        seed=seed, workloads=only or fb.WORKLOADS,
                        progress=lambda m: click.echo(m, file=out))
    except (RuntimeError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    if json_out == "-":
        json.dump(result.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif json_out:
        Path(json_out).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    click.echo(f"device {dev} ({result.device_bytes >> 20} MiB), kernel {result.kernel}, "
               f"best of {rounds} round(s)", file=out)
    for w in result.workloads:
        verdict = "goal met" if w.goal_met else f"BELOW the {fb.GOAL:g}x goal"
        click.echo(f"{w.name:>8}: ext4 {w.ext4_s:8.2f} s  vexfs {w.vexfs_s:8.2f} s  "
                   f"ratio {w.ratio:5.2f}x ({verdict})  {w.description}", file=out)
    if check and not result.all_goals_met:
        raise SystemExit(1)


@bench.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, exists=True),
              required=True, help="A directory on a mounted VexFS.")
@click.option("-n", "n", type=click.IntRange(1, 60000), default=60000, show_default=True,
              help="Base vectors (the first n of the 60,000 training images).")
@click.option("--queries", "nq", type=click.IntRange(1, 10000), default=1000,
              show_default=True, help="Queries (the first of the 10,000 test images).")
@click.option("--nlist", type=click.IntRange(1, 16384), default=None,
              help="Lists of the VexFS and FAISS IVF indexes (default ~4 sqrt(n)).")
@click.option("--nprobes", default="1,2,4,8,16,32,64", show_default=True)
@click.option("--efs", default="10,20,40,80,160,320", show_default=True,
              help="hnswlib ef / FAISS efSearch values.")
@click.option("--exact-queries", type=click.IntRange(1), default=50, show_default=True,
              help="Queries timed for VexFS's exact floor.")
@click.option("--others/--no-others", default=True, show_default=True,
              help="Also hnswlib and FAISS.")
@click.option("--sample", type=click.IntRange(1), default=20000, show_default=True,
              help="Vectors the VexFS (and FAISS IVF) k-means trains on.")
@click.option("--niter", type=click.IntRange(1), default=10, show_default=True,
              help="k-means iterations of the VexFS index.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the results as JSON here ('-' for stdout).")
def ann(directory: str, n: int, nq: int, nlist: int | None, nprobes: str, efs: str,
        exact_queries: int, others: bool, sample: int, niter: int,
        json_out: str | None) -> None:
    """Recall@10 vs QPS on fashion-mnist: VexFS IVF, exact, hnswlib, FAISS."""
    from vexfs.bench.ann import goal, run

    try:
        npl = tuple(int(s) for s in nprobes.split(",") if s.strip())
        efl = tuple(int(s) for s in efs.split(",") if s.strip())
    except ValueError:
        raise click.BadParameter("not a list of integers", param_hint="--nprobes/--efs")
    try:
        res = run(Path(directory), n=n, nq=nq, nlist=nlist, nprobes=npl, efs=efl,
                  exact_queries=exact_queries, others=others, sample=sample, niter=niter)
    except (OSError, ValueError) as e:
        raise click.ClickException(str(e))
    out = res.to_dict()
    out["goal"] = goal(res.points)
    if json_out == "-":
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    if json_out:
        Path(json_out).write_text(json.dumps(out, indent=2) + "\n")
    click.echo(f"{res.dataset}: n={res.n} dim={res.dim} queries={res.nq}")
    for p in res.points:
        click.echo(f"  {p['system']:<12} knob={str(p['knob']):>5} "
                   f"recall@10={p['recall_at_10']:.4f} qps={p['qps']:.1f}")
    for name, b in res.builds.items():
        click.echo(f"  build {name:<11} {b['build_s']:.1f} s, {b['index_bytes']} bytes")
    g = out["goal"]
    click.echo(f"goal (recall@10 >= {g['target_recall']}: vexfs >= hnswlib and >= 10x exact): "
               f"{'MET' if g['met'] else 'NOT MET'} "
               f"(vexfs/hnswlib {g['vexfs_over_hnswlib']}, vexfs/exact {g['vexfs_over_exact']})")
