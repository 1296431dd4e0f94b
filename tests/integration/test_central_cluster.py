"""Several central processes over one PostgreSQL database behave as one (issue: central on PostgreSQL).

Each test starts THREE real `bondgate central serve` processes (testkit/central_cluster.py) over a
fresh database of its own on the session's PostgreSQL server (tests/conftest.py `postgres`), drives
them at once from threads, and checks what one process alone guarantees still holds:

1. the feed skips nothing: writers commit through every process while readers page each park's feed
   through every process; each reader holds every record exactly once, in seq order, and the
   records hash onto the signed checkpoints;
2. a set is compared exactly once whichever process each of its four documents reaches;
3. edge events are stored exactly once, with their hash chain intact, when two processes take the
   same batch or consecutive batches at once;
4. a long poll waiting in one process wakes on a commit in another (and still does when the
   committing process is killed right after its commit);
5. two status changes racing on one clearance: one wins, the other is refused (officer actions), or
   customs receipts end where one process applying them in some order would;

and two faults: one process SIGKILLed while writers post to it and to the others, and one frozen
(SIGSTOP) inside its write transaction.

What protects each: every write transaction first takes one PostgreSQL advisory transaction lock
(central/store/postgres.py `WRITE_LOCK`), so writes are serialised across processes as SQLite's
`BEGIN IMMEDIATE` serialises them in one; a feed append NOTIFYs every process's LISTEN thread
(central/feed_wakeups.py). Each test's docstring says what would go wrong without its protection.

Sizes. CI runs a small version of each (2 CPUs, the whole suite under 15 minutes). The issue's
sizes — 100,000 feed records in each of 20 runs, 1,000 racing sets — take hours:

    BONDGATE_CLUSTER_SCALE=full PYTHONPATH=$PWD .venv/bin/python -m pytest \\
        tests/integration/test_central_cluster.py -p no:cacheprovider

(`BONDGATE_CLUSTER_SCALE=ci` is the default; see `SCALES`.) Threads start races together at a
barrier; every wait is an upper bound on a condition (a thread or call that overruns fails its test);
no sleep stands in for synchronisation. The one bound on time is the long-poll test's, and it is the
poll's own `wait` (its docstring says why).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest

from central.ceb.documents import DocKind, Receipt
from central.ceb.xml_out import receipts_xml
from central.store.postgres import WRITE_LOCK
from kernel.wire import (
    GENESIS_HASH,
    Event,
    EventBody,
    EventKind,
    FeedCheckpoint,
    FeedRecord,
    chain_event,
    feed_chain,
    load_public_key,
    verify_checkpoint,
    verify_record,
)
from testkit import factories
from testkit.central_cluster import CentralCluster, run_central_cluster
from testkit.customs import inventory_receipt
from testkit.postgres import Postgres

pytestmark = pytest.mark.postgresql

T = TypeVar("T")


# --- sizes -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    feed_sets: int  # document sets (= feed records) per run of the feed test, over both parks
    feed_batch: int  # sets per request (a request takes up to 1,000 documents: 250 sets)
    feed_runs: int  # runs of the feed test, each over a fresh database and cluster
    race_sets: int  # sets whose four documents race to three processes
    events: int  # events in the edge's chain
    event_batch: int  # events per batch
    releases: int  # cleared parcels the chain releases
    status_races: int  # officer-action races
    customs_races: int  # customs-receipt races
    fault_sets: int  # sets posted while a process is killed
    timeout_s: int  # per test (pytest-timeout)


SCALES = {
    "ci": Scale(
        feed_sets=300,
        feed_batch=20,
        feed_runs=2,
        race_sets=100,
        events=120,
        event_batch=10,
        releases=20,
        status_races=20,
        customs_races=16,
        fault_sets=90,
        timeout_s=240,
    ),
    "full": Scale(
        feed_sets=100_000,
        feed_batch=250,
        feed_runs=20,
        race_sets=1_000,
        events=10_000,
        event_batch=50,
        releases=1_000,
        status_races=1_000,
        customs_races=1_000,
        fault_sets=3_000,
        timeout_s=4 * 3600,
    ),
}
SCALE_ENV = "BONDGATE_CLUSTER_SCALE"
try:
    SCALE = SCALES[os.environ.get(SCALE_ENV, "ci")]
except KeyError:
    raise RuntimeError(f"{SCALE_ENV} must be one of {', '.join(SCALES)}") from None

PROCESSES = 3
REQUEST_TIMEOUT_S = 60.0  # every HTTP call
BARRIER_TIMEOUT_S = 60.0  # threads meeting to start a race
POLL_WAIT_S = 45  # a long poll's `wait` (under REQUEST_TIMEOUT_S)
JOIN_TIMEOUT_S = SCALE.timeout_s  # every thread the tests start


# --- the cluster -----------------------------------------------------------------------------------


@pytest.fixture
def database(postgres: Postgres) -> Iterator[str]:
    """A fresh, uniquely named database on the session's server (its DSN), dropped after the test."""
    name = f"cluster_{uuid.uuid4().hex[:16]}"
    dsn = postgres.create_database(name)
    try:
        yield dsn
    finally:
        postgres.drop_database(name)


@contextmanager
def three_centrals(tmp: Path, dsn: str, **overrides: object) -> Iterator[CentralCluster]:
    """Three central processes over `dsn`; on a failure, the tail of each one's log is printed."""
    with run_central_cluster(tmp / "cluster", dsn, processes=PROCESSES, **overrides) as cluster:
        try:
            yield cluster
        except BaseException:
            for index in range(PROCESSES):
                print(f"--- central-{index} log (tail) ---\n{cluster.log(index)[-6000:]}")
            raise


class Clients:
    """httpx clients to the cluster's processes: each thread gets its own (index, token) clients."""

    def __init__(self, cluster: CentralCluster) -> None:
        self.cluster = cluster
        self._local = threading.local()
        self._made: list[httpx.Client] = []
        self._lock = threading.Lock()

    def __call__(self, index: int, token: str) -> httpx.Client:
        mine: dict[tuple[int, str], httpx.Client] = self._local.__dict__.setdefault("clients", {})
        if (index, token) not in mine:
            client = self.cluster.client(index, token, timeout=REQUEST_TIMEOUT_S)
            with self._lock:
                self._made.append(client)
            mine[(index, token)] = client
        return mine[(index, token)]

    def close(self) -> None:
        with self._lock:
            for client in self._made:
                client.close()
            self._made.clear()


@contextmanager
def clients_of(cluster: CentralCluster) -> Iterator[Clients]:
    clients = Clients(cluster)
    try:
        yield clients
    finally:
        clients.close()


@contextmanager
def thread_pool(workers: int) -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cluster-test")
    try:
        yield pool
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def at_once(pool: ThreadPoolExecutor, calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run `calls` in as many pool threads, released together by a barrier; their results in order.
    The pool must have at least len(calls) workers and nothing else running."""
    barrier = threading.Barrier(len(calls), timeout=BARRIER_TIMEOUT_S)

    def started(call: Callable[[], T]) -> T:
        barrier.wait()
        return call()

    futures = [pool.submit(started, call) for call in calls]
    return [f.result(timeout=BARRIER_TIMEOUT_S + REQUEST_TIMEOUT_S) for f in futures]


def join_all(threads: Sequence[threading.Thread]) -> None:
    for thread in threads:
        thread.join(timeout=JOIN_TIMEOUT_S)
        assert not thread.is_alive(), f"{thread.name} still running after {JOIN_TIMEOUT_S} s"


def ok_json(answer: httpx.Response) -> Any:
    assert answer.status_code == 200, f"{answer.request.method} {answer.request.url}: {answer.text}"
    return answer.json()


def ok_text(answer: httpx.Response) -> str:
    assert answer.status_code == 200, f"{answer.request.method} {answer.request.url}: {answer.text}"
    return answer.text


# --- documents, clearances, receipts ---------------------------------------------------------------

P2 = {"ems_no": factories.OTHER_EMS_NO, "area_code": factories.OTHER_AREA_CODE}
CLEARED_HISTORY = [(None, "120", "accept"), ("120", "399", "review_complete"), ("399", "800", "release")]
CLEARED_RECEIPTS = {
    "order": ["120"],
    "payment": ["120"],
    "waybill": ["120"],
    "inventory": ["2", "120", "399", "800"],
}
REJECTED_HISTORY = [(None, "100", "reject")]
REJECTED_RECEIPTS = {"order": ["120"], "payment": ["120"], "waybill": ["120"], "inventory": ["2", "100"]}
KINDS = ("order", "payment", "waybill", "inventory")


def documents_json(sets: Sequence[factories.DocumentSet]) -> dict[str, Any]:
    return {"documents": [d.model_dump(mode="json") for s in sets for d in s.documents]}


def declare(client: httpx.Client, sets: Sequence[factories.DocumentSet]) -> dict[str, Any]:
    """Post `sets` in one request (up to 250 sets); the IntakeResult."""
    return ok_json(client.post("/api/v1/documents", json=documents_json(sets)))


def declare_one(client: httpx.Client, doc: Any) -> dict[str, Any]:
    """Post one document alone; the IntakeResult."""
    return ok_json(client.post("/api/v1/documents", json=doc.model_dump(mode="json")))


def mismatched_set(seq: int) -> factories.DocumentSet:
    """A set whose payment's amount disagrees with its order: the comparison rejects it (100)."""
    [s] = factories.document_set(1, start=seq)
    return factories.DocumentSet(
        s.order, factories.payment(seq, amountPaid=Decimal("1.00")), s.waybill, s.inventory
    )


@dataclass
class SetState:
    """What central holds of one document set, read through the API."""

    details: list[dict[str, Any]]  # GET /clearances?logisticsNo=…: clearances and pending inventories
    receipts: dict[str, list[str]]  # kind → returnStatus of its receipts ([] when central has none)

    @property
    def absent(self) -> bool:
        return not self.details and not any(self.receipts.values())

    def history(self) -> list[tuple[str | None, str, str]]:
        [detail] = self.details
        return [(h["from_status"], h["to_status"], h["action"]) for h in detail["history"]]

    def status(self) -> str | None:
        [detail] = self.details
        return None if detail["clearance"] is None else detail["clearance"]["status"]


def read_set(clients: Clients, index: int, s: factories.DocumentSet) -> SetState:
    officer, shop = clients(index, "officer"), clients(index, "enterprise")
    details = ok_json(officer.get("/api/v1/clearances", params={"logisticsNo": s.waybill.logisticsNo}))
    receipts: dict[str, list[str]] = {}
    for kind, doc in zip(KINDS, s.documents, strict=True):
        answer = shop.get(f"/api/v1/documents/{doc.guid}/receipts")
        if answer.status_code == 404:
            receipts[kind] = []
        else:
            receipts[kind] = [r["returnStatus"] for r in ok_json(answer)]
    return SetState(details=details, receipts=receipts)


def assert_complete(state: SetState, s: factories.DocumentSet, *, cleared: bool = True) -> None:
    """One clearance, at the status its data implies, compared once, every receipt there."""
    name = s.waybill.logisticsNo
    assert len(state.details) == 1, f"{name}: {state.details}"
    history, receipts = (
        (CLEARED_HISTORY, CLEARED_RECEIPTS) if cleared else (REJECTED_HISTORY, REJECTED_RECEIPTS)
    )
    assert state.status() == history[-1][1], f"{name}: {state.details}"
    assert state.history() == history, f"{name}: compared {state.history()}"
    assert state.receipts == receipts, f"{name}: receipts {state.receipts}"


def read_sets(
    pool: ThreadPoolExecutor, clients: Clients, sets: Sequence[factories.DocumentSet], via: Sequence[int]
) -> list[SetState]:
    """Every set's state, read in parallel, set i through process via[i % len(via)]."""
    futures = [pool.submit(read_set, clients, via[i % len(via)], s) for i, s in enumerate(sets)]
    return [f.result(timeout=JOIN_TIMEOUT_S) for f in futures]


# --- 1. the feed skips nothing ---------------------------------------------------------------------


@dataclass
class FeedReader:
    """Pages one park's feed from the start, each page through the next process in turn, until the
    writers are done and a page read after that is empty. Checks as it goes that seqs only grow,
    that every record is signed by the feed key, and that the page's records hash onto the previous
    checkpoint to the page's signed checkpoint (count and running hash): a skipped, repeated or
    reordered record fails there."""

    clients: Clients
    park: str
    token: str
    key: Any
    records: list[dict[str, Any]] = field(default_factory=list)
    pages: int = 0
    error: BaseException | None = None

    def run(self, writers_done: threading.Event) -> None:
        try:
            self._read(writers_done)
        except BaseException as exc:  # re-raised by the test's thread
            self.error = exc

    def _read(self, writers_done: threading.Event) -> None:
        after, chain = 0, GENESIS_HASH
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while True:
            assert time.monotonic() < deadline, f"{self.park}: the reader did not catch up"
            done = writers_done.is_set()  # before the read: a page empty after this is the end
            client = self.clients(self.pages % PROCESSES, self.token)
            self.pages += 1
            page = ok_json(
                client.get(
                    f"/api/v1/parks/{self.park}/feed",
                    params={"after": after, "limit": 1000, "wait": 0 if done else 2},
                )
            )
            records = page["records"]
            seqs = [r["seq"] for r in records]
            assert seqs == sorted(set(seqs)) and all(s > after for s in seqs), (
                f"{self.park}: {seqs} after {after}"
            )
            for raw in records:
                assert raw["park_id"] == self.park
                assert verify_record(FeedRecord.model_validate(raw), self.key), raw
            chain = feed_chain(chain, records)
            self.records += records
            checkpoint = FeedCheckpoint.model_validate(page["checkpoint"])
            assert verify_checkpoint(checkpoint, self.key)
            assert (checkpoint.cursor, checkpoint.count, checkpoint.hash) == (
                page["next_after"],
                len(self.records),
                chain,
            ), f"{self.park}: page after {after} does not extend what was read (skipped or repeated)"
            after = page["next_after"]
            if done and not records and not page["has_more"]:
                return


def feed_writer(
    clients: Clients, index: int, batches: Sequence[tuple[int, int]], errors: list[str]
) -> Callable[[], None]:
    """Posts complete sets through process `index`, batch by batch: (first seq, sets) each, half in
    park P1 and half in P2; each answer must release every set of its batch."""

    def run() -> None:
        client = clients(index, "enterprise")
        try:
            for start, n in batches:
                half = n // 2
                sets = factories.document_set(half, start=start)
                sets += factories.document_set(n - half, start=start + half, **P2)
                result = declare(client, sets)
                released = {c["logisticsNo"] for c in result["changes"] if c["to_status"] == "800"}
                expected = {s.waybill.logisticsNo for s in sets}
                if released != expected:
                    errors.append(
                        f"batch at {start} through {index}: released {sorted(expected - released)}?"
                    )
                    return
        except BaseException as exc:
            errors.append(f"writer through {index}: {exc!r}")

    return run


def feed_plan(total: int, batch: int) -> tuple[list[list[tuple[int, int]]], dict[str, set[str]]]:
    """Each writer's batches, and the logisticsNo of every set per park they will declare."""
    plans: list[list[tuple[int, int]]] = [[] for _ in range(PROCESSES)]
    expected: dict[str, set[str]] = {"P1": set(), "P2": set()}
    for number, start in enumerate(range(1, total + 1, batch)):
        n = min(batch, total + 1 - start)
        plans[number % PROCESSES].append((start, n))
        half = n // 2
        expected["P1"] |= {factories.logistics_no(seq) for seq in range(start, start + half)}
        expected["P2"] |= {factories.logistics_no(seq) for seq in range(start + half, start + n)}
    return plans, expected


@pytest.mark.timeout(SCALE.timeout_s)
@pytest.mark.parametrize("run", range(SCALE.feed_runs))
def test_the_feed_skips_nothing_while_three_processes_write(tmp_path: Path, database: str, run: int) -> None:
    """Three writers, one per process, post complete sets (each batch half in park P1, half in P2)
    while a reader per park pages its feed from the start, each page through the next process; when
    the writers are done and the reader has read an empty page after that, it holds every set's
    record exactly once, seqs strictly increasing, each page extending the signed checkpoint chain.

    What goes wrong without the protection: seqs come from one sequence when a transaction inserts
    its feed row, not when it commits; were two transactions appending to a park's feed at once, the
    one that took seq 10 could commit after the one that took 11, and a reader that read 11 would
    move its cursor past 10 for good. The write lock makes every writer wait for the previous one's
    commit. (One park's appends are also ordered by row locks each appending transaction holds to
    its commit — the park's feed head row, the report's per-park tallies — so on today's code
    removing the write lock alone does not produce a skip: this test then fails on what the writers
    collide on without it, the numbers central makes from the largest plus one, answered 500. The
    reader's own check fails on a feed that leaves a record out.)"""
    with three_centrals(tmp_path, database) as cluster, clients_of(cluster) as clients:
        key = load_public_key(ok_text(clients(0, "edge").get("/.well-known/bondgate/feed-key.pem")))
        plans, expected = feed_plan(SCALE.feed_sets, SCALE.feed_batch)
        errors: list[str] = []
        writers_done = threading.Event()
        readers = [FeedReader(clients, "P1", "edge", key), FeedReader(clients, "P2", "edge_p2", key)]
        reader_threads = [
            threading.Thread(target=r.run, args=(writers_done,), name=f"reader-{r.park}", daemon=True)
            for r in readers
        ]
        writer_threads = [
            threading.Thread(target=feed_writer(clients, i, plan, errors), name=f"writer-{i}", daemon=True)
            for i, plan in enumerate(plans)
        ]
        for thread in reader_threads + writer_threads:
            thread.start()
        join_all(writer_threads)
        writers_done.set()
        join_all(reader_threads)
        assert errors == []
        for reader in readers:
            if reader.error is not None:
                raise reader.error
            names = [r["logisticsNo"] for r in reader.records]
            repeated = [name for name, times in Counter(names).items() if times > 1]
            assert repeated == [], f"{reader.park}: records read twice: {repeated[:10]}"
            missing = expected[reader.park] - set(names)
            assert not missing, (
                f"{reader.park}: {len(missing)} records never read, e.g. {sorted(missing)[:10]}"
            )
            assert set(names) == expected[reader.park]
            assert {(r["status"], r["version"]) for r in reader.records} == {("800", 3)}


# --- 2. a set is compared exactly once -------------------------------------------------------------


@pytest.mark.timeout(SCALE.timeout_s)
def test_a_set_is_compared_once_whichever_process_each_document_reaches(
    tmp_path: Path, database: str
) -> None:
    """Each set's order, payment, waybill and inventory are posted at the same instant (a barrier),
    set i's document k to process (i + k) % 3, so every split of a set over the processes occurs.
    Afterwards each set has exactly one clearance, at the status its data implies (800, or 100 for
    the sets whose payment disagrees), compared exactly once (one accept or reject from no record
    in its history), and every document's receipts are all there.

    Without the write lock, each document's transaction reads the set before the others commit:
    every one of them can find the set incomplete (no clearance ever: the parcel waits for good),
    or two can create the clearance (a duplicate key refused with 500, or two comparisons)."""
    sets = [
        mismatched_set(seq) if seq % 5 == 0 else factories.document_set(1, start=seq)[0]
        for seq in range(1, SCALE.race_sets + 1)
    ]
    with (
        three_centrals(tmp_path, database) as cluster,
        clients_of(cluster) as clients,
        thread_pool(len(KINDS)) as pool,
    ):

        def post(index: int, doc: Any) -> dict[str, Any]:
            return declare_one(clients(index, "enterprise"), doc)

        for i, s in enumerate(sets):
            calls = [partial(post, (i + k) % PROCESSES, doc) for k, doc in enumerate(s.documents)]
            for kind, answer in zip(KINDS, at_once(pool, calls), strict=True):
                first = answer["receipts"][0]
                assert first["returnStatus"] == ("2" if kind == "inventory" else "120"), answer
        states = read_sets(pool, clients, sets, via=range(PROCESSES))
        for seq, (s, state) in enumerate(zip(sets, states, strict=True), start=1):
            assert_complete(state, s, cleared=seq % 5 != 0)


# --- 3. events exactly once ------------------------------------------------------------------------

EDGE = "edge-p1"


def release_chain(n: int, released: Sequence[factories.DocumentSet]) -> list[Event]:
    """Edge-p1's chain of `n` events: a release of each of `released`, spread out, heartbeats between."""
    every = max(1, n // max(1, len(released)))
    bodies: dict[int, tuple[EventKind, EventBody]] = {}
    for k, s in enumerate(released):
        body = EventBody(
            logisticsCode=s.waybill.logisticsCode, logisticsNo=s.waybill.logisticsNo, verdict="RELEASE"
        )
        bodies[1 + k * every] = (EventKind.RELEASE, body)
    chain, prev = [], GENESIS_HASH
    now = datetime.now(UTC)
    for seq in range(1, n + 1):
        kind, body = bodies.get(seq, (EventKind.HEARTBEAT, EventBody(backlog=n - seq)))
        event = chain_event(
            prev, edge_id=EDGE, seq=seq, kind=kind, station="line-1", occurred_at=now, body=body
        )
        chain.append(event)
        prev = event.hash
    return chain


@dataclass
class Ingest:
    batch: list[Event]
    answer: dict[str, Any]

    @property
    def codes(self) -> set[str]:
        return {r["code"] for r in self.answer["refused"]}


@pytest.mark.timeout(SCALE.timeout_s)
def test_events_are_stored_once_when_two_processes_take_the_same_or_consecutive_batches(
    tmp_path: Path, database: str
) -> None:
    """Edge-p1's chain (heartbeats and one release of each of some cleared parcels) is sent in
    rounds, each posting to two processes at the same instant: the same batch (the first round is
    the edge's first contact); a batch and the resend of it grown by the next one (an edge whose
    answer was lost resends everything unacknowledged); or two consecutive batches — where the
    later one may rightly be refused `seq_gap` if it ran first (then the edge resends it, as it
    would from its acked_seq). Afterwards central holds the chain exactly once, seq for seq and hash
    for hash; acked_seq is the chain's end; every event was stored by exactly one answer; no
    conflict or chain_break was answered or alerted, and no seq_gap alert without a batch refused
    for a gap; the report counts each release once.

    Without the write lock, both processes read the edge's head before either commits and both
    store the same events (events are keyed by month with their arrival time, so nothing in the
    table refuses the second copy): events twice, releases counted twice (`released_twice`), or
    the first contact's edge row inserted twice (a 500)."""
    cleared = factories.document_set(SCALE.releases, start=1)
    with (
        three_centrals(tmp_path, database) as cluster,
        clients_of(cluster) as clients,
        thread_pool(2) as pool,
    ):
        for start in range(0, len(cleared), 250):
            declare(clients(0, "enterprise"), cleared[start : start + 250])
        chain = release_chain(SCALE.events, cleared)  # released after they were cleared
        batches = [chain[i : i + SCALE.event_batch] for i in range(0, len(chain), SCALE.event_batch)]

        def send(index: int, batch: list[Event]) -> Ingest:
            body = {"edge_id": EDGE, "events": [e.model_dump(mode="json") for e in batch]}
            return Ingest(batch, ok_json(clients(index, "edge").post("/api/v1/parks/P1/events", json=body)))

        answers: list[Ingest] = []
        gaps_refused = 0
        acked, i, round_no = 0, 0, 0
        while i < len(batches):
            p, q = round_no % PROCESSES, (round_no + 1) % PROCESSES
            style = (
                "same" if i + 1 == len(batches) or i == 0 else ("grown", "same", "consecutive")[round_no % 3]
            )
            round_no += 1
            if style == "same":
                pair = at_once(pool, [partial(send, p, batches[i]), partial(send, q, batches[i])])
                assert sorted((a.answer["stored"], a.answer["duplicates"]) for a in pair) == [
                    (0, len(batches[i])),
                    (len(batches[i]), 0),
                ], [a.answer for a in pair]
                i += 1
            elif style == "grown":
                first, grown = batches[i], batches[i] + batches[i + 1]
                pair = at_once(pool, [partial(send, p, first), partial(send, q, grown)])
                assert sum(a.answer["stored"] for a in pair) == len(grown), [a.answer for a in pair]
                assert sum(a.answer["duplicates"] for a in pair) == len(first), [a.answer for a in pair]
                i += 2
            else:
                earlier, later = batches[i], batches[i + 1]
                pair = at_once(pool, [partial(send, p, earlier), partial(send, q, later)])
                assert pair[0].answer["stored"] == len(earlier) and not pair[0].codes, pair[0].answer
                ahead = pair[1].answer
                if pair[1].codes:  # it ran first: refused whole, acked where the chain was
                    assert pair[1].codes == {"seq_gap"}, ahead
                    assert (ahead["stored"], ahead["acked_seq"]) == (0, acked), ahead
                    gaps_refused += 1
                    pair.append(send(3 - p - q, later))  # the edge resends from its acked_seq
                    assert not pair[-1].codes, pair[-1].answer
                stored = sum(a.answer["stored"] for a in pair)
                assert stored == len(earlier) + len(later), [a.answer for a in pair]
                i += 2
            answers += pair
            for a in pair:
                assert not a.codes - {"seq_gap"}, a.answer
            acked = max(a.answer["acked_seq"] for a in pair)
            assert acked == batches[i - 1][-1].seq, [a.answer for a in pair]

        assert sum(a.answer["stored"] for a in answers) == len(chain)
        officer = clients(2, "officer")
        held: list[dict[str, Any]] = []
        while True:
            after = held[-1]["seq"] if held else 0
            page = ok_json(
                officer.get(f"/api/v1/parks/P1/edges/{EDGE}/events", params={"limit": 5000, "after": after})
            )
            if not page:
                break
            held += page
        assert [(e["seq"], e["hash"]) for e in held] == [(e.seq, e.hash) for e in chain]
        [edge] = ok_json(officer.get("/api/v1/parks/P1/edges"))
        assert (edge["edge_id"], edge["last_seq"]) == (EDGE, len(chain))
        report = ok_json(officer.get("/api/v1/parks/P1/report", params={"limit": 1000}))
        alerts = Counter(a["kind"] for a in report["alerts"]["items"])
        assert report["alerts"]["total"] == sum(alerts.values())
        assert alerts["seq_gap"] <= gaps_refused, alerts
        assert set(alerts) <= {"seq_gap"}, alerts  # no conflict, chain_break, released_twice, …
        assert sum(h["count"] for h in report["releases_per_hour"]) == len(cleared)
        assert report["released_twice"]["total"] == 0
        assert report["released_without_clearance"]["total"] == 0
        assert report["cleared_not_out"]["total"] == 0
        assert report["clearances"]["by_status"] == {"800": len(cleared)}


# --- 4. long polls wake across processes -----------------------------------------------------------


def server_clock(dsn: str) -> datetime:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]


def wait_until_feed_read(dsn: str, since: datetime, readers: int) -> None:
    """Until `readers` database sessions have begun a read of the feed since `since` (server time):
    a long poll reads the feed only after taking its wake-up bell, so from then on a commit to its
    park wakes it. Sessions are told by what pg_stat_activity shows they ran last — the feed's read
    (central/store/clearances.py `read_feed`, `feed_point`, `feed_head`: `… FROM feed WHERE park_id
    …`); nothing else in this test reads the feed. A bounded wait for a condition."""
    deadline = time.monotonic() + REQUEST_TIMEOUT_S
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(DISTINCT pid) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND query LIKE %s AND query_start >= %s",
                ("%FROM feed WHERE park_id%", since),
            ).fetchone()
            if row is not None and row[0] >= readers:
                return
            assert time.monotonic() < deadline, "the long polls never read the feed"
            time.sleep(0.01)


@dataclass
class Polled:
    page: dict[str, Any]
    waited_out: bool  # it returned only once its `wait` was up: nothing woke it


def poll_feed(clients: Clients, index: int, after: int) -> Polled:
    """A long poll of P1's feed through process `index` after `after`, waiting up to POLL_WAIT_S."""
    started = time.monotonic()
    page = ok_json(
        clients(index, "edge").get("/api/v1/parks/P1/feed", params={"after": after, "wait": POLL_WAIT_S})
    )
    return Polled(page, waited_out=time.monotonic() - started >= POLL_WAIT_S)


def assert_woken_with(polled: Polled, s: factories.DocumentSet) -> None:
    assert not polled.waited_out, "the poll was not woken by the commit: it returned when its wait ran out"
    assert [r["logisticsNo"] for r in polled.page["records"]] == [s.waybill.logisticsNo], polled.page


@pytest.mark.timeout(SCALE.timeout_s)
def test_a_long_poll_wakes_on_a_commit_in_another_process(tmp_path: Path, database: str) -> None:
    """Edges long-poll P1's feed in processes 0 and 2; once both have read the feed (so both wait),
    a set is declared through process 1, and both polls return with its record, woken. Then a poll
    waits in process 0, a set is declared through process 2, process 2 is SIGKILLed as soon as it
    has answered, and the poll still returns with that record, woken: the notification is the
    server's to deliver once the transaction committed.

    The one bound on time in this module, and why: a poll that nothing wakes still returns the
    record — get_feed reads the feed once more when its `wait` is up — so the record alone cannot
    tell a wake-up from an expiry; what does is whether the poll returned before its own wait (45 s)
    ran out. `feed_recheck_seconds` is 60, so the fallback re-read cannot be what ends it early. A
    wake-up takes milliseconds: the bound is the poll's own deadline, not a measure of speed.

    Without the NOTIFY at the feed append and each process's LISTEN thread, a commit wakes only the
    polls of the process that made it: the polls in the other processes wait out their 45 s (checked
    by running this test against a copy of the code without the NOTIFY: it fails here)."""
    with (
        three_centrals(tmp_path, database, feed_recheck_seconds=60) as cluster,
        clients_of(cluster) as clients,
        thread_pool(2) as pool,
    ):
        first, second = factories.document_set(2, start=1)
        since = server_clock(database)
        polls = [pool.submit(poll_feed, clients, i, 0) for i in (0, 2)]
        wait_until_feed_read(database, since, readers=2)
        declare(clients(1, "enterprise"), [first])
        polled = [f.result(timeout=REQUEST_TIMEOUT_S) for f in polls]
        for one in polled:
            assert_woken_with(one, first)

        after = polled[0].page["next_after"]
        since = server_clock(database)
        waiting = pool.submit(poll_feed, clients, 0, after)
        wait_until_feed_read(database, since, readers=1)
        declare(clients(2, "enterprise"), [second])
        cluster.kill(2)  # right after its commit
        assert_woken_with(waiting.result(timeout=REQUEST_TIMEOUT_S), second)


# --- 5. status changes racing on one clearance -----------------------------------------------------

OFFICER_RACES = [
    ("inspection_release", "inspection_return"),
    ("inspection_return", "inspection_release"),
    ("inspection_release", "inspection_release"),
    ("inspection_return", "inspection_return"),
]
TO_STATUS = {"inspection_release": "800", "inspection_return": "700"}


def lookup(client: httpx.Client, logistics_no: str) -> dict[str, Any]:
    [detail] = ok_json(client.get("/api/v1/clearances", params={"logisticsNo": logistics_no}))
    return detail


@pytest.mark.timeout(SCALE.timeout_s)
def test_two_officer_actions_racing_on_one_clearance_have_one_winner(tmp_path: Path, database: str) -> None:
    """Every set goes to inspection (500: risk sampling rate 1). For each, two officer actions that
    cannot both apply — release vs return shipment, or the same outcome twice — are posted at the
    same instant to two processes: exactly one is answered 200, the other 409 (illegal_transition);
    the clearance is at the winner's status and its history holds exactly one step from 500.

    Without the write lock, both transactions read the clearance at 500 and both move it: two 200s,
    two steps from 500 in its history, and a status that depends on which commit came last."""
    sets = factories.document_set(SCALE.status_races, start=1)
    with (
        three_centrals(tmp_path, database, risk={"sampling_rate": 1}) as cluster,
        clients_of(cluster) as clients,
        thread_pool(2) as pool,
    ):
        for start in range(0, len(sets), 250):
            declare(clients(0, "enterprise"), sets[start : start + 250])
        officer = clients(0, "officer")
        invt_nos = []
        for s in sets:
            detail = lookup(officer, s.waybill.logisticsNo)
            assert detail["clearance"]["status"] == "500", detail
            invt_nos.append(detail["clearance"]["invtNo"])

        def act(index: int, invt_no: str, action: str) -> httpx.Response:
            return clients(index, "officer").post(
                f"/api/v1/clearances/{invt_no}/actions", json={"action": action}
            )

        for i, (s, invt_no) in enumerate(zip(sets, invt_nos, strict=True)):
            a, b = OFFICER_RACES[i % len(OFFICER_RACES)]
            p, q = i % PROCESSES, (i + 1) % PROCESSES
            answers = at_once(pool, [partial(act, p, invt_no, a), partial(act, q, invt_no, b)])
            codes = sorted(answer.status_code for answer in answers)
            assert codes == [200, 409], [answer.text for answer in answers]
            [won] = [
                action for action, answer in zip((a, b), answers, strict=True) if answer.status_code == 200
            ]
            [lost] = [answer for answer in answers if answer.status_code == 409]
            assert lost.json()["error"] == "illegal_transition", lost.text
            detail = lookup(clients(2 - p, "officer"), s.waybill.logisticsNo)
            assert detail["clearance"]["status"] == TO_STATUS[won], detail
            steps = [(h["action"], h["to_status"]) for h in detail["history"] if h["from_status"] == "500"]
            assert steps == [(won, TO_STATUS[won])], detail["history"]


T1, T2, T3 = "20260601120000000", "20260601120500000", "20260601121000000"
XML = {"content-type": "application/xml"}


@pytest.mark.timeout(SCALE.timeout_s)
def test_customs_receipts_racing_on_one_clearance_end_where_one_process_would(
    tmp_path: Path, database: str
) -> None:
    """Customs mode: receipts apply in returnTime order, not refused for arriving out of it (one ahead
    of its predecessor waits; one older than an applied one is stale), so two racing receipts must
    end exactly where one process taking them in either order would:

    - 399 (t1) and 800 (t2) at the same instant to two processes: whichever runs first, the parcel
      ends at 800 with history 120 → 399 → 800 and both receipts applied;
    - at 399, 800 (t2) and 500 (t3) at once: 800 then 500 ends at 800 (the 500 refused: nothing
      leads from 800 to 500); 500 then 800 ends at 500 (the 800 stale). Either way exactly one step
      from 399 and one receipt applied.

    Without the write lock, in the first race the 800 can read the clearance at 120 and wait while
    the 399 commits without seeing it waiting — the parcel stays at 399 for good; in the second,
    both read 399 and both apply: two steps from 399."""
    sets = factories.document_set(SCALE.customs_races, start=1)
    with (
        three_centrals(tmp_path, database, mode="customs") as cluster,
        clients_of(cluster) as clients,
        thread_pool(2) as pool,
    ):
        for start in range(0, len(sets), 250):
            declare(clients(0, "enterprise"), sets[start : start + 250])

        def send(index: int, receipt: Receipt) -> list[dict[str, Any]]:
            body = receipts_xml(DocKind.INVENTORY, [receipt])
            return ok_json(
                clients(index, "officer").post("/api/v1/customs/receipts", content=body, headers=XML)
            )

        for i, s in enumerate(sets):
            officer = clients(i % PROCESSES, "officer")
            detail = lookup(officer, s.waybill.logisticsNo)
            assert detail["clearance"]["status"] == "120", detail
            p, q = i % PROCESSES, (i + 1) % PROCESSES
            if i % 2 == 0:
                r399, r800 = inventory_receipt(s, detail, "399", T1), inventory_receipt(s, detail, "800", T2)
                at_once(pool, [partial(send, p, r399), partial(send, q, r800)])
                after = lookup(clients(2 - p, "officer"), s.waybill.logisticsNo)
                assert [h["to_status"] for h in after["history"]] == ["120", "399", "800"], after["history"]
                assert [(r["returnStatus"], r["state"]) for r in after["customs_receipts"]] == [
                    ("399", "applied"),
                    ("800", "applied"),
                ], after["customs_receipts"]
            else:
                [applied] = send(p, inventory_receipt(s, detail, "399", T1))
                assert applied["applied"], applied
                r800, r500 = inventory_receipt(s, detail, "800", T2), inventory_receipt(s, detail, "500", T3)
                at_once(pool, [partial(send, p, r800), partial(send, q, r500)])
                after = lookup(clients(2 - p, "officer"), s.waybill.logisticsNo)
                status = after["clearance"]["status"]
                states = [(r["returnStatus"], r["state"]) for r in after["customs_receipts"]]
                if status == "800":
                    assert states == [("399", "applied"), ("800", "applied"), ("500", "refused")], states
                else:
                    assert status == "500", after
                    assert states == [("399", "applied"), ("800", "stale"), ("500", "applied")], states
                steps = [h["to_status"] for h in after["history"] if h["from_status"] == "399"]
                assert steps == [status], after["history"]
                assert [h["to_status"] for h in after["history"]] == ["120", "399", status], after["history"]


# --- a process killed while writers post to it -----------------------------------------------------


def tcp_ports_of(pid: int) -> set[int]:
    """The local ports of process `pid`'s TCP sockets (Linux: its fds' socket inodes in /proc/net)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def wait_until_holding_write_lock(dsn: str, pid: int) -> None:
    """Until process `pid` is inside a write transaction: its database session holds central's write
    lock (the advisory lock WRITE_LOCK, found in pg_locks by the session's client port). A bounded
    wait for a condition."""
    deadline = time.monotonic() + REQUEST_TIMEOUT_S
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            rows = conn.execute(
                "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = %s"
                " AND a.datname = current_database()",
                (WRITE_LOCK,),
            ).fetchall()
            if rows and {r[0] for r in rows} & tcp_ports_of(pid):
                return
            assert time.monotonic() < deadline, "the process never held the write lock"
            time.sleep(0.001)


@pytest.mark.timeout(SCALE.timeout_s)
def test_a_process_killed_mid_transaction_loses_nothing_it_answered(tmp_path: Path, database: str) -> None:
    """Three writers post complete sets (a few per request), writer t's j-th request to process
    (t + j) % 3. Once process 1 has answered some, it is SIGKILLed at a moment it is inside a write
    transaction — holding the write lock every process needs — while the writers go on. Every set
    answered 2xx is stored whole (its clearance released, every receipt there); every request to the
    surviving processes is answered 2xx, before and after the kill; a set whose request failed in
    transport is either absent (no clearance, no receipt) or stored whole, never half — and sent
    again through a survivor, it is then stored whole, once.

    Without the write lock, the writers' transactions collide on the numbers central makes from the
    largest plus one (500s); without one transaction per request that commits or rolls back whole,
    the kill leaves documents without their clearance or receipts; and if the dead process's lock
    outlived it, the survivors would stop writing (PostgreSQL ends the dead client's session and
    its transaction, and the lock goes with them)."""
    victim, per_request = 1, 4
    per_writer = SCALE.fault_sets // PROCESSES
    plans = [factories.document_set(per_writer, start=1 + t * per_writer) for t in range(PROCESSES)]
    outcomes: dict[str, tuple[int, str]] = {}  # logisticsNo → (process, "ok" | "lost" | the problem)
    victim_answered = threading.Semaphore(0)
    with (
        three_centrals(tmp_path, database) as cluster,
        clients_of(cluster) as clients,
        thread_pool(PROCESSES) as pool,
    ):

        def writer(t: int) -> None:
            for j, start in enumerate(range(0, per_writer, per_request)):
                index, sets = (t + j) % PROCESSES, plans[t][start : start + per_request]
                try:
                    answer = clients(index, "enterprise").post("/api/v1/documents", json=documents_json(sets))
                    outcome = "ok" if answer.status_code == 200 else answer.text
                except httpx.TransportError as exc:
                    outcome = "lost" if index == victim else repr(exc)
                outcomes.update({s.waybill.logisticsNo: (index, outcome) for s in sets})
                if index == victim and outcome == "ok":
                    victim_answered.release()

        writers = [pool.submit(writer, t) for t in range(PROCESSES)]
        for _ in range(2):
            assert victim_answered.acquire(timeout=REQUEST_TIMEOUT_S), "process 1 stopped answering"
        wait_until_holding_write_lock(database, cluster.procs[victim].pid)
        cluster.kill(victim)
        for f in writers:
            f.result(timeout=JOIN_TIMEOUT_S)

        every = [s for plan in plans for s in plan]
        problems = {name: o for name, o in outcomes.items() if o[1] not in ("ok", "lost")}
        assert problems == {}, problems
        assert len(outcomes) == len(every)
        lost = [s for s in every if outcomes[s.waybill.logisticsNo][1] == "lost"]
        assert lost, "the kill came after the writers were done"
        survivors = [i for i in range(PROCESSES) if i != victim]
        states = read_sets(pool, clients, every, via=survivors)
        for s, state in zip(every, states, strict=True):
            if outcomes[s.waybill.logisticsNo][1] == "ok" or not state.absent:
                assert_complete(state, s)  # answered, or committed before the kill took its answer
        for k, start in enumerate(range(0, len(lost), per_request)):  # sent again, to a survivor
            declare(clients(survivors[k % 2], "enterprise"), lost[start : start + per_request])
        for s, state in zip(lost, read_sets(pool, clients, lost, via=survivors), strict=True):
            assert_complete(state, s)


@pytest.mark.timeout(SCALE.timeout_s)
def test_a_process_frozen_inside_its_write_transaction_holds_the_others_for_seconds(
    tmp_path: Path, database: str
) -> None:
    """Process 0 takes a long batch (250 sets) and is stopped (SIGSTOP) while it holds the write lock:
    frozen, not dead, so its connection stays open. A write to process 1 must still go through:
    the waiting process ends a lock holder that has waited on its client for 5 s (the server's own
    `idle_in_transaction_session_timeout` does not apply to a pipelined transaction, whose session
    stays "active" until its Sync). Its lock_timeout is 15 s: without the watch, process 1 answers
    503 for as long as process 0 is frozen (an outside review found this). Resumed, process 0's
    batch is stored whole or not at all, and process 0 writes again."""
    big = factories.document_set(250, start=1)
    small = factories.document_set(4, start=1001)
    with three_centrals(tmp_path, database) as cluster, clients_of(cluster) as clients:
        answers: list[int | str] = []

        def send_big() -> None:
            try:
                answers.append(
                    clients(0, "enterprise").post("/api/v1/documents", json=documents_json(big)).status_code
                )
            except httpx.TransportError as exc:
                answers.append(repr(exc))

        sender = threading.Thread(target=send_big, daemon=True)
        sender.start()
        wait_until_holding_write_lock(database, cluster.procs[0].pid)
        os.killpg(cluster.procs[0].pid, signal.SIGSTOP)
        try:
            declared = clients(1, "enterprise").post("/api/v1/documents", json=documents_json(small))
        finally:
            os.killpg(cluster.procs[0].pid, signal.SIGCONT)
        assert declared.status_code == 200, declared.text
        join_all([sender])
        with thread_pool(PROCESSES) as pool:
            states = read_sets(pool, clients, big, via=[1, 2])
            whole = not any(state.absent for state in states)
            if whole:  # it committed before the stop after all: then entirely
                for s, state in zip(big, states, strict=True):
                    assert_complete(state, s)
            else:
                assert all(state.absent for state in states), "a half-stored batch"
            again = declare(clients(0, "enterprise"), factories.document_set(2, start=2001))
        assert again["receipts"], again
