"""A fan-out in the demo: a quote prices every item of an order at once with ``parallel``, each
price lookup a step of its own that takes a moment, as a call to a pricing service would. The
demo's settings list this module in ``ZART["WORKFLOW_MODULES"]``; ``manage.py quote_demo`` runs
one quote on a real worker."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from zart_django import durable, parallel, step

PRICES = {"widget": 250, "gadget": 1200, "gizmo": 799, "sprocket": 45, "flange": 310}
"""Unit prices in cents, as the pricing service would answer."""
LOOKUP_SECONDS = 0.3
"""How long one price lookup takes."""


@dataclass
class QuoteRequest:
    customer: str
    skus: list[str]


@step("price-lookup")
def price_lookup(sku: str) -> int:
    """The unit price of ``sku`` in cents (a pricing service's answer, after its delay)."""
    time.sleep(LOOKUP_SECONDS)
    return PRICES[sku]


@durable("quote")
def quote(request: QuoteRequest) -> dict:
    """Look up every item's price at once; the prices come back in the order of the items."""
    lookups = (functools.partial(price_lookup, sku) for sku in request.skus)
    prices = parallel(*lookups, max_concurrency=8)
    return {
        "customer": request.customer,
        "lines": [[sku, cents] for sku, cents in zip(request.skus, prices, strict=True)],
        "total_cents": sum(prices),
    }
