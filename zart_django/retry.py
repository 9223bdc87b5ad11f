"""How often and how soon a failed step runs again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from .durations import Duration, parse_duration


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` counts every run of the step body, the first one included.

    ``RetryPolicy.fixed(1, ...)`` runs the body once and never retries.
    """

    max_attempts: int
    delay: timedelta
    factor: float = 1.0
    max_delay: timedelta | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")

    @classmethod
    def fixed(cls, max_attempts: int, delay: Duration) -> RetryPolicy:
        """Wait the same ``delay`` before each retry."""
        return cls(max_attempts, parse_duration(delay))

    @classmethod
    def exponential(
        cls, max_attempts: int, base: Duration, max: Duration | None = None, factor: float = 2.0
    ) -> RetryPolicy:
        """Wait ``base``, then ``base * factor``, ... capped at ``max``."""
        cap = parse_duration(max) if max is not None else None
        return cls(max_attempts, parse_duration(base), factor, cap)

    def delay_after(self, attempt: int) -> timedelta:
        """The wait before the run that follows failed attempt number ``attempt`` (1-based)."""
        delay = self.delay * (self.factor ** (attempt - 1))
        if self.max_delay is not None and delay > self.max_delay:
            return self.max_delay
        return delay
