"""A measured figure beside its reference, and the table that prints them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Figure:
    """One benchmark figure: ``value`` measured beside ``reference`` in the same run.

    ``item`` is the letter of the target in issue 12 (``a`` … ``f``) or of a further figure;
    ``ratio`` is ``value / reference``; ``met`` says whether ``target`` holds (None: no target,
    or it could not be judged: ``details["why"]`` says why).
    """

    item: str
    db: str
    label: str
    value: float
    unit: str
    reference: float
    reference_unit: str
    target: str = ""
    met: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.value / self.reference if self.reference else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def _number(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The figures (as ``Figure.as_dict`` gives them) as a Markdown table."""
    lines = [
        "| # | measurement | db | value | reference | ratio | target | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        met = {True: "yes", False: "NO", None: ""}[row["met"]]
        if row["met"] is None and row["details"].get("why"):
            met = "not run"
        ratio = row["ratio"]
        lines.append(
            f"| {row['item']} | {row['label']} | {row['db']}"
            f" | {_number(row['value'])} {row['unit']}"
            f" | {_number(row['reference'])} {row['reference_unit']}"
            f" | {f'{ratio:.2f}' if math.isfinite(ratio) else '-'}"
            f" | {row['target']} | {met} |"
        )
    return "\n".join(lines)
