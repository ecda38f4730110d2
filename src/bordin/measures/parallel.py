"""``bordin analyze`` on every core of this machine: partitions of clients in worker processes.

The same two passes as :mod:`bordin.measures.stream`, with the partitions shared out among
``W`` worker processes (started with ``spawn``: Polars' thread pool does not survive ``fork``).
Worker ``w`` takes partitions ``w, w + W, w + 2W ...``:

1. First pass, in the workers: read the partition's rows with a filter on a range of client ids,
   check them, count what the summary needs and what the trajectory fit reads (counted
   ``(session, intake, score)`` triples, small: sent to the parent with the counts). A worker
   with one partition keeps its rows in memory for the second pass; one with several spills
   them to a Parquet part file.
2. The parent fits the trajectory models once, on the partitions' triples merged
   (:func:`bordin.measures.trajectories.merge_counts`,
   :func:`bordin.measures.batch.plan_from_parts`), and sends the plan to every worker.
3. Second pass, in the workers: each partition analysed on its own
   (:func:`bordin.measures.batch.analyze_rows`) and its tables written as one part per
   table and measure (CSV rows without the header, or Parquet). The output files hold the
   parts in order, measure by measure and partition by partition, behind one header line: a
   CSV part whose place is known when it is written (every part before it written) goes
   straight into its file, the others are copied to their place as soon as every part before
   them is written (:class:`_Joiner`); Parquet parts are joined at the end.

Partitions are consecutive ranges of sorted client ids, so the joined files are byte for byte
those of the in-memory engine (tested). When a partition's rows fail the checks, the error of
the lowest such partition is reported, as a partition-by-partition run would report it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing
import os
import shutil
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import polars as pl

from bordin.measures import batch, stream, trajectories
from bordin.measures.csvsafe import neutralise_formulas, plain_text
from bordin.measures.instruments import Instrument
from bordin.measures.longdata import InputError


class WorkerError(InputError):
    """A worker process failed in a way the checks do not name (killed, out of memory ...)."""


ENDED = (
    "a worker process ended without its results (out of memory? try a lower --memory-limit, "
    "or --workers 1)"
)
#: The tables a worker computes before the trajectory models arrive.
EARLY = ("sudden_changes", "change", "ruptures", "outcomes")
#: An empty array, for the row arrays a worker no longer needs.
_NONE: Any = np.empty(0, dtype=np.int64)
#: Inputs with fewer rows than this are analysed in one process (starting workers costs more).
MIN_PARALLEL_ROWS = 2_000_000


def cpu_workers() -> int:
    """The CPUs this process may run on (its affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def partitions_for(rows: int, limit: int, workers: int) -> int:
    """Partitions for ``workers`` processes that each hold one partition at a time, so that
    all of them together stay under ``limit`` bytes; a multiple of ``workers``.

    >>> partitions_for(33_000_000, 4 * 1024**3, 2), partitions_for(33_000_000, 1024**3, 2)
    (2, 8)
    """
    each = math.ceil(rows * stream.BYTES_PER_ROW * workers / limit)
    return workers * max(1, math.ceil(each / workers))


def _worker(
    conn: Connection,
    path: str,
    measures: Mapping[str, Instrument],
    work: str,
    out_format: str,
) -> None:
    """One worker process: pass 1 over its partitions, then pass 2 once the plan arrives.

    The first message from the parent gives the partitions' client ranges and this worker's
    partitions (the worker starts, and imports its modules, while the parent computes them).
    Every message to the parent is ``(kind, partition, payload)``; an error ends the worker.
    """
    folder = Path(work)
    parent = _Parent(conn)
    keep: dict[int, batch.RowArrays] = {}
    plain_ids: dict[int, bool] = {}
    first = conn.recv()
    if first is None:  # the parent stops the run before it starts
        conn.close()
        return
    cuts, mine = first
    p = mine[0] if mine else -1
    try:
        lazy = stream.scan(Path(path)).with_row_index("_row")
        outcome_codes = [c for c, inst in measures.items() if inst.role == "outcome"]
        for p in mine:
            where = stream.range_filter(lazy, cuts, p)
            typed, arrays, merged, inputs = stream.check_part(
                lazy, where, Path(path), measures, outcome_codes
            )
            plain_ids[p] = plain_text(arrays.ids)
            conn.send(("checked", p, (batch.stats_of_rows(arrays), merged, inputs)))
            del inputs
            if len(mine) == 1:
                keep[p] = arrays
            else:
                typed.write_parquet(folder / f"input-{p:05d}.parquet")
            del typed, arrays
        # Pass 2 in two steps: the tables that need no trajectory model while the parent
        # fits it (the first plan has no models), then the trajectories.
        # A partition kept in memory keeps its outcome measures' matrices from the first
        # step for the second (the trajectories read nothing else).
        counts: dict[int, dict[str, Any]] = {p: {} for p in mine}
        keyed = out_format == "csv"  # trajectories with keys, for batch.write_keyed_csv
        names: list[str] = []
        blocks: dict[int, list[batch.Block]] = {p: [] for p in keep}
        for only in (EARLY, ("trajectories",)):
            plan = parent.recv()
            if plan is None:  # the parent stops the run (another partition failed)
                return
            for p in mine:
                if p in keep:  # let go after the last step: its tables are written next
                    arrays = keep[p] if only == EARLY else keep.pop(p)
                else:
                    arrays = batch.row_arrays(pl.read_parquet(folder / f"input-{p:05d}.parquet"))
                if p not in blocks:
                    tables = batch.analyze_rows(arrays, plan, only=only, tail_keys=keyed)
                elif only == EARLY:
                    tables = batch.analyze_rows(arrays, plan, only, keep_outcomes=blocks[p])
                    # The trajectories read the kept matrices and the ids, nothing else:
                    # the rows' arrays go now, their memory reused for the next tables.
                    keep[p] = dataclasses.replace(
                        arrays, client=_NONE, measure=_NONE, session=_NONE, score=_NONE
                    )
                else:
                    tables = batch.analyze_rows(
                        arrays, plan, only, blocks=blocks.pop(p), tail_keys=keyed
                    )
                del arrays
                batch.add_counts(counts[p], batch.table_counts(tables))
                for name, table in tables.items():
                    _write_parts(table, folder, name, p, out_format, plain_ids[p], parent)
                names += [n for n in tables if n not in names]
                del tables
        for p in mine:
            conn.send(("analysed", p, (counts[p], names)))
    except _Stopped:
        pass
    except BaseException as exc:  # every failure goes back to the parent
        try:
            conn.send(("error", p, exc))
        except Exception:  # an exception that cannot be pickled
            last = traceback.format_exc().strip().splitlines()[-1]
            conn.send(("error", p, WorkerError(f"a worker process failed: {last}")))
    finally:
        conn.close()


def _write_parts(
    table: pl.DataFrame,
    folder: Path,
    name: str,
    p: int,
    out_format: str,
    plain_ids: bool,
    parent: _Parent,
) -> None:
    """One part file per measure (the outputs are sorted by measure, then client): slices of
    ``table``, not copies. Each part written is reported to the parent, then the table's
    whole list of measure codes (``""`` for a table without a measure column), in order
    (see :class:`_Joiner`).

    ``plain_ids``: the partition's client ids need neither neutralising nor quoting in CSV
    (:func:`bordin.measures.csvsafe.plain_text`). Each part holds one measure code, looked at
    once; when the ids and the code are plain, no column is scanned for formulas and the CSV
    writer is told that no cell needs quotes (the other text columns hold Bordin's own words).

    A CSV part whose place in the output file is known when it is about to be written (every
    part before it written: :meth:`_Joiner.where`) is written there directly, not copied.
    """
    runs = batch.measure_runs(table) if "measure" in table.columns else iter([("", table)])
    written = []
    for code, rows in runs:
        if not rows.height:
            continue
        written.append(code)
        target = folder / f"{name}-{code}-{p:05d}.{out_format}"
        if out_format == "parquet":
            rows.write_parquet(target)
            parent.send(("written", p, (name, [code], False, None)))
            continue
        at = parent.where(p, name, code)
        with (
            (folder.parent / f"{name}.csv").open("r+b") if at is not None else target.open("wb")
        ) as out:
            start = out.seek(at or 0)
            _write_csv(rows, out, code, plain_ids)
            out.flush()
            size = out.tell() - start
        parent.send(("written", p, (name, [code], False, None if at is None else size)))
    parent.send(("written", p, (name, written, True, None)))


def _write_csv(rows: pl.DataFrame, out: BinaryIO, code: str, plain_ids: bool) -> None:
    """One part's rows as CSV lines into ``out`` (see :func:`_write_parts`)."""
    plain = plain_ids and (not code or plain_text(pl.Series([code])))
    if trajectories.TAIL_KEY in rows.columns:
        if plain and batch.write_keyed_csv(rows, out, code):
            return
        rows = rows.drop(trajectories.TAIL_KEY)
    if plain:
        rows.write_csv(out, include_header=False, quote_style="never")
    else:
        skip = batch.OWN_WORDS | ({"client_id"} if plain_ids else set())
        neutralise_formulas(rows, skip=skip).write_csv(out, include_header=False)


class _Stopped(Exception):
    """The parent stopped the run while this worker waited for an answer."""


class _Parent:
    """A worker's end of its pipe: questions answered in turn, the parent's other messages
    (the plans) kept for :meth:`recv`."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.kept: list[Any] = []

    def send(self, message: object) -> None:
        self.conn.send(message)

    def recv(self) -> Any:
        return self.kept.pop(0) if self.kept else self.conn.recv()

    def where(self, p: int, name: str, code: str) -> int | None:
        """The offset in the output file where partition ``p``'s part ``code`` of ``name``
        goes, if every part before it is written; else None (write a part file)."""
        self.conn.send(("where", p, (name, code)))
        while True:
            message = self.conn.recv()
            if message is None:
                raise _Stopped
            if isinstance(message, tuple) and message[0] == "at":
                return message[1]  # type: ignore[no-any-return]
            self.kept.append(message)


class _Joiner:
    """Each CSV output file put together from the workers' part files while they still work.

    The parts of a table go in the order measure code, then partition (the outputs are sorted
    by measure, then client). A worker reports each part once written
    (``("written", p, (name, [code], False, size))``, ``size`` None for a part file, the
    number of bytes for a part written in place: see :meth:`where`) and then the table's
    whole list (``("written", p, (name, codes, True, None))``); it writes a table's parts in
    code order, so a
    reported code also says the earlier codes it did not report have no part. Every part
    whose predecessors are all settled has its place in the file (the sizes before it): it
    is copied there at once, by one of two threads, so that parts are copied side by side and
    the run does not wait for them; when the workers end, only their last parts are left.
    """

    def __init__(self, work: Path, out: Path, present: tuple[str, ...], partitions: int) -> None:
        self.work, self.out = work, out
        self.order = ("", *present)
        self.rank = {code: k for k, code in enumerate(self.order)}
        self.partitions = partitions
        self.written: dict[str, dict[int, tuple[list[str], bool]]] = {}
        self.next: dict[str, tuple[int, int]] = {}  # (code index, partition) to place next
        self.files: dict[str, tuple[int, int]] = {}  # name: (descriptor, end of the file)
        self.direct: dict[tuple[str, str, int], int] = {}  # parts written in place: sizes
        self.pool = ThreadPoolExecutor(max_workers=2)
        self.copies: list[Future[None]] = []

    def where(self, p: int, name: str, code: str) -> int | None:
        """The offset for partition ``p``'s part ``code`` of ``name`` when it is the next part
        to place (every part before it settled): the worker writes it there itself and
        reports its size. None otherwise (the worker writes a part file)."""
        if self.next.get(name, (0, 0)) != (self.rank[code], p):
            return None
        return self._end(name)

    def add(
        self, p: int, name: str, codes: list[str], whole: bool, size: int | None = None
    ) -> None:
        """Partition ``p``'s parts ``codes`` of table ``name`` are written (all of them when
        ``whole``; ``size``: the one part, written in place, has that many bytes): place what
        can be."""
        known = self.written.setdefault(name, {})
        seen, _ = known.get(p, ([], False))
        known[p] = (codes if whole else [*seen, *codes], whole)
        if size is not None:
            self.direct[name, codes[0], p] = size
        k, q = self.next.get(name, (0, 0))
        while k < len(self.order) and q in known:
            have, complete = known[q]
            code = self.order[k]
            if code in have:
                in_place = self.direct.pop((name, code, q), None)
                if in_place is None:
                    self._place(name, self.work / f"{name}-{code}-{q:05d}.csv")
                else:
                    fd, end = self.files[name]
                    self.files[name] = (fd, end + in_place)
            elif not complete and not (have and self.rank[have[-1]] > k):
                break  # partition q may still write this code
            k, q = (k, q + 1) if q + 1 < self.partitions else (k + 1, 0)
        self.next[name] = (k, q)

    def _end(self, name: str) -> int:
        """Where the next part of ``name`` goes (the file opened, its header written, first)."""
        if name not in self.files:
            header = batch.empty_table(name).write_csv().encode("utf-8")
            fd = os.open(self.out / f"{name}.csv", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, header)
            self.files[name] = (fd, len(header))
        return self.files[name][1]

    def _place(self, name: str, part: Path) -> None:
        end = self._end(name)
        fd = self.files[name][0]
        size = part.stat().st_size
        self.files[name] = (fd, end + size)
        self.copies.append(self.pool.submit(_copy_part, part, fd, end, size))

    def finish(self, names: list[str]) -> None:
        """Wait for the copies and close every file; a table with no rows is its header line."""
        for name in names:
            if self.next.get(name, (0, 0))[0] < len(self.order):  # pragma: no cover - a bug
                raise RuntimeError(f"{name}: parts missing when the workers ended")
            if name not in self.files:
                (self.out / f"{name}.csv").write_text(batch.empty_table(name).write_csv())
        try:
            for copy in self.copies:
                copy.result()  # a copy's error is raised here
        finally:
            self.close()

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for fd, _ in self.files.values():
            os.close(fd)
        self.files.clear()


def _copy_part(part: Path, dst: int, at: int, size: int) -> None:
    """Part file ``part`` (``size`` bytes) into ``dst`` from offset ``at``, then removed."""
    src = os.open(part, os.O_RDONLY)
    try:
        _copy(src, dst, at, size)
    finally:
        os.close(src)
    part.unlink()


def _copy(src: int, dst: int, at: int, size: int) -> None:
    """``size`` bytes from the start of ``src`` into ``dst`` from offset ``at``, in the
    kernel where it can (``copy_file_range``), else through a buffer."""
    done = 0
    try:
        while done < size:
            n = os.copy_file_range(src, dst, min(size - done, 1 << 30), done, at + done)
            if n == 0:
                break
            done += n
    except OSError:
        pass
    while done < size:
        chunk = os.pread(src, min(size - done, 1 << 24), done)
        if not chunk:
            break
        done += os.pwrite(dst, chunk, at + done)


def analyze_parallel(
    path: Path,
    measures: Mapping[str, Instrument],
    *,
    out: Path,
    partitions: int,
    workers: int,
    reference: pl.DataFrame | None = None,
    reference_source: str | None = None,
    out_format: str = "csv",
    step: batch.Step | None = None,
    trajectory_model: str = "ols",
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Analyse ``path`` in ``partitions`` parts shared among ``workers`` processes, writing
    every output file into ``out`` (an empty staging folder, see
    :func:`bordin.measures.batch.staged_output`). Returns the summary and the merged ids."""
    tell = step or (lambda _label: None)
    source = str(path)
    lazy = stream.scan(path)
    if stream.count_rows(lazy) == 0:
        raise InputError(f"{source}: no rows: the file has no data rows, only a header")
    workers = max(1, min(workers, partitions))
    work = out / ".parts"
    work.mkdir()
    context = multiprocessing.get_context("spawn")
    threads = os.environ.get("POLARS_MAX_THREADS")
    os.environ["POLARS_MAX_THREADS"] = str(max(1, cpu_workers() // workers))
    links: list[Connection] = []
    procs = []
    joiner: _Joiner | None = None
    try:
        for _ in range(workers):
            parent_end, child_end = context.Pipe()
            proc = context.Process(
                target=_worker,
                args=(child_end, str(path), dict(measures), str(work), out_format),
                daemon=True,
            )
            proc.start()
            child_end.close()
            links.append(parent_end)
            procs.append(proc)
    finally:
        if threads is None:
            os.environ.pop("POLARS_MAX_THREADS", None)
        else:
            os.environ["POLARS_MAX_THREADS"] = threads
    try:
        # Fewer client ranges than asked for (few clients): a worker may get none.
        cuts = stream.cuts(lazy, partitions)
        partitions = len(cuts) + 1
        for w, link in enumerate(links):
            link.send((cuts, list(range(w, partitions, workers))))
        tell(f"checking {partitions} parts in {min(workers, partitions)} processes")
        checked = _gather(links, partitions, "checked")
        stats: dict[str, Any] = {}
        merged: list[tuple[str, str]] = []
        for p in range(partitions):
            part_stats, part_merged, _ = checked[p]
            batch.add_counts(stats, part_stats)
            merged.extend(part_merged)
        present = tuple(sorted(k for k, v in stats.items() if isinstance(v, dict)))
        early = batch.Plan(measures=measures, present=present, models={}, model_notes={})
        if out_format == "csv":
            joiner = _Joiner(work, out, present, partitions)
        _send(links, early)
        tell("fitting expected trajectories")
        fit_counts = {
            code: trajectories.merge_counts(
                [checked[p][2][code] for p in range(partitions) if code in checked[p][2]]
            )
            for code in present
        }
        the_plan = batch.plan_from_parts(
            measures,
            present=present,
            fit_counts=fit_counts,
            reference=reference,
            reference_source=reference_source,
            trajectory_model=trajectory_model,
        )
        del fit_counts
        _send(links, the_plan)
        tell(f"analysing {partitions} parts in {min(workers, partitions)} processes (trajectories)")
        analysed = _gather(
            links,
            partitions,
            "analysed",
            joiner.add if joiner else None,
            joiner.where if joiner else None,
        )
    except BaseException:
        if joiner is not None:
            joiner.close()
        for link in links:
            with contextlib.suppress(OSError):
                link.send(None)
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
        raise
    for proc in procs:
        proc.join()
    counts: dict[str, Any] = {}
    names: list[str] = []
    for p in range(partitions):
        part_counts, names = analysed[p]
        batch.add_counts(counts, part_counts)

    tell("writing results")
    if joiner is not None:
        joiner.finish(names)
    for name in names if out_format == "parquet" else ():
        files = [
            work / f"{name}-{code}-{p:05d}.parquet"
            for code in ("", *present)
            for p in range(partitions)
        ]
        files = [f for f in files if f.exists()]
        target = out / f"{name}.parquet"
        if files:
            pl.scan_parquet(files).sink_parquet(target)
        else:
            batch.write_table(batch.empty_table(name), target)
    shutil.rmtree(work)
    summary = batch.write_summary(out, the_plan, stats, counts, source=source, merged=merged)
    return summary, merged


def _send(links: list[Connection], message: object) -> None:
    """``message`` to every worker; a worker that has ended sent its error first: raise it."""
    for link in links:
        try:
            link.send(message)
        except OSError:
            with contextlib.suppress(EOFError):
                while link.poll():
                    what, _p, payload = link.recv()
                    if what == "error":
                        raise payload from None
            raise WorkerError(ENDED) from None


def _gather(
    links: list[Connection],
    partitions: int,
    kind: str,
    written: Callable[[int, str, list[str], bool, int | None], None] | None = None,
    where: Callable[[int, str, str], int | None] | None = None,
) -> dict[int, Any]:
    """Every partition's ``kind`` message; the lowest partition's error is raised (after every
    worker has answered for all its partitions or stopped). ``"written"`` messages on the way
    go to ``written``; ``"where"`` questions are answered by ``where``."""
    got: dict[int, Any] = {}
    errors: dict[int, BaseException] = {}
    waiting = list(links)
    while waiting and len(got) + len(errors) < partitions:
        for link in multiprocessing.connection.wait(waiting):
            assert isinstance(link, Connection)  # noqa: S101
            try:
                what, p, payload = link.recv()
            except EOFError:
                waiting.remove(link)
                continue
            if what == "error":
                errors[p] = payload
                waiting.remove(link)
            elif what == "written":
                if written is not None:
                    written(p, *payload)
            elif what == "where":  # a worker waits for the answer
                link.send(("at", where(p, *payload) if where is not None else None))
            else:
                got[p] = payload
    if errors:
        raise errors[min(errors)]
    if len(got) < partitions:
        raise WorkerError(ENDED)
    return got
