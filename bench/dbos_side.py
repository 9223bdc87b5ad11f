"""``python -m bench.dbos_side --url URL --count N --poll S``: the approval workflow in DBOS
Transact, for target (b)'s side-by-side rate. Prints one JSON object: ``{"rate": wf/s, ...}``.

The same shape as ``bench-approval``: a step, a wait for the decision (``DBOS.recv`` on topic
``approval``), a step, a step. One process, as DBOS runs: it launches DBOS on the system database
``URL`` (its own SQLite file, or its own database on the same PostgreSQL server), starts ``N``
workflows, sends each its decision right after starting it (DBOS keeps a message sent before the
``recv``, as our inbox keeps an event offered before its wait; our side's client does the same),
and times from the first start to the last result. Launching DBOS is not timed. Imports nothing of Django or zart.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from dbos import DBOS, DBOSConfig


@DBOS.step()
def validate(request: dict[str, Any]) -> dict[str, Any]:
    return {"requester": request["requester"], "amount": request["amount"], "valid": True}


@DBOS.step()
def apply(request: dict[str, Any], decision: dict[str, Any]) -> str:
    return "applied" if decision["approved"] else "rejected"


@DBOS.step()
def notify(request: dict[str, Any], outcome: str) -> str:
    return f"{request['requester']}: {outcome}"


@DBOS.workflow()
def approval(request: dict[str, Any]) -> str:
    """Step, wait for the decision, step, step."""
    validate(request)
    decision = DBOS.recv("approval", timeout_seconds=300)
    if decision is None:
        raise RuntimeError("no decision arrived")
    outcome = apply(request, decision)
    return notify(request, outcome)


def run(url: str, count: int, poll: float) -> dict[str, Any]:
    """Launch DBOS on ``url``, run ``count`` approvals, return the rate and DBOS's version."""
    config: DBOSConfig = {
        "name": "zart-bench",
        "system_database_url": url,
        "notification_listener_polling_interval_sec": poll,
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()
    try:
        start = time.perf_counter()
        handles = []
        for _ in range(count):
            handle = DBOS.start_workflow(approval, {"requester": "bench", "amount": 100})
            DBOS.send(handle.workflow_id, {"approved": True, "reviewer": "bench"}, "approval")
            handles.append(handle)
        for handle in handles:
            handle.get_result()
        elapsed = time.perf_counter() - start
    finally:
        DBOS.destroy()
    return {"rate": count / elapsed, "count": count, "seconds": elapsed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dbos_side", description=__doc__)
    parser.add_argument("--url", required=True, help="DBOS's system database URL")
    parser.add_argument("--count", type=int, required=True, help="approval workflows to run")
    parser.add_argument("--poll", type=float, default=1.0, help="DBOS's notification poll, s")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.url, args.count, args.poll)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
