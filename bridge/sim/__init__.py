"""Faithful fakes of every remote edge the bridge talks to (HeyGen, LiveAvatar).

They follow reference/heygen-api.md and reference/liveavatar-api.md: envelopes, auth, state
machines, limits and error codes; fault injection and a ledger let tests prove behaviour.
Run them with ``heygen-bridge simulate``.
"""

# The API keys the fakes accept unless told otherwise.
DEFAULT_HEYGEN_KEY = "sim-heygen-key"
DEFAULT_LIVEAVATAR_KEY = "sim-liveavatar-key"
