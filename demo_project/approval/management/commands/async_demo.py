"""``manage.py async_demo``: an ``async def`` durable function on a real worker, driven from
async code with the scheduler's async twins, as an ASGI view would; prints the conversion and
its steps (the rate lookup whose first attempt timed out shows two attempts)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.core.management.base import BaseCommand

from demo_project.approval.rates import Confirmation, Invoice, convert_invoice
from demo_project.approval.worker import running_worker
from zart_django import DurableScheduler


class Command(BaseCommand):
    help = "Convert an invoice to euros with an async durable function, from async code."

    def handle(self, *args: Any, **options: Any) -> None:
        with running_worker("async-demo-worker.log") as log_path:
            async_to_sync(self._flow)()
        self.stdout.write(f"\n(worker log: {log_path})")

    async def _flow(self) -> None:
        out = self.stdout.write
        scheduler = DurableScheduler()
        execution_id = f"conversion-demo-{int(time.time() * 1000)}"
        invoice = Invoice("Acme", {"USD": 1200.0, "GBP": 300.0, "JPY": 50000.0})
        out("=== Zart Async Workflow Example ===")
        out("")
        out(f"Starting execution '{execution_id}' ({invoice.customer}: {invoice.amounts})")
        await scheduler.astart_for(convert_invoice, execution_id, invoice)
        while (await sync_to_async(scheduler.get)(execution_id)).waiting_on != "confirm":
            await asyncio.sleep(0.1)
        out("Rates fetched; waiting for the customer's confirmation...")
        await scheduler.aoffer_event(execution_id, "confirm", Confirmation(True, "Ana"))
        conversion = await scheduler.await_completion(execution_id, timeout=60)
        out("")
        out("Execution completed!")
        out(f"  total:     {conversion.total_eur:.2f} EUR")
        out(f"  status:    {conversion.status}")
        out(f"  reference: {conversion.reference}")
        out("")
        out("Steps:")
        for s in (await sync_to_async(scheduler.get)(execution_id)).steps:
            tried = f", {s.attempts} attempts: the first timed out" if s.attempts > 1 else ""
            out(f"  {s.name} ({s.status}{tried})")
