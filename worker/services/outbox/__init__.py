"""The outbox, in one home: every notification and write-back a change causes is a row written
in that change's transaction, then delivered at least once by the delivery tasks.

- `write`: queue rows for a tier's channels (and a write-back), cancel those made moot;
- `lease`: take rows for one attempt each (one lease for one message or many), and what
  became of those it could not take;
- `record`: what an attempt gave: sent, dead, or pending again after the backoff;
- `digest`: rows held for a channel's window, sent as one message;
- `outcomes`: the values passed between them.

The states a row goes through are `worker.domain.states.OutboxState`; when a message no longer
matters is `worker.domain.moot`; how it reads is `worker.domain.wording` and the templates.
"""

from worker.services.outbox.lease import Leased, lease, waiting
from worker.services.outbox.outcomes import Attempt, Delivery, Sent
from worker.services.outbox.record import record
from worker.services.outbox.write import (
    Outbox,
    cancel_fresh,
    cancel_pending,
    cancel_stored,
    queue_notifications,
)

__all__ = [
    "Attempt",
    "Delivery",
    "Leased",
    "Outbox",
    "Sent",
    "cancel_fresh",
    "cancel_pending",
    "cancel_stored",
    "lease",
    "queue_notifications",
    "record",
    "waiting",
]
