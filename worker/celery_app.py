"""The Celery application. Tasks are routed to two queues; messages are acked after the work."""

from __future__ import annotations

from celery import Celery

from config.settings import Settings
from worker.constants import ESCALATION_QUEUE, OUTBOX_QUEUE
from worker.redis_conn import broker_url

app = Celery("escalator", include=["worker.tasks"])


def configure(settings: Settings) -> Celery:
    """Point the app at the settings' Redis and apply Escalator's delivery guarantees."""
    app.conf.update(
        broker_url=broker_url(settings.resolved_redis_url()),
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 3600},
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,  # a task killed mid-way is delivered again
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=4,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_default_queue=ESCALATION_QUEUE,
        task_routes={
            "escalation.*": {"queue": ESCALATION_QUEUE},
            "outbox.*": {"queue": OUTBOX_QUEUE},
        },
    )
    return app
