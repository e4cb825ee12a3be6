"""S5's vector checks, run INSIDE the guest with the venv's python.

    python _s5_guest.py build  DIR STATE   # create, insert, search, check
    python _s5_guest.py verify DIR STATE   # after umount/mount: same answers

DIR is the mounted VexFS directory holding the spec's vector_$i.vec files;
STATE is a .npz outside VexFS (guest /tmp) where `build` keeps the data,
the queries and the kernel's answers so `verify` can compare them
bit for bit after the remount.

Prints one JSON object: {"checks": [{"name", "passed", "detail"}],
"metrics": {...}}. Every check is computed here by code; the host only
records them (vexfs/harness/scenarios/s5_vectors.py). A check that raises
is a failed check carrying the exception, so one broken operation does not
hide the others.

Ground truth: numpy on the same float32 data. Each distance the kernel
returns is compared with the exact value of its pair (numpy, float64
accumulation of the float32 inputs). It passes when its error is within
1e-5 relative, or, where the distance is the small difference of large
terms (a near-zero cosine or inner-product distance, an L2 self-match),
within the float32 rounding bound of those terms, (dim + 2) * 2**-24 *
scale, with scale = |q|^2+|x|^2 (l2), |q||x| (ip) or 1 (cosine): no float32
computation, numpy's included, can promise 1e-5 relative there. The
reported `max_rel_err` covers the well-conditioned distances (|d| >= 1e-2
* scale), `max_err_ratio` all of them (error / allowed, <= 1 passes). Ids
must be identical at every rank that is not a tie; a rank is a tie when
the exact distances around it (in the full sorted order, all n vectors)
are within that same allowance, and there the kernel's id must be one of
the tied ids. The error against numpy's own float32 answer is reported
too.
"""

from __future__ import annotations

import json
import re
import sys
import traceback
from pathlib import Path

import numpy as np

from vexfs.vector import Collection

REL_TOL = 1e-5
F32_UNIT = 2.0 ** -24  # float32 unit roundoff
METRICS = ("l2", "cosine", "ip")
N, DIM, NQ_RANDOM, NQ_SELF, K = 10_000, 128, 100, 5, 10
SEED = 20261125
SPEC_LINE = re.compile(r"vector_(\d+): \[([^\]]*)\]\n")
SPEC_VECTOR = [1.0, 2.0, 3.0, 4.0]
# The spec's vector with its first component replaced by i: distinct
# vectors whose L2 order around q = [5.2, 2, 3, 4] is obvious by hand.
DISTINCT_QUERY_L2 = [5.2, 2.0, 3.0, 4.0]
DISTINCT_EXPECTED_L2 = [5, 6, 4, 7, 3, 8, 2, 9, 1, 10]

checks: list[dict] = []
metrics: dict = {}


def check(name: str, passed: bool, detail: str) -> None:
    checks.append({"name": name, "passed": bool(passed), "detail": detail})


def guarded(name: str):
    """Run fn(); an exception becomes a failed check named `name`."""
    def wrap(fn):
        def inner(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # the whole point: report, go on
                tb = traceback.format_exc(limit=3).strip().splitlines()
                check(name, False, f"{type(exc).__name__}: {exc} [{' / '.join(tb[-3:])}]")
                return None
        return inner
    return wrap


# ---------------------------------------------------------------- reference

def exact_distances(x: np.ndarray, q: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(distances (n, nq), scale (n, nq)) of every query against every row,
    in float64 from the float32 inputs (errors ~1e-16 relative to the terms)."""
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    xn2 = (x64 * x64).sum(1)[:, None]
    qn2 = (q64 * q64).sum(1)[None, :]
    dot = x64 @ q64.T
    if metric == "l2":
        return np.maximum(xn2 + qn2 - 2.0 * dot, 0.0), xn2 + qn2
    norms = np.sqrt(xn2 * qn2)
    if metric == "ip":
        return -dot, norms
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.where(norms > 0, dot / norms, 0.0)
    return 1.0 - cos, np.ones_like(dot)


def float32_distance(x: np.ndarray, q: np.ndarray, metric: str) -> float:
    """One pair the way a numpy user computes it in float32."""
    if metric == "l2":
        diff = x - q
        return float((diff * diff).sum(dtype=np.float32))
    dot = np.float32((x * q).sum(dtype=np.float32))
    if metric == "ip":
        return float(-dot)
    xn = np.sqrt((x * x).sum(dtype=np.float32))
    qn = np.sqrt((q * q).sum(dtype=np.float32))
    return float(np.float32(1.0) - dot / (xn * qn))


def compare(x: np.ndarray, ids: np.ndarray, queries: np.ndarray, metric: str,
            kd: np.ndarray, ki: np.ndarray, k: int) -> dict:
    """Kernel answers (kd, ki) vs numpy ground truth; see the module docstring."""
    pos_of = {int(v): i for i, v in enumerate(ids.tolist())}
    n = x.shape[0]
    bad: list[str] = []
    ties = mismatched = 0
    max_rel = max_rel32 = max_ratio = 0.0
    slack = (x.shape[1] + 2) * F32_UNIT
    dist_all, scale_all = exact_distances(x, queries, metric)
    dist_all, scale_all = np.ascontiguousarray(dist_all.T), np.ascontiguousarray(scale_all.T)
    for qi in range(queries.shape[0]):
        d, scale = dist_all[qi], scale_all[qi]
        order = np.lexsort((ids, d))  # by distance, then id: the documented tie rule
        kk = min(k, n)
        ref_ids = ids[order[:kk]]
        ref_d = d[order[:kk]]
        tol_all = np.maximum(REL_TOL * np.abs(d), slack * scale)
        # rows of this query past the stored count must be padding
        if kk < k and not (np.all(ki[qi, kk:] == -1) and np.all(np.isinf(kd[qi, kk:]))):
            bad.append(f"q{qi}: positions past {kk} are not (-1, inf)")
        prev = None
        for r in range(kk):
            kid = int(ki[qi, r])
            if kid not in pos_of:
                bad.append(f"q{qi} rank {r}: id {kid} was never inserted")
                continue
            p = pos_of[kid]
            tol = tol_all[order[r]]
            abs_err = abs(float(kd[qi, r]) - d[p])
            allowed = max(REL_TOL * abs(d[p]), slack * scale[p])
            max_ratio = max(max_ratio, abs_err / allowed)
            if abs(d[p]) >= 1e-2 * scale[p]:
                max_rel = max(max_rel, abs_err / abs(d[p]))
            d32 = float32_distance(x[p], queries[qi], metric)
            if abs(d32) >= 1e-2 * scale[p]:
                max_rel32 = max(max_rel32, abs(float(kd[qi, r]) - d32) / abs(d32))
            if abs_err > allowed:
                bad.append(f"q{qi} rank {r} id {kid}: distance {float(kd[qi, r])!r}, exact "
                           f"{float(d[p])!r} (error {abs_err:.2e}, allowed {allowed:.2e})")
            # a tie: the exact distance at rank r is within tol of rank r-1 or r+1
            lo = d[order[r - 1]] if r > 0 else -np.inf
            hi = d[order[r + 1]] if r + 1 < n else np.inf
            tied = (ref_d[r] - lo) <= tol or (hi - ref_d[r]) <= tol
            if kid != int(ref_ids[r]):
                if tied and abs(d[p] - ref_d[r]) <= 2 * tol:
                    ties += 1
                else:
                    mismatched += 1
                    bad.append(f"q{qi} rank {r}: id {kid} (exact {d[p]:.9g}), numpy id "
                               f"{int(ref_ids[r])} (exact {ref_d[r]:.9g})")
            cur = (float(kd[qi, r]), kid)
            if prev is not None and (cur[0] < prev[0] or (cur[0] == prev[0] and cur[1] < prev[1])):
                bad.append(f"q{qi} rank {r}: not sorted by (distance, id): {prev} then {cur}")
            prev = cur
    return {"bad": bad, "ties": ties, "mismatched": mismatched, "max_rel_err": max_rel,
            "max_err_ratio": max_ratio, "max_rel_err_vs_numpy_f32": max_rel32}


def summary(res: dict, nq: int, k: int) -> str:
    text = (f"{nq} queries x k={k}: {res['mismatched']} id mismatches outside ties, "
            f"{res['ties']} tie swaps, max rel distance error {res['max_rel_err']:.2e} "
            f"(vs numpy float32 {res['max_rel_err_vs_numpy_f32']:.2e}), max error/allowed "
            f"{res['max_err_ratio']:.2f}")
    if res["bad"]:
        text += f"; {len(res['bad'])} problems, first: " + " | ".join(res["bad"][:4])
    return text


# ---------------------------------------------------------------- data

def random_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((N, DIM), dtype=np.float32)
    # 64-bit ids, inserted in a random order
    ids = (np.uint64(1) << np.uint64(40)) + np.uint64(7) * rng.permutation(N).astype(np.uint64)
    q = rng.standard_normal((NQ_RANDOM, DIM), dtype=np.float32)
    self_rows = rng.choice(N, NQ_SELF, replace=False)
    queries = np.ascontiguousarray(np.vstack([q, x[self_rows]]))
    return x, ids, queries


def distinct_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.array([[float(i)] + SPEC_VECTOR[1:] for i in range(1, 11)], dtype=np.float32)
    ids = np.arange(1, 11, dtype=np.uint64)
    queries = np.array([DISTINCT_QUERY_L2, [-1.0, 0.5, 0.0, 2.0]], dtype=np.float32)
    return x, ids, queries


def as_key(ids: np.ndarray) -> np.ndarray:
    """uint64 ids as the int64 the client returns (ids < 2**63 here)."""
    return ids.astype(np.int64)


# ---------------------------------------------------------------- build

def read_spec_files(directory: Path) -> tuple[np.ndarray, np.ndarray] | None:
    vectors, ids, problems = [], [], []
    for i in range(1, 11):
        path = directory / f"vector_{i}.vec"
        text = path.read_text()
        m = SPEC_LINE.fullmatch(text)
        if not m or int(m.group(1)) != i:
            problems.append(f"{path.name}: {text!r}")
            continue
        values = [float(v) for v in m.group(2).split(",")]
        if values != SPEC_VECTOR:
            problems.append(f"{path.name}: values {values}")
        ids.append(i)
        vectors.append(values)
    check("The ten .vec files parse back as the spec's vectors", not problems,
          f"10 files 'vector_$i: [1.0, 2.0, 3.0, 4.0]' read from VexFS and parsed" if not problems
          else "; ".join(problems))
    if problems:
        return None
    return np.array(ids, dtype=np.uint64), np.array(vectors, dtype=np.float32)


@guarded("Ten spec vectors in a collection: stats, get, expected neighbours")
def spec_collection(directory: Path, state: dict) -> None:
    parsed = read_spec_files(directory)
    if parsed is None:
        raise ValueError("the .vec files did not parse; nothing to insert")
    ids, vecs = parsed
    path = directory / "spec10.vcol"
    with Collection.create(path, 4, "l2") as coll:
        added = coll.insert(ids, vecs)
        st = coll.stats()
        got = coll.get(ids)
        d_same, i_same = coll.search(np.array(SPEC_VECTOR, dtype=np.float32), 10)
        d_orig, i_orig = coll.search(np.zeros(4, dtype=np.float32), 3)
        d_pad, i_pad = coll.search(np.array(SPEC_VECTOR, dtype=np.float32), 12)
    problems = []
    if added != 10 or st.count != 10 or st.dim != 4 or st.metric != "l2":
        problems.append(f"insert added {added}; stats count {st.count} dim {st.dim} metric {st.metric}")
    if got.tobytes() != vecs.tobytes():
        problems.append(f"get returned {got.tolist()}")
    # ten identical vectors: every one at distance 0, ties broken by id
    if i_same[0].tolist() != list(range(1, 11)) or np.any(d_same[0] != 0):
        problems.append(f"query [1,2,3,4] k=10 -> ids {i_same[0].tolist()} d {d_same[0].tolist()}")
    if i_orig[0].tolist() != [1, 2, 3] or np.any(d_orig[0] != 30.0):
        problems.append(f"query [0,0,0,0] k=3 -> ids {i_orig[0].tolist()} d {d_orig[0].tolist()} "
                        "(want 1,2,3 at 30)")
    if i_pad[0].tolist() != list(range(1, 11)) + [-1, -1] or not np.all(np.isinf(d_pad[0, 10:])):
        problems.append(f"k=12 over 10 vectors -> ids {i_pad[0].tolist()}")
    state.update(spec_ids=ids, spec_vecs=vecs, spec_d=np.vstack([d_same, d_pad[:, :10]]),
                 spec_i=np.vstack([i_same, i_pad[:, :10]]), spec_d0=d_orig, spec_i0=i_orig)
    check("Ten spec vectors in a collection: stats, get, expected neighbours", not problems,
          "stats count 10 dim 4 l2; get bit-exact; [1,2,3,4] -> ids 1..10 at 0 (ties by id); "
          "[0,0,0,0] k=3 -> 1,2,3 at 30; k=12 pads with (-1, inf)" if not problems
          else "; ".join(problems))


@guarded("Distinct 4-d vectors: expected neighbours for l2, cosine, ip")
def distinct_collections(directory: Path, state: dict) -> None:
    x, ids, queries = distinct_data()
    details, ok = [], True
    for metric in METRICS:
        with Collection.create(directory / f"distinct_{metric}.vcol", 4, metric) as coll:
            coll.insert(ids, x)
            kd, ki = coll.search(queries, 10)
        state[f"distinct_{metric}_d"], state[f"distinct_{metric}_i"] = kd, ki
        res = compare(x, ids, queries, metric, kd, ki, 10)
        good = not res["bad"]
        if metric == "l2" and ki[0].tolist() != DISTINCT_EXPECTED_L2:
            good = False
            res["bad"].append(f"l2 order {ki[0].tolist()}, by hand {DISTINCT_EXPECTED_L2}")
        ok &= good
        details.append(f"{metric}: " + ("ok" if good else " | ".join(res["bad"][:3])))
    check("Distinct 4-d vectors: expected neighbours for l2, cosine, ip", ok,
          f"ids {DISTINCT_EXPECTED_L2} around {DISTINCT_QUERY_L2} (l2, by hand) and numpy's "
          "order for every metric; " + "; ".join(details))


def random_collection(directory: Path, state: dict, metric: str) -> None:
    name = f"{N} x {DIM} random vectors ({metric}): k-NN matches numpy ground truth"

    @guarded(name)
    def body() -> None:
        x, ids, queries = random_data()
        path = directory / f"random_{metric}.vcol"
        with Collection.create(path, DIM, metric) as coll:
            for start in range(0, N, 2500):  # several insert ioctls
                coll.insert(ids[start:start + 2500], x[start:start + 2500])
            count = len(coll)
            kd, ki = coll.search(queries, K)
            st = coll.stats()
        res = compare(x, ids, queries, metric, kd, ki, K)
        state[f"random_{metric}_d"], state[f"random_{metric}_i"] = kd, ki
        metrics[f"random_{metric}"] = {"max_rel_err": res["max_rel_err"],
                                       "max_err_ratio": res["max_err_ratio"],
                                       "max_rel_err_vs_numpy_f32": res["max_rel_err_vs_numpy_f32"],
                                       "tie_swaps": res["ties"], "simd": st.simd,
                                       "bytes": st.bytes}
        ok = count == N and not res["bad"] and res["mismatched"] == 0
        check(name, ok, f"count {count}; simd {st.simd}; " + summary(res, queries.shape[0], K))
    body()


# ---------------------------------------------------------------- verify

def verify(directory: Path, saved: dict) -> None:
    @guarded("After umount/mount: collections keep their vectors bit-exact")
    def vectors() -> None:
        problems = []
        x, ids, _ = random_data()
        for metric in METRICS:
            with Collection.open(directory / f"random_{metric}.vcol", readonly=True) as coll:
                st = coll.stats()
                got = coll.get(ids)
            if (st.count, st.dim, st.metric) != (N, DIM, metric):
                problems.append(f"random_{metric}: stats {st}")
            if got.tobytes() != x.tobytes():
                rows = np.nonzero((got != x).any(1))[0]
                problems.append(f"random_{metric}: {rows.size} vectors differ, first rows {rows[:5].tolist()}")
        with Collection.open(directory / "spec10.vcol", readonly=True) as coll:
            got = coll.get(saved["spec_ids"])
            if got.tobytes() != saved["spec_vecs"].tobytes() or len(coll) != 10:
                problems.append(f"spec10: {got.tolist()}")
        check("After umount/mount: collections keep their vectors bit-exact", not problems,
              f"get() of all {N} ids in 3 collections and the 10 spec vectors equal what was inserted"
              if not problems else "; ".join(problems))

    @guarded("After umount/mount: the same searches return the same answers")
    def searches() -> None:
        problems = []
        _, _, queries = random_data()
        for metric in METRICS:
            with Collection.open(directory / f"random_{metric}.vcol", readonly=True) as coll:
                kd, ki = coll.search(queries, K)
            if kd.tobytes() != saved[f"random_{metric}_d"].tobytes() or \
                    not np.array_equal(ki, saved[f"random_{metric}_i"]):
                diff = int((ki != saved[f"random_{metric}_i"]).sum())
                problems.append(f"random_{metric}: {diff} ids differ")
        dx, _, dq = distinct_data()
        for metric in METRICS:
            with Collection.open(directory / f"distinct_{metric}.vcol", readonly=True) as coll:
                kd, ki = coll.search(dq, 10)
            if kd.tobytes() != saved[f"distinct_{metric}_d"].tobytes() or \
                    not np.array_equal(ki, saved[f"distinct_{metric}_i"]):
                problems.append(f"distinct_{metric}: {ki.tolist()}")
        with Collection.open(directory / "spec10.vcol", readonly=True) as coll:
            d_same, i_same = coll.search(np.array(SPEC_VECTOR, dtype=np.float32), 10)
            d0, i0 = coll.search(np.zeros(4, dtype=np.float32), 3)
        if not (np.array_equal(i_same, saved["spec_i"][:1]) and np.array_equal(i0, saved["spec_i0"])
                and d_same.tobytes() == saved["spec_d"][:1].tobytes()
                and d0.tobytes() == saved["spec_d0"].tobytes()):
            problems.append(f"spec10: {i_same.tolist()} {i0.tolist()}")
        check("After umount/mount: the same searches return the same answers", not problems,
              f"{queries.shape[0]} queries x 3 metrics on {N} x {DIM}, the distinct and spec "
              "collections: ids and distances bit-identical to before" if not problems
              else "; ".join(problems))

    vectors()
    searches()


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("build", "verify"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, directory, state_path = argv[0], Path(argv[1]), Path(argv[2])
    if mode == "build":
        state: dict = {}
        spec_collection(directory, state)
        distinct_collections(directory, state)
        for metric in METRICS:
            random_collection(directory, state, metric)
        np.savez(state_path, **state)
    else:
        with np.load(state_path) as data:
            saved = {k: data[k] for k in data.files}
        verify(directory, saved)
    json.dump({"checks": checks, "metrics": metrics}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
