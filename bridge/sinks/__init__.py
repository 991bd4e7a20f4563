"""Where media leaves the bridge: the virtual webcam, the virtual microphone."""
