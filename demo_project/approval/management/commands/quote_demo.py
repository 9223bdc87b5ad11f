"""``manage.py quote_demo``: a quote whose price lookups run in parallel, on a real worker."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand

from demo_project.approval.quotes import LOOKUP_SECONDS, QuoteRequest, quote
from demo_project.approval.worker import running_worker
from zart_django import DurableScheduler


class Command(BaseCommand):
    help = "Start a quote that looks up five prices in parallel and print what it returned."

    def handle(self, *args: Any, **options: Any) -> None:
        with running_worker("quote-worker.log") as log_path:
            self._quote()
        self.stdout.write(f"\n(worker log: {log_path})")

    def _quote(self) -> None:
        out = self.stdout.write
        scheduler = DurableScheduler()
        execution_id = f"quote-demo-{int(time.time() * 1000)}"
        request = QuoteRequest("Acme", ["widget", "gadget", "gizmo", "sprocket", "flange"])
        out("=== Zart Parallel Steps Example ===")
        out("")
        out(f"Starting execution '{execution_id}': {len(request.skus)} price lookups at once")
        out(f"(each lookup takes {LOOKUP_SECONDS:.1f} s)")
        scheduler.start_for(quote, execution_id, request)
        result = scheduler.wait_completion(execution_id, timeout=60)
        out("")
        out(f"Quote for {result['customer']}:")
        for sku, cents in result["lines"]:
            out(f"  {sku:<10}{cents / 100:>8.2f}")
        out(f"  {'total':<10}{result['total_cents'] / 100:>8.2f}")
        out("")
        steps = scheduler.get(execution_id).steps
        out("Recorded steps, in call order: " + ", ".join(s.name for s in steps))
