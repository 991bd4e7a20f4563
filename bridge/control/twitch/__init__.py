"""Twitch chat drives the avatar: chat commands and channel-point rewards become speech.

::

    Twitch ──► transport (EventSub WebSocket + Helix | anonymous IRC over WebSocket)
                  │ ChatMessage (one shape, whatever the transport)
                  ▼
               ChatGate (rules: permissions, cooldowns, limits, filters, moderator commands)
                  │ accepted: SpeechQueue.submit(source="twitch:#channel:user")
                  └─ refused/queued: a reply through Helix (EventSub only, when enabled)

Modules: :mod:`.chat` (the message), :mod:`.irc` and :mod:`.eventsub` (parsing, no I/O),
:mod:`.rules` and :mod:`.gate` (what is said), :mod:`.helix` (the REST API),
:mod:`.irc_client` and :mod:`.eventsub_client` (connections, reconnection),
:mod:`.replies` (answers within Twitch's rate), :mod:`.stats` (counters for status),
:mod:`.service` (one connector for the daemon).
"""
