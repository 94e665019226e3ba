"""What the engine tells whoever watches it: cases started, tasks completed, incidents, timers fired.

The engine knows no metrics library; the API gives it an observer that counts (api/metrics.py). Each call
comes after the transaction that made it true has committed."""
from __future__ import annotations


class Observer:
    """Hears nothing: the default."""

    def case_started(self, definition: str) -> None:
        pass

    def task_completed(self, definition: str) -> None:
        pass

    def incident(self, definition: str) -> None:
        pass

    def timer_fired(self, definition: str, lateness_seconds: float) -> None:
        pass
