"""Where the avatar's media comes from: a LiveKit room, or the in-process demo performer."""
