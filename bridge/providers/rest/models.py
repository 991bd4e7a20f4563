"""The two kinds of model every provider's ``models`` module declares.

A :class:`Request` is strict: we build it, so an unknown or misspelt field is our bug and
fails at once.  An :class:`Answer` ignores fields it does not declare: the real services add
fields over time, and an answer must not fail for a field the bridge does not use.  Both are
frozen.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Request(BaseModel):
    """A body we send: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Answer(BaseModel):
    """A body we read: fields it does not declare are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)
