"""AMF0 encoding and decoding: the value format of RTMP commands and onMetaData (ingest).

Decoding is for hostile input: every failure is an `AmfError`, nesting depth and
collection sizes are bounded, and nothing is allocated from a length field before
the bytes are known to be there. Objects and ECMA arrays decode to `dict`, strict
arrays to `list`, null to `None` and undefined to the `UNDEFINED` sentinel so the
two survive a round trip.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

NUMBER = 0x00
BOOLEAN = 0x01
STRING = 0x02
OBJECT = 0x03
MOVIECLIP = 0x04
NULL = 0x05
UNDEFINED_MARKER = 0x06
REFERENCE = 0x07
ECMA_ARRAY = 0x08
OBJECT_END = 0x09
STRICT_ARRAY = 0x0A
DATE = 0x0B
LONG_STRING = 0x0C
UNSUPPORTED = 0x0D
XML_DOCUMENT = 0x0F
TYPED_OBJECT = 0x10
AVMPLUS = 0x11  # switch to AMF3: not used by publishers we accept

MAX_DEPTH = 32
MAX_ITEMS = 65_536


class AmfError(ValueError):
    """Malformed or unsupported AMF0 data."""


class _Undefined:
    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED = _Undefined()


@dataclass(frozen=True)
class EcmaArray:
    """An associative array; decoded as this type so it re-encodes with the same marker."""

    items: dict[str, Any]


@dataclass(frozen=True)
class AmfDate:
    milliseconds: float
    timezone: int = 0


class _Reader:
    __slots__ = ("data", "objects", "pos")

    def __init__(self, data: bytes | memoryview) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.objects: list[Any] = []

    def take(self, n: int) -> memoryview:
        end = self.pos + n
        if end > len(self.data):
            raise AmfError(f"truncated AMF0 data: need {n} bytes at offset {self.pos}")
        view = self.data[self.pos : end]
        self.pos = end
        return view

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def utf8(self, n: int) -> str:
        raw = bytes(self.take(n))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            # Some encoders write Latin-1 into metadata; keep the text rather than fail.
            return raw.decode("latin-1")


def decode(data: bytes | memoryview) -> Any:
    """Decode exactly one value; trailing bytes are an error."""
    reader = _Reader(data)
    value = _value(reader, 0)
    if reader.pos != len(reader.data):
        raise AmfError(f"{len(reader.data) - reader.pos} trailing bytes after AMF0 value")
    return value


def decode_all(data: bytes | memoryview) -> list[Any]:
    """Decode a sequence of values, as in a command message body."""
    reader = _Reader(data)
    values: list[Any] = []
    while reader.pos < len(reader.data):
        if len(values) >= MAX_ITEMS:
            raise AmfError("too many AMF0 values")
        values.append(_value(reader, 0))
    return values


def _value(r: _Reader, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise AmfError("AMF0 nesting too deep")
    marker = r.u8()
    if marker == NUMBER:
        return struct.unpack(">d", r.take(8))[0]
    if marker == BOOLEAN:
        return r.u8() != 0
    if marker == STRING:
        return r.utf8(r.u16())
    if marker == LONG_STRING or marker == XML_DOCUMENT:
        return r.utf8(r.u32())
    if marker == NULL:
        return None
    if marker == UNDEFINED_MARKER or marker == UNSUPPORTED:
        return UNDEFINED
    if marker == OBJECT:
        obj: dict[str, Any] = {}
        r.objects.append(obj)
        _properties(r, obj, depth)
        return obj
    if marker == TYPED_OBJECT:
        r.utf8(r.u16())  # class name: irrelevant to a media server
        typed: dict[str, Any] = {}
        r.objects.append(typed)
        _properties(r, typed, depth)
        return typed
    if marker == ECMA_ARRAY:
        r.u32()  # advisory count; many encoders get it wrong, the end marker is what counts
        items: dict[str, Any] = {}
        array = EcmaArray(items)
        r.objects.append(array)
        _properties(r, items, depth)
        return array
    if marker == STRICT_ARRAY:
        count = r.u32()
        if count > MAX_ITEMS or count > len(r.data) - r.pos:
            raise AmfError(f"strict array of {count} items does not fit the message")
        values: list[Any] = []
        r.objects.append(values)
        for _ in range(count):
            values.append(_value(r, depth + 1))
        return values
    if marker == DATE:
        ms = struct.unpack(">d", r.take(8))[0]
        tz = struct.unpack(">h", r.take(2))[0]
        return AmfDate(ms, tz)
    if marker == REFERENCE:
        index = r.u16()
        if index >= len(r.objects):
            raise AmfError(f"AMF0 reference {index} to an object not seen")
        return r.objects[index]
    if marker == OBJECT_END:
        raise AmfError("unexpected AMF0 object-end marker")
    raise AmfError(f"unsupported AMF0 type marker 0x{marker:02x}")


def _properties(r: _Reader, target: dict[str, Any], depth: int) -> None:
    while True:
        key = r.utf8(r.u16())
        if key == "":
            if r.u8() != OBJECT_END:
                raise AmfError("empty AMF0 property name without the object-end marker")
            return
        if len(target) >= MAX_ITEMS:
            raise AmfError("AMF0 object has too many properties")
        target[key] = _value(r, depth + 1)


def encode(value: Any) -> bytes:
    out = bytearray()
    _encode(out, value, 0)
    return bytes(out)


def encode_all(values: Iterable[Any]) -> bytes:
    out = bytearray()
    for value in values:
        _encode(out, value, 0)
    return bytes(out)


def _encode_key(out: bytearray, key: str) -> None:
    raw = key.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise AmfError("AMF0 property name longer than 65535 bytes")
    out += len(raw).to_bytes(2, "big") + raw


def _encode(out: bytearray, value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise AmfError("AMF0 nesting too deep")
    if value is None:
        out.append(NULL)
    elif value is UNDEFINED:
        out.append(UNDEFINED_MARKER)
    elif isinstance(value, bool):
        out += bytes((BOOLEAN, 1 if value else 0))
    elif isinstance(value, int | float):
        out.append(NUMBER)
        out += struct.pack(">d", float(value))
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        if len(raw) <= 0xFFFF:
            out.append(STRING)
            out += len(raw).to_bytes(2, "big")
        else:
            out.append(LONG_STRING)
            out += len(raw).to_bytes(4, "big")
        out += raw
    elif isinstance(value, EcmaArray):
        out.append(ECMA_ARRAY)
        out += len(value.items).to_bytes(4, "big")
        _encode_properties(out, value.items, depth)
    elif isinstance(value, dict):
        out.append(OBJECT)
        _encode_properties(out, value, depth)
    elif isinstance(value, list | tuple):
        out.append(STRICT_ARRAY)
        out += len(value).to_bytes(4, "big")
        for item in value:
            _encode(out, item, depth + 1)
    elif isinstance(value, AmfDate):
        out.append(DATE)
        out += struct.pack(">dh", value.milliseconds, value.timezone)
    else:
        raise AmfError(f"cannot encode {type(value).__name__} as AMF0")


def _encode_properties(out: bytearray, items: dict[str, Any], depth: int) -> None:
    for key, item in items.items():
        if not isinstance(key, str) or key == "":
            raise AmfError("AMF0 property names must be non-empty strings")
        _encode_key(out, key)
        _encode(out, item, depth + 1)
    out += b"\x00\x00" + bytes((OBJECT_END,))
