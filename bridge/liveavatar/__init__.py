"""Client for LiveAvatar (``api.liveavatar.com``), HeyGen's successor to the Streaming API."""
