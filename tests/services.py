"""``python -m tests.services postgres|redis``: exit 0 if that service answers on 127.0.0.1."""

from __future__ import annotations

import socket
import sys

PORTS = {"postgres": 5432, "redis": 6379}


def reachable(service: str) -> bool:
    """Whether something accepts connections on the service's port on 127.0.0.1."""
    try:
        with socket.create_connection(("127.0.0.1", PORTS[service]), timeout=2):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(0 if reachable(sys.argv[1]) else 1)
