"""S5's ANN-index checks on fashion-mnist, run INSIDE the guest (venv python).

    _s5_ann_guest.py build  MNT STATE N NQ   collection of the first N training
                                             images, index, recall@10 of NQ
                                             queries at the default nprobe,
                                             10% deletes never returned
    _s5_ann_guest.py verify MNT STATE        after umount/mount: same answers

Prints one JSON object: {"checks": [{"name", "passed", "detail"}], "metrics": {}}.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from vexfs.bench.ann import K, ground_truth, load_fashion_mnist, recall_at
from vexfs.vector.client import Collection

RECALL_MIN = 0.95
checks: list[dict] = []


def check(name: str, passed: bool, detail: str) -> None:
    checks.append({"name": name, "passed": bool(passed), "detail": detail})


def build(mnt: Path, state: Path, n: int, nq: int) -> dict:
    x, q = load_fashion_mnist(n, nq)
    path = mnt / "fmnist.vec"
    with Collection.create(path, x.shape[1], "l2") as c:
        ids = np.arange(x.shape[0], dtype=np.uint64)
        for s in range(0, len(ids), 10000):
            c.insert(ids[s:s + 10000], x[s:s + 10000])
        t0 = time.perf_counter()
        info = c.build_index(sample=10000, niter=6)
        build_s = time.perf_counter() - t0
        st = c.index_stats()
        truth = ground_truth(x, q, K)
        t0 = time.perf_counter()
        d, i = c.search(q, K)
        qps = len(q) / (time.perf_counter() - t0)
        r = recall_at(i, truth)
        check(f"ANN index: recall@10 >= {RECALL_MIN} at the default nprobe (fashion-mnist)",
              r >= RECALL_MIN and st.indexed == len(ids) and st.pending == 0,
              f"n={len(ids)} nlist={st.nlist} nprobe={st.nprobe}: recall@10 {r:.4f} over "
              f"{len(q)} queries, {qps:.1f} qps (batch), build {build_s:.1f} s, "
              f"{c.last_scanned / len(q):.0f} records scanned per query; index "
              f"{st.index_bytes} bytes")
        # the recall@10-QPS curve of VexFS alone (single-query calls), and the exact floor
        points = []
        for nprobe in (1, 2, 4, 8, 16, 32):
            if nprobe > st.nlist:
                break
            t0 = time.perf_counter()
            got = np.concatenate([c.search(q[j:j + 1], K, nprobe=nprobe)[1]
                                  for j in range(len(q))])
            points.append({"system": "vexfs", "knob": nprobe,
                           "recall_at_10": recall_at(got, truth),
                           "qps": len(q) / (time.perf_counter() - t0)})
        ne = min(20, len(q))
        t0 = time.perf_counter()
        got = np.concatenate([c.search(q[j:j + 1], K, exact=True)[1] for j in range(ne)])
        points.append({"system": "vexfs-exact", "knob": None,
                       "recall_at_10": recall_at(got, truth[:ne]),
                       "qps": ne / (time.perf_counter() - t0)})
        rng = np.random.default_rng(3)
        dels = rng.choice(ids, len(ids) // 10, replace=False)
        got = c.delete(dels)
        keep = np.ones(len(ids), bool)
        keep[dels.astype(np.int64)] = False
        d, i = c.search(q, K)
        leaked = int(np.isin(i, dels.astype(np.int64)).sum())
        truth2 = np.nonzero(keep)[0][ground_truth(x[keep], q, K)]
        r2 = recall_at(i, truth2)
        check("ANN index: deleted ids are never returned (10% deleted)",
              got == len(dels) and leaked == 0,
              f"deleted {got}; {leaked} deleted ids among {i.size} results; recall@10 after "
              f"the deletes {r2:.4f}")
        c.sync()
        np.savez(state, q=q, d=d, i=i)
    return {"dataset": "fashion-mnist-784-euclidean", "n": int(len(ids)), "dim": int(x.shape[1]),
            "points": points, "ann_recall_default": r, "ann_recall_after_deletes": r2, "ann_build_s": build_s,
            "ann_nlist": st.nlist, "ann_nprobe": st.nprobe, **{f"ann_{k}": v for k, v in
                                                              info.items()}}


def verify(mnt: Path, state: Path) -> dict:
    s = np.load(state)
    with Collection.open(mnt / "fmnist.vec", readonly=True) as c:
        d, i = c.search(s["q"], K)
        st = c.index_stats()
    same = np.array_equal(i, s["i"]) and np.array_equal(d.view(np.uint32),
                                                        s["d"].view(np.uint32))
    check("ANN index survives umount/mount: identical answers", same and st.nlist > 0,
          f"{len(s['q'])} queries, ids and distance bits "
          + ("identical" if same else "DIFFER") + f"; index stats {st.to_dict()}")
    return {}


def main(argv: list[str]) -> int:
    mode, mnt, state = argv[0], Path(argv[1]), Path(argv[2])
    try:
        if mode == "build":
            metrics = build(mnt, state, int(argv[3]), int(argv[4]))
        else:
            metrics = verify(mnt, state)
    except Exception as exc:  # report, never hang the scenario
        check(f"ANN guest step {mode}", False, f"{type(exc).__name__}: {exc}")
        metrics = {}
    json.dump({"checks": checks, "metrics": metrics}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
