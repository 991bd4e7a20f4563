"""Faithful fakes of every remote edge the bridge talks to (HeyGen, LiveAvatar).

They follow reference/heygen-api.md and reference/liveavatar-api.md: envelopes, auth, state
machines, limits and error codes; fault injection and a ledger (every request, with its body)
let tests prove behaviour.  Run them with ``heygen-bridge simulate``.

``server`` puts both fakes on one port; ``service`` is the skeleton they share (sessions,
clock, expiry, the avatar's join and exit); ``heygen/`` and ``liveavatar/`` are the two
services; ``clock`` is wall or test-driven time; ``ledger`` and ``faults`` record and break
requests; ``media`` is the seam to the avatar, ``avatar`` the one in a real LiveKit room,
``listening`` its ears (it answers what other participants say), ``livekit_server`` the local
LiveKit server.
"""

# The API keys the fakes accept unless told otherwise.
DEFAULT_HEYGEN_KEY = "sim-heygen-key"
DEFAULT_LIVEAVATAR_KEY = "sim-liveavatar-key"
