"""Async durable functions in the demo: converting an invoice's amounts into euros. The rates
come from a rates service (simulated) through an ``async def`` step with a timeout, all at once
with ``parallel``; the conversion waits for the customer's confirmation, then books it with a
plain step. The demo's settings list this module in ``ZART["WORKFLOW_MODULES"]``;
``manage.py async_demo`` runs one conversion on a real worker, from async code."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass

from zart_django import (
    RetryPolicy,
    current_execution_id,
    durable,
    now,
    parallel,
    step,
    wait_for_event,
)

RATES = {"USD": 0.92, "GBP": 1.17, "JPY": 0.0061, "CHF": 1.05}
"""Euros per unit, as the rates service answers."""
SLOW_ONCE = "JPY"
"""The currency whose first lookup of each execution hangs, so the step's timeout cancels it."""
_hung: set[tuple[str | None, str]] = set()


@dataclass
class Invoice:
    customer: str
    amounts: dict[str, float]


@dataclass
class Confirmation:
    accepted: bool
    by: str


@dataclass
class Conversion:
    customer: str
    total_eur: float
    quoted_at: str
    status: str
    reference: str = ""


@step("fetch-rate", retry=RetryPolicy.fixed(3, "1s"), timeout="1s")
async def fetch_rate(currency: str) -> float:
    """Euros per ``currency``, from the rates service (a short await stands for the call). The
    first lookup of ``SLOW_ONCE`` hangs: the timeout cancels that attempt and the retry answers."""
    await asyncio.sleep(0.05)
    key = (current_execution_id(), currency)
    if currency == SLOW_ONCE and key not in _hung:
        _hung.add(key)
        await asyncio.sleep(60)
    return RATES[currency]


@step("book-conversion")
def book_conversion(customer: str, total_eur: float) -> str:
    """Book the conversion (a plain step: in a real system, ORM writes); return its reference."""
    return f"CONV-{customer.upper()}-{round(total_eur * 100)}"


@durable("convert-invoice", events={"confirm": Confirmation})
async def convert_invoice(invoice: Invoice) -> Conversion:
    """Fetch every rate at once, quote the total, wait for the customer, book it."""
    currencies = sorted(invoice.amounts)  # PostgreSQL's JSON reorders the keys: sort them
    rates = await parallel(*(functools.partial(fetch_rate, c) for c in currencies))
    total = round(sum(invoice.amounts[c] * r for c, r in zip(currencies, rates, strict=True)), 2)
    quoted_at = (await now()).isoformat(timespec="seconds")
    confirmation = await wait_for_event("confirm", timeout="10m")
    if not confirmation.accepted:
        return Conversion(invoice.customer, total, quoted_at, f"declined by {confirmation.by}")
    reference = await book_conversion(invoice.customer, total)
    return Conversion(invoice.customer, total, quoted_at, "booked", reference)
