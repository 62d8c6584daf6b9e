"""The base of every contract that is ours: frozen, and unknown fields are an error."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A frozen model that forbids unknown fields (a typo in a policy file is an error)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
