"""The benchmark's table (``bench.results``): each target printed with whether it is met.

No timing here: the figures are made up; what is checked is how a row reads.
"""

import math

from bench.results import Figure, markdown_table
from bench.timing import spread


def _row(**kwargs: object) -> str:
    figure = Figure(**{"item": "a", "db": "sqlite", "label": "x", "unit": "us", **kwargs})
    return markdown_table([figure.as_dict()]).splitlines()[-1]


def test_a_met_target_reads_yes_and_a_missed_one_no() -> None:
    met = _row(value=90.0, reference=60.0, reference_unit="us", target="ratio <= 1.5", met=True)
    missed = _row(
        value=120.0, reference=60.0, reference_unit="us", target="ratio <= 1.5", met=False
    )
    assert met.endswith("| 1.50 | ratio <= 1.5 | yes |")
    assert missed.endswith("| 2.00 | ratio <= 1.5 | NO |")


def test_a_figure_not_measured_says_why_instead_of_a_number() -> None:
    row = _row(
        value=30.0,
        reference=math.nan,
        reference_unit="wf/s",
        target="ratio >= 3",
        details={"why": "dbos is not installed"},
    )
    assert "| - wf/s | - | ratio >= 3 | not run |" in row


def test_spread_gives_median_and_range() -> None:
    assert spread([0.003, 0.001, 0.002], 1000) == {
        "median": 2.0,
        "min": 1.0,
        "max": 3.0,
        "runs": 3,
    }
