"""`vexfs vec`: create, fill, query and inspect vector collections on VexFS."""

from __future__ import annotations

import json
import logging
import sys

import click
import numpy as np

from vexfs import layout as L
from vexfs.vector import abi
from vexfs.vector.client import Collection
from vexfs.vector.vecio import VectorFileError, parse_id_list, read_vectors

log = logging.getLogger(__name__)


def _fail(e: Exception) -> None:
    raise click.ClickException(str(e))


@click.group()
def vec() -> None:
    """Vector collections: create, insert, search, get, delete, info."""



def _show_stats(stats: dict, as_json: bool) -> None:
    """One JSON object, or a key/value table (vec info, vec index stats)."""
    if as_json:
        click.echo(json.dumps(stats))
        return
    for key, value in stats.items():
        click.echo(f"{key:12} {value}")

@vec.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--dim", type=click.IntRange(1, abi.VEXFS_MAX_DIM), required=True,
              help="Vector dimension.")
@click.option("--metric", type=click.Choice(["l2", "cosine", "ip"]), default="l2",
              show_default=True, help="l2 = squared euclidean, ip = -dot, cosine = 1 - cos.")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32",
              show_default=True,
              help="Stored element type: float16 halves the bytes per vector (values are "
                   "rounded to float16 on insert; see docs/vector-api.md for the error bound).")
def create(path: str, dim: int, metric: str, dtype: str) -> None:
    """Make PATH (new or empty, on VexFS) a collection."""
    try:
        Collection.create(path, dim, metric, dtype=dtype).close()
    except (OSError, ValueError) as e:
        _fail(e)
    click.echo(f"created {path}: dim={dim} metric={metric} dtype={dtype}")


@vec.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--ids", "ids_opt", multiple=True,
              help="Ids (\"1 2 3\", \"1,2\", ranges \"0-99\"); default: count up from "
                   "the collection's size, or from --start.")
@click.option("--start", type=click.IntRange(0), default=None,
              help="First id when --ids is not given.")
@click.option("--upsert", is_flag=True, help="Overwrite vectors whose id exists.")
def insert(path: str, file: str, ids_opt: tuple[str, ...], start: int | None,
           upsert: bool) -> None:
    """Insert the vectors of FILE (.npy, .fvecs or text) into PATH."""
    try:
        vectors = read_vectors(file)
        with Collection.open(path) as coll:
            if ids_opt:
                ids = parse_id_list(ids_opt)
            else:
                first = len(coll) if start is None else start
                ids = np.arange(first, first + vectors.shape[0], dtype=np.uint64)
            if ids.shape[0] != vectors.shape[0]:
                raise ValueError(f"{ids.shape[0]} ids for {vectors.shape[0]} vectors")
            if upsert:
                added, updated = coll.upsert(ids, vectors)
            else:
                added, updated = coll.insert(ids, vectors), 0
    except (OSError, ValueError, VectorFileError, TypeError) as e:
        _fail(e)
    click.echo(f"{path}: added {added}, updated {updated}")


@vec.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.argument("queryfile", type=click.Path(exists=True, dir_okay=False))
@click.option("-k", type=click.IntRange(1, abi.VEXFS_MAX_K), default=10, show_default=True,
              help=f"How many nearest neighbours per query (1..{abi.VEXFS_MAX_K}).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per query.")
@click.option("--npy", "npy_prefix", type=click.Path(dir_okay=False), default=None,
              metavar="PREFIX",
              help="Also write PREFIX.D.npy (distances, float32, queries x k) and "
                   "PREFIX.I.npy (ids, int64, -1 where fewer than k exist), as FAISS "
                   "returns D and I.")
@click.option("--nprobe", type=click.IntRange(1, L.VEXFS_INDEX_MAX_NLIST), default=None,
              help="Lists of the ANN index to visit per query (default: the index's own). "
                   "Needs an index (vexfs vec index build).")
@click.option("--exact", is_flag=True, help="Exact search even if the collection has an index.")
def search(path: str, queryfile: str, k: int, as_json: bool, npy_prefix: str | None,
           nprobe: int | None, exact: bool) -> None:
    """The k nearest stored vectors of each vector in QUERYFILE (approximate with an index)."""
    try:
        queries = read_vectors(queryfile)
        with Collection.open(path, readonly=True) as coll:
            opts: dict = {}
            if exact:
                opts["exact"] = True
            if nprobe is not None:
                opts["nprobe"] = nprobe
            dist, ids = coll.search(queries, k, **opts)
        if npy_prefix:
            np.save(f"{npy_prefix}.D.npy", dist)
            np.save(f"{npy_prefix}.I.npy", ids)
    except (OSError, ValueError, VectorFileError, TypeError) as e:
        _fail(e)
    if npy_prefix:
        click.echo(f"wrote {npy_prefix}.D.npy and {npy_prefix}.I.npy", err=True)
    for qi in range(dist.shape[0]):
        hits = [(int(i), float(d)) for i, d in zip(ids[qi], dist[qi]) if i >= 0]
        if as_json:
            click.echo(json.dumps({"query": qi, "ids": [h[0] for h in hits],
                                   "distances": [h[1] for h in hits]}))
        else:
            click.echo(f"query {qi}: " + " ".join(f"{i}:{d:.6g}" for i, d in hits))


@vec.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True,
              help="Print the statistics as one JSON object instead of a table.")
def info(path: str, as_json: bool) -> None:
    """Dimension, metric, count and size of a collection."""
    try:
        with Collection.open(path, readonly=True) as coll:
            st = coll.stats()
    except OSError as e:
        _fail(e)
    _show_stats(st.to_dict(), as_json)


@vec.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.argument("ids", nargs=-1, required=True)
def delete(path: str, ids: tuple[str, ...]) -> None:
    """Remove IDS (numbers or ranges like 10-19) from PATH."""
    try:
        idv = parse_id_list(ids)
        with Collection.open(path) as coll:
            n = coll.delete(idv)
    except (OSError, ValueError) as e:
        _fail(e)
    click.echo(f"{path}: deleted {n} of {idv.shape[0]}")


@vec.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.argument("ids", nargs=-1, required=True)
@click.option("--npy", "npy_out", type=click.Path(dir_okay=False),
              help="Write the vectors to this .npy file instead of printing them; row i "
                   "is always the i-th id asked for.")
@click.option("--missing", type=click.Choice(["fail", "nan"]), default="fail",
              show_default=True,
              help="With --npy, an id that is not stored: 'fail' writes nothing and exits "
                   "1 naming the ids; 'nan' writes a NaN row in its place (and exits 1).")
def get(path: str, ids: tuple[str, ...], npy_out: str | None, missing: str) -> None:
    """Print the vectors stored under IDS."""
    try:
        idv = parse_id_list(ids)
        with Collection.open(path, readonly=True) as coll:
            vectors, found = coll.get(idv, missing="mask")
    except (OSError, ValueError) as e:
        _fail(e)
    if npy_out:
        absent = idv[~found]
        if len(absent) and missing == "fail":
            shown = ", ".join(str(int(x)) for x in absent[:10])
            raise click.ClickException(
                f"{len(absent)} of {len(idv)} ids are not in {path} ({shown}"
                f"{', ...' if len(absent) > 10 else ''}); nothing written (use --missing nan "
                "to write NaN rows in their place)")
        out = np.array(vectors, dtype=np.float32, copy=True)
        out[~found] = np.nan          # rows stay aligned with the ids asked for
        np.save(npy_out, out)
        if len(absent):
            click.echo(f"{len(absent)} ids not found: NaN rows in {npy_out}", err=True)
    else:
        for i, ok, v in zip(idv.tolist(), found, vectors):
            click.echo(f"{i}: " + ("[" + ", ".join(f"{x:.9g}" for x in v) + "]"
                                   if ok else "not found"))
    if not found.all():
        sys.exit(1)


@vec.group()
def index() -> None:
    """The ANN (IVF) index of a collection: build, stats, compact, drop."""


def _progress_bar(label: str):
    bars: dict[str, object] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = click.progressbar(length=total, label=f"{label}: {stage}", file=sys.stderr)
            bar.__enter__()
            bars[stage] = bar
        bar.update(done - bar.pos)        # type: ignore[attr-defined]
        if done >= total:
            bar.__exit__(None, None, None)  # type: ignore[attr-defined]
    return progress


@index.command("build")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--nlist", type=click.IntRange(1, L.VEXFS_INDEX_MAX_NLIST), default=None,
              help="Number of lists (default: about 4 sqrt(count)).")
@click.option("--nprobe", type=click.IntRange(1, L.VEXFS_INDEX_MAX_NLIST), default=None,
              help="Default lists visited per query (default: max(4, nlist / 30)).")
@click.option("--sample", type=click.IntRange(1), default=20000, show_default=True,
              help="Records the k-means trains on.")
@click.option("--niter", type=click.IntRange(1), default=10, show_default=True,
              help="k-means iterations.")
@click.option("--seed", type=int, default=0, show_default=True)
def index_build(path: str, nlist: int | None, nprobe: int | None, sample: int, niter: int,
                seed: int) -> None:
    """Train centroids on a sample (numpy k-means), install them, assign every record."""
    try:
        with Collection.open(path) as coll:
            info = coll.build_index(nlist=nlist, nprobe=nprobe, sample=sample, niter=niter,
                                    seed=seed, progress=_progress_bar(path))
    except (OSError, ValueError) as e:
        _fail(e)
    click.echo(f"{path}: index built: nlist={info['nlist']} nprobe={info['nprobe']} "
               f"assigned={info['assigned']} train={info['train_s']:.1f}s "
               f"assign={info['assign_s']:.1f}s")


@index.command("stats")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def index_stats(path: str, as_json: bool) -> None:
    """Indexed and pending records, nlist, default nprobe, index bytes."""
    try:
        with Collection.open(path, readonly=True) as coll:
            st = coll.index_stats()
    except OSError as e:
        _fail(e)
    _show_stats(st.to_dict(), as_json)


@index.command("compact")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def index_compact(path: str) -> None:
    """Put every pending record (inserted or upserted since the build) on its list."""
    try:
        with Collection.open(path) as coll:
            n = coll.compact_index(progress=_progress_bar(path))
            st = coll.index_stats()
    except (OSError, ValueError) as e:
        _fail(e)
    click.echo(f"{path}: assigned {n}; indexed {st.indexed}, pending {st.pending}")


@index.command("drop")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def index_drop(path: str) -> None:
    """Remove the index (searches become exact)."""
    try:
        with Collection.open(path) as coll:
            coll.drop_index()
    except OSError as e:
        _fail(e)
    click.echo(f"{path}: index dropped")
