"""An order saga: recorded values, the first of two events, and a refund when the order fails.

``place_order`` records when and under which reference the order was placed (``now``,
``uuid4``), charges the card, reserves the item, then waits for the first of "confirmed" and
"withdrawn". If reserving fails (out of stock) or the customer withdraws, ``refund_order`` runs
durably and refunds the charge; the execution still ends ``failed``, with the refund as its
compensation result. ``manage.py order_demo`` runs three orders through a real worker.
"""

from __future__ import annotations

from dataclasses import dataclass

from zart_django import Failure, durable, now, step, uuid4, wait_for_any


@dataclass
class Order:
    customer: str
    item: str
    amount: int
    in_stock: bool = True


@step("charge-card")
def charge_card(order: Order) -> str:
    return f"charged {order.amount} EUR to {order.customer}"


@step("reserve-item")
def reserve_item(order: Order) -> str:
    if not order.in_stock:
        raise RuntimeError(f"{order.item} is out of stock")
    return f"reserved {order.item}"


@step("refund")
def refund(order: Order, reason: str) -> str:
    return f"refunded {order.amount} EUR to {order.customer} ({reason})"


def refund_order(order: Order, failure: Failure) -> dict:
    """The compensation: give the money back, saying what failed."""
    return {"refund": refund(order, failure.error), "failed_step": failure.step}


@durable(
    "order",
    timeout="1d",
    on_failure=refund_order,
    events={"confirmed": str, "withdrawn": str},
)
def place_order(order: Order) -> dict:
    placed_at = now()
    reference = uuid4()
    charge_card(order)
    reserve_item(order)
    name, note = wait_for_any(["confirmed", "withdrawn"], timeout="1d")
    if name == "withdrawn":
        raise RuntimeError(f"withdrawn by the customer: {note}")
    return {"reference": str(reference), "placed_at": placed_at.isoformat(), "note": note}
