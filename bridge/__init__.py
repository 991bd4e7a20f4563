"""heygen-bridge: an interactive AI avatar as a local virtual webcam and microphone."""

__version__ = "0.1.0"
