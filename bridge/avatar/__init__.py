"""Avatar providers behind one interface: HeyGen Streaming API, LiveAvatar, and the local demo."""
