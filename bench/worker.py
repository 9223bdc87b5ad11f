"""``python -m bench.worker [run_zart_worker options]``: a worker that also logs its claims.

The benchmark's worker processes run through this module: ``run_zart_worker`` as it is, with
``zart_django.store.claim_due`` wrapped (here, not in the engine) so that each call writes
``bench-claim <taken>`` to the log. Counting those lines tells how many workers a due execution
woke, which the engine's own log does not say.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

CLAIM_MARK = "bench-claim"


def _counted(claim_due: Any) -> Any:
    @functools.wraps(claim_due)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        claims = claim_due(*args, **kwargs)
        print(f"{CLAIM_MARK} {len(claims)}", file=sys.stderr, flush=True)
        return claims

    return wrapper


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from zart_django import store

    store.claim_due = _counted(store.claim_due)
    call_command("run_zart_worker", *argv)


if __name__ == "__main__":
    main(sys.argv[1:])
