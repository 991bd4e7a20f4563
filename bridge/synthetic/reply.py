"""The stand-in for a provider's LLM in the demo avatar and simulators: short, predictable."""

from __future__ import annotations


def chat_reply(text: str) -> str:
    return f"You said: {' '.join(text.split())[:300]}. That is a fine thing to say."
