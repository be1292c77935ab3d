"""The chat wire format: client frames parsed into small commands, server frames built as dicts.

Client to server: join, send, and for moderators delete, timeout, ban, clear. Server
to client: message, deleted, cleared, viewers, system, identity, error. The server
may batch several server frames into one WebSocket text frame as a JSON array.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from golive.store import ChatMessageRecord

MAX_TIMEOUT_SECONDS = 7 * 24 * 3600


class FrameError(ValueError):
    """A client frame that cannot be understood; the message is sent back as the reason."""


@dataclass(frozen=True, slots=True)
class Join:
    name: object


@dataclass(frozen=True, slots=True)
class Send:
    text: str


@dataclass(frozen=True, slots=True)
class Delete:
    id: int


@dataclass(frozen=True, slots=True)
class Timeout:
    user_id: str
    seconds: int
    by_ip: bool


@dataclass(frozen=True, slots=True)
class Ban:
    user_id: str
    by_ip: bool


@dataclass(frozen=True, slots=True)
class Clear:
    pass


Command = Join | Send | Delete | Timeout | Ban | Clear


def _user_id(frame: dict[str, Any]) -> str:
    user_id = frame.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        raise FrameError("user_id must be a non-empty string")
    return user_id


def _by_ip(frame: dict[str, Any]) -> bool:
    value = frame.get("ip", False)
    if not isinstance(value, bool):
        raise FrameError("ip must be true or false")
    return value


def parse_frame(text: str, max_bytes: int) -> Command:
    """One client text frame as a command; raises FrameError with a reason to show."""
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise FrameError(f"frame is larger than {max_bytes} bytes")
    try:
        frame = json.loads(text)
    except ValueError:
        raise FrameError("frame is not valid JSON") from None
    if not isinstance(frame, dict):
        raise FrameError("frame must be a JSON object with a type")
    kind = frame.get("type")
    if kind == "send":
        message = frame.get("text")
        if not isinstance(message, str):
            raise FrameError("text must be a string")
        return Send(message)
    if kind == "join":
        return Join(frame.get("name"))
    if kind == "delete":
        ident = frame.get("id")
        if isinstance(ident, str) and ident.isdigit():
            ident = int(ident)
        if isinstance(ident, bool) or not isinstance(ident, int):
            raise FrameError("id must be a message id")
        return Delete(ident)
    if kind == "timeout":
        seconds = frame.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) \
                or not 1 <= seconds <= MAX_TIMEOUT_SECONDS:
            raise FrameError(f"seconds must be a number from 1 to {MAX_TIMEOUT_SECONDS}")
        return Timeout(_user_id(frame), int(seconds), _by_ip(frame))
    if kind == "ban":
        return Ban(_user_id(frame), _by_ip(frame))
    if kind == "clear":
        return Clear()
    raise FrameError(f"unknown frame type {kind!r}" if isinstance(kind, str)
                     else "frame must have a string type")


# Server frames -------------------------------------------------------------------------


def message_frame(record: ChatMessageRecord) -> dict[str, Any]:
    return {
        "type": "message",
        "id": record.id,
        "user": {"id": record.user_id, "name": record.user_name, "role": record.role},
        "text": record.text,
        "sent_at": record.sent_at.isoformat().replace("+00:00", "Z"),
    }


def error_frame(reason: str, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "reason": reason, **extra}


def system_frame(text: str) -> dict[str, Any]:
    return {"type": "system", "text": text}


def viewers_frame(count: int) -> dict[str, Any]:
    return {"type": "viewers", "count": count}


def encode(frames: list[dict[str, Any]]) -> str:
    """One WebSocket text frame: a single object, or an array when there are several."""
    value: Any = frames[0] if len(frames) == 1 else frames
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
