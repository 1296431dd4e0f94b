"""Edge: one decision's transaction, back to back against spaced out as a conveyor spaces it.

    .venv/bin/python bench/edge_decision_txn.py                 # 1000 decisions each way, 12 ms apart
    .venv/bin/python bench/edge_decision_txn.py --gap-ms 50

On the store's writer thread, with nothing else running, each decision does what `Checker.decide`
does inside its transaction: BEGIN IMMEDIATE; look the code up, parse and verify the record (Ed25519;
skipped, as in the agent, for texts the sync verified — `--verify-each` runs it every time), check it
was not released, read the sync age; the rules; the decision row, the release marker and the
hash-chained event; durable COMMIT (WAL, synchronous=FULL). It runs them back to back, then with
--gap-ms of idle between decisions (4 lines × 20 parcels/s is one decision every 12.5 ms), and prints
the median and p99 of each step both ways. The difference is what a CPU that idles between parcels
costs the same code (see BENCHMARKS.md, edge_pipeline).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before bench/ (the script's own directory): bench/devices.py is not devices/

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from bench.central_ingest import machine  # noqa: E402
from edge import rules  # noqa: E402
from edge.checker import Checker  # noqa: E402
from edge.store import Store  # noqa: E402
from kernel.timefmt import utc_now  # noqa: E402
from testkit import factories  # noqa: E402

STEPS = ["lookup + verify + released? + sync age", "rules", "rows + chained event", "durable COMMIT"]


def build(directory: Path, n: int, *, synced: bool = True) -> tuple[Store, Checker, list[rules.Observation]]:
    key = Ed25519PrivateKey.generate()
    store = Store(directory / "edge.db")
    records = []
    for i in range(n):
        record = factories.feed_record(
            key, seq=i + 1, invtNo=f"46012025I{i:09d}", orderNo=f"ORD{i:09d}", logisticsNo=f"SF{i:010d}"
        )
        records.append((record, record.model_dump_json()))
    store.write_sync(lambda conn: Store.apply_feed(conn, records, n, utc_now().isoformat()))
    checker = Checker(
        store=store,
        public_key=key.public_key(),
        tolerance=rules.Tolerance(absolute_kg=Decimal("0.05"), percent=Decimal("5")),
        edge_id="edge-bench",
        staleness_limit_s=3600,
        park_id="P1",
    )
    asyncio.run(checker.verify_release_history())  # as the agent does at start
    if synced:  # as FeedSync does: these texts were verified when stored (edge/verified.py)
        for _, text in records:
            checker.verified.add(text)
    seen = [rules.Observation(scanned_code=f"SF{i:010d}", weight_kg=Decimal("0.800")) for i in range(n)]
    return store, checker, seen


def decide(store: Store, checker: Checker, seen: rules.Observation, times: dict[str, list[float]]) -> None:
    """`Checker.decide`'s transaction, step by step (run on the writer thread)."""
    conn = store._writer
    t0 = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    cache, record = checker.cache_state(seen.scanned_code, conn)
    t1 = time.perf_counter()
    decision = rules.decide(seen, cache, checker.tolerance)
    t2 = time.perf_counter()
    checker._commit(conn, "line-1", seen, decision, record, str(uuid.uuid4()), None, utc_now(), None)
    t3 = time.perf_counter()
    conn.execute("COMMIT")
    t4 = time.perf_counter()
    store._after_commit(conn)  # what Store.write does next: maybe ask for a background checkpoint
    if decision.verdict != rules.Verdict.RELEASE:
        raise SystemExit(f"expected a release, got {decision.verdict}: {decision.reason}")
    for step, took in zip(STEPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
        times[step].append(took)


def run(
    store: Store, checker: Checker, seen: list[rules.Observation], gap_s: float
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {step: [] for step in STEPS}

    def work() -> None:
        for obs in seen:
            if gap_s:
                time.sleep(gap_s)
            decide(store, checker, obs, times)

    store._executor.submit(work).result()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--decisions", type=int, default=1000, help="decisions each way")
    ap.add_argument("--gap-ms", type=float, default=12.0, help="idle time between spaced decisions")
    ap.add_argument(
        "--verify-each",
        action="store_true",
        help="records not seen by the sync: every decision runs the Ed25519 check (after a restart)",
    )
    args = ap.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory(prefix="bench-edge-txn-") as tmp:
        n = args.decisions
        store, checker, seen = build(Path(tmp), 2 * n, synced=not args.verify_each)
        hot = run(store, checker, seen[:n], 0.0)
        spaced = run(store, checker, seen[n:], args.gap_ms / 1000)
        store.close()

    def p(values: list[float], q: float) -> float:
        return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1e6

    print(f"\n{'step':42s} {'back to back':>18s} {f'{args.gap_ms:g} ms apart':>18s}   (µs, p50 / p99)")
    for step in [*STEPS, "whole transaction"]:
        if step == "whole transaction":
            h = [sum(v) for v in zip(*hot.values(), strict=True)]
            s = [sum(v) for v in zip(*spaced.values(), strict=True)]
        else:
            h, s = hot[step], spaced[step]
        print(
            f"{step:42s} {statistics.median(h) * 1e6:8.0f} / {p(h, 0.99):6.0f}"
            f"  {statistics.median(s) * 1e6:8.0f} / {p(s, 0.99):6.0f}"
        )


if __name__ == "__main__":
    main()
