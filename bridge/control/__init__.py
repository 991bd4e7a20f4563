"""How people and programs drive the bridge: the speech queue and the HTTP/WebSocket API."""
