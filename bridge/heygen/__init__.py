"""Client for HeyGen's Streaming (Interactive Avatar) API, ``api.heygen.com/v1/streaming.*``."""
