"""Task counting for `bench/overload.py`, inside the role processes, without product code.

Python imports `sitecustomize` at start-up from the first folder on `sys.path` that has one;
`overload.py` puts this folder first on the roles' PYTHONPATH. Nothing happens unless
`ESCALATOR_BENCH_COUNT` holds a Redis URL. Then every Celery task published
(`after_task_publish`, in whichever process sends it: scheduler, ingest, worker) and every task
started (`task_prerun`, in the pool process) is counted in Redis hashes:

    bench:count:published            task name -> tasks published
    bench:count:executed             task name -> tasks started
    bench:count:published:fire       deadline id -> times handed to an `escalation.*` task
    bench:count:executed:fire        deadline id -> times an `escalation.*` task started with it
    bench:count:published:deliver    message id -> times handed to an `outbox.*` task
    bench:count:executed:deliver     message id -> times an `outbox.*` task started with it
    bench:count:where                pid -> the `worker` package that process runs

Ids come from the task's args and kwargs (a value, or a list of values): integers for
escalation tasks, strings for outbox tasks. Counting never breaks a role: errors are counted
in `bench:count:errors` and otherwise ignored.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

PREFIX = "bench:count:"
_client: Any = None
_client_pid = 0


def _redis() -> Any:
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():  # a prefork child: its own connection
        from redis import Redis

        _client = Redis.from_url(os.environ["ESCALATOR_BENCH_COUNT"])
        _client_pid = os.getpid()
    return _client


def _ids(kind: type, args: Any, kwargs: Any) -> list[Any]:
    values = [*(args or ()), *((kwargs or {}).values())]
    found: list[Any] = []
    for value in values:
        items = value if isinstance(value, list | tuple) else [value]
        found.extend(v for v in items if isinstance(v, kind) and not isinstance(v, bool))
    return found


def _count(stage: str, name: str, args: Any, kwargs: Any) -> None:
    try:
        pipe = _redis().pipeline(transaction=False)
        pipe.hincrby(f"{PREFIX}{stage}", name, 1)
        if name.startswith("escalation."):
            for deadline_id in _ids(int, args, kwargs):
                pipe.hincrby(f"{PREFIX}{stage}:fire", str(deadline_id), 1)
        elif name.startswith("outbox."):
            for message_id in _ids(str, args, kwargs):
                pipe.hincrby(f"{PREFIX}{stage}:deliver", message_id, 1)
        package = sys.modules.get("worker")
        pipe.hsetnx(f"{PREFIX}where", str(os.getpid()), getattr(package, "__file__", "?"))
        pipe.execute()
    except Exception:
        with contextlib.suppress(Exception):
            _redis().incr(f"{PREFIX}errors")


def _published(sender: Any = None, body: Any = None, headers: Any = None, **_: Any) -> None:
    name = str((headers or {}).get("task") or sender or "?")
    if isinstance(body, dict):  # task protocol 1
        args, kwargs = body.get("args"), body.get("kwargs")
    elif isinstance(body, list | tuple) and len(body) >= 2:  # protocol 2: (args, kwargs, embed)
        args, kwargs = body[0], body[1]
    else:
        args, kwargs = (), {}
    _count("published", name, args, kwargs)


def _started(
    sender: Any = None, task: Any = None, args: Any = None, kwargs: Any = None, **_: Any
) -> None:
    name = str(getattr(task or sender, "name", None) or "?")
    _count("executed", name, args, kwargs)


def _install() -> None:
    if not os.environ.get("ESCALATOR_BENCH_COUNT"):
        return
    try:
        from celery.signals import after_task_publish, task_prerun
    except Exception:
        return
    after_task_publish.connect(_published, weak=False)
    task_prerun.connect(_started, weak=False)


_install()
