"""Stream answers as the tests' Redis clients return them.

The tests' clients decode responses (`decode_responses=True`, as production's connection does)
and speak RESP2, which redis-py's annotations cannot tell: they type an XRANGE or XREADGROUP
answer as a union over bytes, str, None and RESP3's dict shape. These casts say what the tests'
clients return, once, instead of at every call.
"""

from __future__ import annotations

from typing import Any, cast

Fields = dict[str, str]


def entries(answer: object) -> list[tuple[str, Fields]]:
    """XRANGE's answer: (entry id, fields), oldest first."""
    return cast(list[tuple[str, Fields]], answer)


def group_read(answer: object) -> list[tuple[str, list[Any]]]:
    """XREADGROUP's answer: each stream's name with the entries read from it."""
    return cast(list[tuple[str, list[Any]]], answer)
