"""Every Redis key and stream name Escalator uses, in one place."""

STREAM = "escalator:events"  # producers XADD here: field `event` holds the JSON
STREAM_FIELD = "event"
DEAD_STREAM = "escalator:events:dead"  # entries that could not be applied, with their error
GROUP = "escalator"  # the ingest consumer group
# The deadline index: one hash tag, `{deadlines}`, so that every key its Lua scripts touch
# hashes to one Redis Cluster slot (a script may only touch keys of one slot).
DUE = "escalator:{deadlines}:due"  # ZSET deadline id -> due time (epoch seconds)
INFLIGHT = "escalator:{deadlines}:inflight"  # ZSET deadline id -> lease expiry (epoch seconds)
EPOCH = "escalator:{deadlines}:epoch"  # set when a reconcile starts; gone means the index was lost
# The index's names before the hash tag: abandoned. A scheduler on the new names finds no EPOCH,
# so it rebuilds the index from the database; that rebuild deletes these.
LEGACY_INDEX = (
    "escalator:deadlines:due",
    "escalator:deadlines:inflight",
    "escalator:deadlines:epoch",
)
ESCALATION_QUEUE = "escalations"
OUTBOX_QUEUE = "outbox"
POLICY_GENERATION = "escalator:policy:generation"  # INCR asks every role to reload its policy file
DELIVERY_PREFIX = "escalator:gateway:delivery:"  # + source:sha256(delivery id): ids it produced
OUTBOX_INFLIGHT = "escalator:outbox:inflight"  # ZSET message id -> lease of its delivery task
DELIVERIES_SENT = "escalator:stats:deliveries_sent"  # counter: message ids handed to delivery tasks
# health: heartbeats and the canary (worker/broker/heartbeats.py, worker/broker/canary.py)
HEARTBEATS = "escalator:heartbeats"  # HASH "role|instance" -> JSON of its last beat
CANARY = "escalator:canary"  # HASH: the last canary fired (due_at, fired_at, lateness_s)
CANARY_ARMED = "escalator:canary:armed"  # ZSET canary id -> due time: canaries not fired yet
CANARY_SLOT = "escalator:canary:slot:"  # + period number: SET NX, one canary per period
CANARY_PINGED = "escalator:canary:pinged:"  # + period number: SET NX, one dead-man ping per period

# Celery task names (the queue follows the prefix: see `worker.broker.celery_app`)
FIRE = "escalation.fire"  # one deadline id (what earlier schedulers sent: still served)
FIRE_BATCH = "escalation.fire_batch"  # deadline ids claimed together: one transaction
DELIVER = "outbox.deliver"
DELIVER_BATCH = "outbox.deliver_batch"
