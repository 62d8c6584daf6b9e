"""The inbound gateway: webhooks and events in, management API, all onto the event stream."""

from worker.gateway.app import create_app

__all__ = ["create_app"]
