"""The inbound gateway: webhooks and events in, management API, all onto the event stream.

`create_app` is loaded on first use (PEP 562): the other roles import only the gateway's
metrics (`worker.gateway.metrics`), and must not load FastAPI for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.gateway.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from worker.gateway.app import create_app

        return create_app
    raise AttributeError(f"module 'worker.gateway' has no attribute {name!r}")
