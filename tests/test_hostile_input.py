"""Hostile input at every edge: a clear 400 (JSON from the API) naming what is wrong, never a 500,
and nothing stored. Rows an older version stored outside today's rules must not take a page down."""

from __future__ import annotations

from typing import Any

import pytest

from tests.approval_helpers import start_parked
from zart_django import DurableScheduler, PayloadError, TaskRegistry, durable, step
from zart_django.codec import MAX_DEPTH, encode
from zart_django.models import ApprovalRecord, Event, Execution, StepResult
from zart_django.testing import run_until_idle

ALPHABET = "ASCII letters, digits and - _ . : @ +"

# Ids outside the name alphabet, each with what the refusal must say.
BAD_IDS = [
    pytest.param("a/b", "'/' (U+002F) at position 1", id="slash"),
    pytest.param(".", "cannot be '.'", id="dot"),
    pytest.param("..", "cannot be '..'", id="dot-dot"),
    pytest.param("a\x00b", "(U+0000) at position 1", id="nul"),
    pytest.param("a\ud800", "(U+D800) at position 1", id="surrogate"),
    pytest.param("x" * 201, "1 to 200 characters long, not 201", id="201-chars"),
    pytest.param("a b", "(U+0020) at position 1", id="space"),
    pytest.param("a\n", "(U+000A) at position 1", id="newline"),
    pytest.param("café", "(U+00E9) at position 3", id="non-ascii"),
    pytest.param("", "1 to 200 characters long, not 0", id="empty"),
]


def nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


# Values no database can store, each with where and what the refusal must name.
BAD_VALUES = [
    pytest.param({"note": "a\x00"}, ".note: contains a NUL character (U+0000)", id="nul"),
    pytest.param({"k\x00": 1}, ": the key 'k\\x00' contains a NUL character", id="nul-key"),
    pytest.param(["ok", "\ud800"], "[1]: contains a lone surrogate (U+D800)", id="surrogate"),
    pytest.param({"\udfff": 1}, "the key '\\udfff' contains a lone surrogate", id="surrogate-key"),
    pytest.param(nested(MAX_DEPTH + 1), f"nested deeper than {MAX_DEPTH} levels", id="deep"),
    pytest.param(nested(900), f"nested deeper than {MAX_DEPTH} levels", id="deep-900"),
    pytest.param({"x": float("nan")}, ".x: nan is not a finite number", id="nan"),
]


NUL_RESULT = TaskRegistry()


@step("returns-a-nul")
def returns_a_nul(text: str) -> str:
    return text + chr(0)


@durable("returns-a-nul", registry=NUL_RESULT)
def returns_a_nul_task(text: str) -> str:
    return returns_a_nul(text)


def stored() -> tuple[int, int, int, int]:
    """How many executions, steps, events and decisions there are."""
    return (
        Execution.objects.count(),
        StepResult.objects.count(),
        Event.objects.count(),
        ApprovalRecord.objects.count(),
    )


@pytest.fixture
def parked() -> str:
    """An execution waiting for its manager's approval."""
    start_parked("p-1")
    return "p-1"


@pytest.mark.django_db
class TestEngine:
    @pytest.mark.parametrize("bad, why", BAD_IDS)
    def test_start_refuses_an_id_outside_the_alphabet(self, scheduler, bad, why):
        with pytest.raises(PayloadError, match="execution id") as refused:
            scheduler.start(bad, "no-input")
        assert why in str(refused.value)
        assert "1 to 200" in str(refused.value)
        assert stored() == (0, 0, 0, 0)

    def test_start_accepts_every_character_of_the_alphabet(self, scheduler):
        for good in ("Az09-_.:@+", "...", "x" * 200, "order:2026-11@eu+1"):
            assert scheduler.start(good, "no-input").id == good
        assert Execution.objects.count() == 4

    @pytest.mark.parametrize("bad, why", BAD_IDS)
    def test_offer_event_refuses_a_name_outside_the_alphabet(self, scheduler, parked, bad, why):
        before = stored()
        with pytest.raises(PayloadError, match="event name") as refused:
            scheduler.offer_event(parked, bad, {})
        assert why in str(refused.value)
        assert ALPHABET in str(refused.value) or "characters long" in str(refused.value)
        assert stored() == before

    @pytest.mark.parametrize("value, why", BAD_VALUES)
    def test_start_refuses_input_the_database_cannot_store(self, scheduler, value, why):
        with pytest.raises(PayloadError) as refused:
            scheduler.start("s-1", "no-input", value)
        assert str(refused.value).startswith("input")
        assert why in str(refused.value)
        assert stored() == (0, 0, 0, 0)

    @pytest.mark.parametrize("value, why", BAD_VALUES)
    def test_offer_event_refuses_a_payload_the_database_cannot_store(
        self, scheduler, parked, value, why
    ):
        before = stored()
        with pytest.raises(PayloadError) as refused:
            scheduler.offer_event(parked, "other-event", value)
        assert str(refused.value).startswith("payload of event 'other-event'")
        assert why in str(refused.value)
        assert stored() == before

    def test_offer_event_refuses_an_execution_id_no_database_can_hold(self, scheduler):
        with pytest.raises(PayloadError, match=r"execution id: contains a NUL character"):
            scheduler.offer_event("a\x00", "go", {})
        assert stored() == (0, 0, 0, 0)

    def test_a_step_result_the_database_cannot_store_fails_the_step_clearly(self):
        scheduler = DurableScheduler(NUL_RESULT)
        scheduler.start("r-1", "returns-a-nul", "ab")
        run_until_idle(NUL_RESULT)
        info = scheduler.get("r-1")
        assert info.status == "failed"
        assert "step 'returns-a-nul' failed after 1 attempt: PayloadError" in info.error
        assert "contains a NUL character (U+0000) at position 2" in info.error
        assert info.steps[0].status == "failed"

    def test_nesting_up_to_the_bound_is_stored(self):
        assert encode(nested(MAX_DEPTH)) == nested(MAX_DEPTH)
        with pytest.raises(PayloadError, match=f"nested deeper than {MAX_DEPTH}"):
            encode(nested(MAX_DEPTH + 1))
