"""The HTTP gateway; it lives in `worker.gateway` (this name is kept for older imports)."""

from worker.gateway import create_app

__all__ = ["create_app"]
