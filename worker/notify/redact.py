"""Secrets in channel URLs: `{secret:NAME}` placeholders, and keeping their values out of logs."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from pydantic import SecretStr

from worker.errors import PolicyError

PLACEHOLDER = re.compile(r"\{secret:([A-Za-z0-9][A-Za-z0-9_.-]*)\}")
MASK = "***"


def resolve(url: str, secrets: Mapping[str, SecretStr], where: str) -> tuple[str, list[str]]:
    """`url` with every `{secret:NAME}` replaced; also the secret values it used."""
    used: list[str] = []

    def swap(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in secrets:
            raise PolicyError(f"{where} needs secret {name!r}: set it in ESCALATOR_SECRETS")
        value = secrets[name].get_secret_value()
        used.append(value)
        return value

    return PLACEHOLDER.sub(swap, url), used


_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
_PATH = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<host>[^/\s?]*)[^\s]*", re.IGNORECASE)


def _mask(match: re.Match[str]) -> str:
    scheme = match.group("scheme")
    if scheme.lower() in ("http://", "https://"):  # the host of a web URL is not a secret
        return f"{scheme}{match.group('host')}/{MASK}"
    return f"{scheme}{MASK}"  # apprise URLs carry tokens even in the host part (tgram://TOKEN)


def mask_url(url: str) -> str:
    """A URL safe to log: no userinfo, path or query; only a web URL keeps its host."""
    return _PATH.sub(_mask, _USERINFO.sub(r"\g<scheme>", url))


def redact(text: str, values: Iterable[str]) -> str:
    """`text` with every secret value (and every URL) masked."""
    for value in sorted(set(values), key=len, reverse=True):
        if value:
            text = text.replace(value, MASK)
    return mask_url(text)
