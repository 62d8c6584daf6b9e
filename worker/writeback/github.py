"""GitHub: add the tier's assignees, set a `tier:N` label (dropping the previous one), comment.

An issue id is `owner/repo#42`, or `42` with ESCALATOR_GITHUB_REPO naming the repository.
"""

from __future__ import annotations

import contextlib
from urllib.parse import quote

from config.settings import Settings
from schemas.messages import Notification
from worker.errors import PermanentError
from worker.writeback.base import HttpAdapter, comment_text, need


class GithubWriteback(HttpAdapter):
    name = "github"

    def configure(self, settings: Settings) -> GithubWriteback:
        self.base = settings.github_api_url.rstrip("/")
        self.token = settings.github_token.get_secret_value() if settings.github_token else None
        self.repo = settings.github_repo
        return self

    def _issue_url(self, issue_id: str) -> str:
        repo, sep, number = issue_id.rpartition("#")
        repo = repo if sep else need(self.repo, "ESCALATOR_GITHUB_REPO (or ids like owner/repo#42)")
        if not number.isdigit() or repo.count("/") != 1:
            raise PermanentError(f"github: cannot read {issue_id!r} as owner/repo#number")
        return f"{self.base}/repos/{repo}/issues/{number}"

    def send(self, message: Notification) -> None:
        headers = {
            "authorization": f"Bearer {need(self.token, 'ESCALATOR_GITHUB_TOKEN')}",
            "accept": "application/vnd.github+json",
            "x-github-api-version": "2022-11-28",
        }
        url = self._issue_url(message.issue.id)
        tier = self.policies.tier(message.tier)
        logins = list(tier.writeback.github_assignees) if tier else []
        if not logins and message.assignee:
            logins = [str(self.person(message.assignee, "github"))]
        if logins:
            self.call("POST", f"{url}/assignees", headers, {"assignees": logins}, message.id)
        if message.tier_number > 1:
            previous = quote(f"tier:{message.tier_number - 1}", safe="")
            with contextlib.suppress(PermanentError):  # 404: it was not set
                self.call("DELETE", f"{url}/labels/{previous}", headers, None, message.id)
        self.call(
            "POST",
            f"{url}/labels",
            headers,
            {"labels": [f"tier:{message.tier_number}"]},
            message.id,
        )
        self.call("POST", f"{url}/comments", headers, {"body": comment_text(message)}, message.id)
