"""The avatars the LiveAvatar fake knows (``AvatarSchema``, liveavatar-api.md §1.4)."""

from __future__ import annotations

from typing import Any

WAYNE = "dd73ea75-1218-4ef3-92ce-606d5f7fbc0a"  # the only sandbox avatar (D:sandbox-mode)


def _avatar(
    avatar_id: str, name: str, *, status: str = "ACTIVE", voice: str = "Sim voice"
) -> dict[str, Any]:
    return {
        "id": avatar_id,
        "space_id": None,
        "name": name,
        "preview_url": f"https://example.invalid/{avatar_id}.png",
        "type": "VIDEO",
        "status": status,
        "is_expired": False,
        "default_voice": {"id": "5f0f2c8e-0c6b-4a86-9a3e-5f6d7a1b2c3d", "name": voice},
        "is_1080p": False,
        "created_at": "2025-08-01T12:00:00Z",
        "updated_at": "2025-08-01T12:00:00Z",
        "error_message": None,
    }


PUBLIC_AVATARS: tuple[dict[str, Any], ...] = (
    _avatar(WAYNE, "Wayne"),
    _avatar("0930fd59-c8ad-434d-ad53-b391a1768720", "Ann Therapist"),
    _avatar("7b888024-f8c9-4205-95e1-78ce01497bda", "Shawn Therapist"),
)
USER_AVATARS: tuple[dict[str, Any], ...] = (
    _avatar("4f3c2b1a-9d8e-4c7b-a6f5-e4d3c2b1a098", "My presenter"),
    _avatar("a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d", "Still training", status="INIT"),
)
