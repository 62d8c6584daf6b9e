"""Message text from Jinja2 templates: per kind and per channel, a title and a body.

Lookup for a message of kind K to channel C, first found wins, separately for title and body:
the policy file's `templates` under `K.C`, `K`, `default`; then the templates directory
(`K.C.title.j2`, `K.title.j2`, `default.title.j2`, same for `body`); then the packaged defaults.
A digest uses the kind `digest`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from schemas.messages import Notification
from schemas.outbound import Template
from worker.domain import wording
from worker.errors import PolicyError

_TITLE = "[{{ severity }}] {{ issue.key }} {{ headline }}"
DEFAULTS: dict[str, tuple[str, str]] = {
    "assigned": (_TITLE, "{{ issue.title }}\n\n{% include 'who' %}{% include 'links' %}"),
    "escalated": (
        _TITLE,
        "{{ issue.title }}\n{{ reason }}\n\n{% include 'who' %}{% include 'links' %}",
    ),
    "reminder": (
        _TITLE,
        "{{ issue.title }}\n{{ reason }}\n\n{% include 'who' %}{% include 'links' %}",
    ),
    "warning": (
        _TITLE,
        "{{ issue.title }}\n{{ reason }}\n\n{% include 'who' %}{% include 'links' %}",
    ),
    "breach": (
        _TITLE,
        "{{ issue.title }}\n{{ reason }}\n\n{% include 'who' %}{% include 'links' %}",
    ),
    "resolved": (_TITLE, "{{ issue.title }}\n\n{% include 'links' %}"),
    "digest": (
        "{{ items | length }} {{ words.notifications }}",
        "{% for m in items %}- [{{ m.issue.severity }}] {{ m.issue.key }} {{ m.kind }} "
        "({{ m.tier }}): {{ m.issue.title }}\n{% endfor %}",
    ),
}
# The labels are `words` (worker.domain.wording.TEMPLATE_WORDS), so that every text a person
# reads is chosen in one place; templates lay them out.
_PARTIALS = {
    "who": "{{ words.tier }}: {{ tier }} ({{ words.tier_number }} {{ tier_number }})\n"
    "{{ words.on_call }}: {{ assignee or words.nobody }}"
    "{% if people | length > 1 %} ({{ words.roster }}: {{ people | join(', ') }}){% endif %}\n"
    "{% if time_left %}{{ words.time_left }}: {{ time_left }}\n{% endif %}"
    "{% if time_over %}{{ words.over_by }}: {{ time_over }}\n{% endif %}",
    "links": "{% if ticket_url %}{{ words.ticket }}: {{ ticket_url }}\n{% endif %}"
    "{% if escalator_url %}{{ words.escalator }}: {{ escalator_url }}\n{% endif %}"
    "{{ words.ref }}: {{ message.id }}\n",
}


class Renderer:
    """Renders a message's title and body for a channel; templates compile once."""

    def __init__(
        self,
        overrides: dict[str, Template] | None = None,
        directory: Path | None = None,
        public_url: str | None = None,
    ) -> None:
        self.overrides = overrides or {}
        self.directory = directory
        self.public_url = public_url.rstrip("/") if public_url else None
        self.env = SandboxedEnvironment(
            undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False
        )
        self._cache: dict[str, Any] = {}

    def _source(self, kind: str, channel: str, part: str) -> str:
        for key in (f"{kind}.{channel}", kind, "default"):
            override = self.overrides.get(key)
            text = getattr(override, part) if override else None
            if text is not None:
                return str(text)
        if self.directory is not None:
            for key in (f"{kind}.{channel}", kind, "default"):
                path = self.directory / f"{key}.{part}.j2"
                if path.is_file():
                    return path.read_text(encoding="utf-8")
        title, body = DEFAULTS.get(kind, DEFAULTS["assigned"])
        return title if part == "title" else body

    def _compile(self, source: str) -> Any:
        template = self._cache.get(source)
        if template is None:
            expanded = source
            for name, partial in _PARTIALS.items():
                expanded = expanded.replace("{% include '" + name + "' %}", partial)
            try:
                template = self.env.from_string(expanded)
            except TemplateError as exc:
                raise PolicyError(f"bad message template: {exc}") from exc
            self._cache[source] = template
        return template

    def context(self, message: Notification) -> dict[str, Any]:
        """What a template sees."""
        left = over = None
        if message.due_at is not None:
            delta = message.due_at - message.occurred_at
            said = wording.duration(delta)
            left, over = (said, None) if delta >= timedelta(0) else (None, said)
        escalator_url = (  # the console's issue page; `#` and the like URL-encoded
            f"{self.public_url}/issues/{quote(message.issue.key, safe=':/@')}"
            if self.public_url
            else None
        )
        return {
            "message": message,
            "kind": message.kind.value,
            "issue": message.issue,
            "severity": message.issue.severity,
            "tier": message.tier,
            "tier_number": message.tier_number,
            "assignee": message.assignee,
            "people": message.people,
            "reason": message.reason,
            "text": message.text,
            "due_at": message.due_at,
            "target": message.target,
            "time_left": left,
            "time_over": over,
            "ticket_url": message.issue.url,
            "escalator_url": escalator_url,
            "occurred_at": message.occurred_at,
            "headline": wording.headline(message.kind, message.tier, message.target),
            "words": wording.TEMPLATE_WORDS,
            "items": message.items,
        }

    def render(self, message: Notification, channel: str) -> tuple[str, str]:
        """(title, body) of `message` for `channel`."""
        kind = "digest" if message.items else message.kind.value
        context = self.context(message)
        try:
            title = self._compile(self._source(kind, channel, "title")).render(context)
            body = self._compile(self._source(kind, channel, "body")).render(context)
        except TemplateError as exc:
            raise PolicyError(f"message template for {kind}.{channel} failed: {exc}") from exc
        return " ".join(title.split()), body.strip() + "\n"
