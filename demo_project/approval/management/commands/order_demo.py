"""``manage.py order_demo``: three orders of the saga in ``demo_project.approval.orders``, run by a
real worker: one confirmed, one out of stock and one withdrawn (both refunded)."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from demo_project.approval.orders import Order, place_order
from demo_project.approval.worker import running_worker
from zart_django import DurableScheduler, ExecutionInfo


class Command(BaseCommand):
    help = "Run three orders of the order saga (confirmed, out of stock, withdrawn) with a worker."

    def handle(self, *args: Any, **options: Any) -> None:
        scheduler = DurableScheduler()
        stamp = int(time.time() * 1000)
        orders = {
            f"order-demo-{stamp}-1": (Order("Bob", "a laptop", 1200), "confirmed"),
            f"order-demo-{stamp}-2": (Order("Carol", "a phone", 800, in_stock=False), ""),
            f"order-demo-{stamp}-3": (Order("Dan", "a desk", 300), "withdrawn"),
        }
        with running_worker("order-demo-worker.log") as log_path:
            for execution_id, (order, event) in orders.items():
                scheduler.start_for(place_order, execution_id, order)
                if event:
                    self._wait_until_parked(scheduler, execution_id)
                    scheduler.offer_event(execution_id, event, f"{event} by {order.customer}")
                self._show(execution_id, order, self._wait_until_finished(scheduler, execution_id))
        self.stdout.write(f"\n(worker log: {log_path})")

    def _show(self, execution_id: str, order: Order, info: ExecutionInfo) -> None:
        out = self.stdout.write
        out(f"{execution_id}: {order.customer} orders {order.item} -> {info.status}")
        if info.output is not None:
            out(f"  reference {info.output['reference']}, note: {info.output['note']}")
        if info.compensation is not None:
            out(f"  failed at: {info.compensation.failure.step or '(the function)'}")
            out(f"  compensation {info.compensation.status}: {info.compensation.result}")
        out("  steps: " + ", ".join(f"{s.name} ({s.status})" for s in info.steps))

    def _wait_until_parked(self, scheduler: DurableScheduler, execution_id: str) -> None:
        self._wait_for(scheduler, execution_id, lambda info: info.status == "waiting")

    def _wait_until_finished(self, scheduler: DurableScheduler, execution_id: str) -> ExecutionInfo:
        return self._wait_for(scheduler, execution_id, lambda info: info.is_finished)

    def _wait_for(self, scheduler: DurableScheduler, execution_id: str, done: Any) -> ExecutionInfo:
        limit = time.monotonic() + 30
        while time.monotonic() < limit:
            info = scheduler.get(execution_id)
            if done(info):
                return info
            time.sleep(0.05)
        raise CommandError(f"{execution_id} did not get there within 30 s: {info.status}")
