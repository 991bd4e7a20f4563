"""A faithful fake of HeyGen's Streaming API (reference/heygen-api.md §1–2, §7).

``wire``: codes, envelopes, avatars and data-channel events; ``bodies``: reading requests
(JSON null means "not given"); ``rest``: the endpoints, credentials and session state machine.
"""

from bridge.sim.heygen.rest import HeyGenLimits, HeyGenSession, HeyGenSim

__all__ = ["HeyGenLimits", "HeyGenSession", "HeyGenSim"]
