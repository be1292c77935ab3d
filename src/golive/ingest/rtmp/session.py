"""One RTMP publisher connection as a state machine (ingest, sans-IO).

`ServerSession.receive_data(bytes)` returns events (`PublishRequested`,
`MediaReceived`, `Unpublished`); `data_to_send()` returns what to write back.
The session answers the NetConnection/NetStream commands a publisher sends
(`connect`, `releaseStream`, `FCPublish`, `createStream`, `publish`,
`FCUnpublish`, `deleteStream`), acknowledges bytes when the peer asks for it,
answers pings, and turns audio, video, aggregate and `@setDataFrame` messages
into FLV-shaped `MediaTag`s. Deciding whether a stream key may publish is the
caller's job: it answers a `PublishRequested` with `accept_publish()` or
`reject_publish()`. Any protocol violation raises `RtmpError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from golive.formats import MediaTag, TagType, amf0
from golive.ingest.rtmp.chunk import ChunkError, ChunkReader, ChunkWriter, Message
from golive.ingest.rtmp.handshake import HandshakeError, ServerHandshake
from golive.ingest.rtmp.messages import (
    ACKNOWLEDGEMENT,
    AGGREGATE,
    AUDIO,
    COMMAND_AMF0,
    COMMAND_AMF3,
    CSID_COMMAND,
    CSID_CONTROL,
    CSID_STREAM,
    DATA_AMF0,
    DATA_AMF3,
    PEER_BANDWIDTH_DYNAMIC,
    PING_REQUEST,
    PING_RESPONSE,
    SET_PEER_BANDWIDTH,
    STREAM_BEGIN,
    USER_CONTROL,
    VIDEO,
    WINDOW_ACK_SIZE,
    AggregateError,
    split_aggregate,
    u32,
    user_control,
)

SERVER_CHUNK_SIZE = 4096
WINDOW_SIZE = 2_500_000
FMS_VERSION = "FMS/3,5,7,7009"  # what clients expect to see; the exact value is irrelevant
MAX_STREAMS = 8  # NetStreams one connection may create
COMMAND_MESSAGE_LIMIT = 64 * 1024  # largest message accepted before a publish is requested

# NetStream status codes a publisher shows to its user.
PUBLISH_START = "NetStream.Publish.Start"
PUBLISH_BAD_NAME = "NetStream.Publish.BadName"
PUBLISH_REJECTED = "NetStream.Publish.Rejected"
UNPUBLISH_SUCCESS = "NetStream.Unpublish.Success"


class RtmpError(Exception):
    """The peer broke the protocol; the connection must be closed."""


@dataclass(frozen=True, slots=True)
class PublishRequested:
    stream_key: str  # the publish name without any query string
    stream_name: str  # the publish name as sent
    app: str
    tc_url: str
    publish_type: str
    properties: dict[str, Any] = field(default_factory=dict)  # from `connect`


@dataclass(frozen=True, slots=True)
class MediaReceived:
    tag: MediaTag


@dataclass(frozen=True, slots=True)
class Unpublished:
    reason: str


Event = PublishRequested | MediaReceived | Unpublished


class SessionState(enum.Enum):
    HANDSHAKE = "handshake"
    OPEN = "open"  # handshake done, waiting for `connect`
    CONNECTED = "connected"
    PUBLISH_PENDING = "publish_pending"
    PUBLISHING = "publishing"
    CLOSED = "closed"


class ServerSession:
    def __init__(
        self,
        *,
        apps: tuple[str, ...] = ("live",),
        max_message_size: int = 16 * 1024 * 1024,
        max_command_size: int = COMMAND_MESSAGE_LIMIT,
        epoch_ms: int = 0,
    ) -> None:
        self.state = SessionState.HANDSHAKE
        self.apps = apps
        self._handshake = ServerHandshake(epoch_ms=epoch_ms)
        self._reader = ChunkReader(max_message_size=max_message_size)
        self._max_message_size = max_message_size
        # Until a publish is requested only commands are expected: connect, createStream,
        # publish and friends are a few hundred bytes, so an unauthenticated peer may not
        # make the server hold more than this.
        self._reader.set_limits(max_message_size=min(max_command_size, max_message_size),
                                max_pending=4 * min(max_command_size, max_message_size))
        self._writer = ChunkWriter()
        self._out = bytearray()
        self._peer_window = 0
        self._acked = 0
        self._next_stream_id = 1
        self._streams: set[int] = set()
        self.app = ""
        self.tc_url = ""
        self.properties: dict[str, Any] = {}
        self.publish_stream_id = 0
        self.publish_name = ""
        self.dropped_before_publish = 0

    # Public API ------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        if self.state is SessionState.CLOSED:
            return []
        try:
            if self.state is SessionState.HANDSHAKE:
                reply, data = self._handshake.receive_data(data)
                self._out += reply
                if not self._handshake.done:
                    return []
                self.state = SessionState.OPEN
                if not data:
                    return []
            messages = self._reader.feed(data)
            events: list[Event] = []
            for message in messages:
                self._handle(message, events)
                if self.state is SessionState.CLOSED:
                    break
            self._maybe_acknowledge()
            return events
        except (HandshakeError, ChunkError, amf0.AmfError, AggregateError) as exc:
            self.state = SessionState.CLOSED
            raise RtmpError(str(exc)) from exc

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    @property
    def closed(self) -> bool:
        return self.state is SessionState.CLOSED

    @property
    def bytes_received(self) -> int:
        return self._reader.bytes_received

    def accept_publish(self) -> None:
        if self.state is not SessionState.PUBLISH_PENDING:
            raise RuntimeError(f"no publish request pending (state {self.state.value})")
        sid = self.publish_stream_id
        self._control(USER_CONTROL, user_control(STREAM_BEGIN, sid))
        self._status(sid, "status", PUBLISH_START, f"{self.publish_name} is now published")
        self.state = SessionState.PUBLISHING

    def reject_publish(self, code: str, description: str) -> None:
        """Tell the publisher why (it shows `description`), then the connection closes."""
        sid = self.publish_stream_id or 1
        self._status(sid, "error", code, description)
        self.state = SessionState.CLOSED

    # Messages ----------------------------------------------------------------------------

    def _handle(self, message: Message, events: list[Event]) -> None:
        type_id = message.type_id
        if type_id in (AUDIO, VIDEO):
            if self.state is SessionState.PUBLISHING:
                if message.payload:
                    events.append(MediaReceived(MediaTag(TagType(type_id), message.timestamp,
                                                         message.payload)))
            else:
                self.dropped_before_publish += 1
        elif type_id == AGGREGATE:
            if self.state is SessionState.PUBLISHING:
                for tag in split_aggregate(message.payload, message.timestamp):
                    if tag.type is TagType.SCRIPT:
                        self._data(tag.body, tag.timestamp, events)
                    elif tag.body:
                        events.append(MediaReceived(tag))
        elif type_id == COMMAND_AMF0:
            self._command(message, amf0.decode_all(message.payload), events)
        elif type_id == COMMAND_AMF3:
            # An AMF3 command message is AMF0 after a leading format byte.
            self._command(message, amf0.decode_all(message.payload[1:]), events)
        elif type_id == DATA_AMF0:
            if self.state is SessionState.PUBLISHING:
                self._data(message.payload, message.timestamp, events)
        elif type_id == DATA_AMF3:
            if self.state is SessionState.PUBLISHING:
                self._data(message.payload[1:], message.timestamp, events)
        elif type_id == USER_CONTROL:
            self._user_control(message.payload)
        elif type_id == WINDOW_ACK_SIZE:
            if len(message.payload) < 4:
                raise RtmpError("Window Acknowledgement Size message shorter than 4 bytes")
            self._peer_window = int.from_bytes(message.payload[:4], "big")
        # Set Chunk Size and Abort were applied by the chunk reader; Acknowledgement,
        # Set Peer Bandwidth and shared objects need nothing from a publish-only server.
        elif type_id in (ACKNOWLEDGEMENT, SET_PEER_BANDWIDTH):
            pass

    def _data(self, payload: bytes, timestamp: int, events: list[Event]) -> None:
        values = amf0.decode_all(payload)
        if values and values[0] == "@setDataFrame":
            values = values[1:]
        # Only stream metadata travels on; cue points and text data have no consumer yet.
        if len(values) >= 2 and values[0] == "onMetaData":
            body = amf0.encode_all(values[:2])
            events.append(MediaReceived(MediaTag(TagType.SCRIPT, timestamp, body)))

    def _user_control(self, payload: bytes) -> None:
        if len(payload) < 2:
            raise RtmpError("User Control message shorter than 2 bytes")
        event = int.from_bytes(payload[:2], "big")
        if event == PING_REQUEST and len(payload) >= 6:
            self._control(USER_CONTROL, user_control(PING_RESPONSE,
                                                     int.from_bytes(payload[2:6], "big")))

    def _command(self, message: Message, values: list[Any], events: list[Event]) -> None:
        if not values or not isinstance(values[0], str):
            raise RtmpError("command message without a command name")
        name = values[0]
        txid = values[1] if len(values) > 1 and isinstance(values[1], float) else 0.0
        args = values[3:] if len(values) > 3 else []
        if name == "connect":
            self._connect(txid, values[2] if len(values) > 2 else None)
        elif self.state is SessionState.OPEN:
            raise RtmpError(f"command {name!r} before connect")
        elif name in ("releaseStream", "FCPublish", "getStreamLength"):
            self._result(txid, None, amf0.UNDEFINED)
        elif name == "createStream":
            if len(self._streams) >= MAX_STREAMS:
                raise RtmpError("too many streams created on one connection")
            sid = self._next_stream_id
            self._next_stream_id += 1
            self._streams.add(sid)
            self._result(txid, None, float(sid))
        elif name == "publish":
            self._publish(message.stream_id, args, events)
        elif name in ("FCUnpublish", "deleteStream", "closeStream"):
            if name == "deleteStream":
                sid = int(args[0]) if args and isinstance(args[0], float) else 0
                self._streams.discard(sid)
            if self.state in (SessionState.PUBLISHING, SessionState.PUBLISH_PENDING):
                if self.state is SessionState.PUBLISHING:
                    self._status(self.publish_stream_id, "status", UNPUBLISH_SUCCESS,
                                 f"{self.publish_name} is now unpublished")
                    events.append(Unpublished(name))
                self.state = SessionState.CONNECTED
        elif name in ("play", "play2"):
            self._status(message.stream_id or 1, "error", "NetStream.Play.Failed",
                         "this server takes publishers only; watch over HLS")
            self.state = SessionState.CLOSED
        elif txid:
            # Unknown calls with a transaction id get an error so clients do not wait.
            self._send_command(CSID_COMMAND, 0, "_error", txid, None, {
                "level": "error", "code": "NetConnection.Call.Failed",
                "description": f"method {name!r} not supported"})

    def _connect(self, txid: float, command_object: Any) -> None:
        if self.state is not SessionState.OPEN:
            raise RtmpError("connect sent twice")
        props = command_object if isinstance(command_object, dict) else {}
        app = props.get("app")
        tc_url = props.get("tcUrl")
        app = app if isinstance(app, str) else ""
        self.tc_url = tc_url if isinstance(tc_url, str) else ""
        app = app.split("?", 1)[0].strip("/")
        self.app = app
        self.properties = props
        if app not in self.apps:
            self._send_command(CSID_COMMAND, 0, "_error", txid, None, {
                "level": "error", "code": "NetConnection.Connect.Rejected",
                "description": f"unknown application {app!r}: publish to /"
                               f"{self.apps[0]}/STREAM_KEY"})
            self.state = SessionState.CLOSED
            return
        self._control(WINDOW_ACK_SIZE, u32(WINDOW_SIZE))
        self._control(SET_PEER_BANDWIDTH, u32(WINDOW_SIZE) + bytes((PEER_BANDWIDTH_DYNAMIC,)))
        self._out += self._writer.set_chunk_size_message(SERVER_CHUNK_SIZE)
        info: dict[str, Any] = {
            "level": "status",
            "code": "NetConnection.Connect.Success",
            "description": "Connection succeeded.",
            "objectEncoding": float(props.get("objectEncoding", 0.0) or 0.0),
        }
        server: dict[str, Any] = {"fmsVer": FMS_VERSION, "capabilities": 31.0, "mode": 1.0}
        # Enhanced RTMP: echo the codecs the client offered, which says we take them all
        # (golive passes video through to ffmpeg rather than decoding it itself).
        four_cc = props.get("fourCcList")
        if isinstance(four_cc, list):
            server["fourCcList"] = [c for c in four_cc if isinstance(c, str)]
        self._result(txid, server, info)
        self.state = SessionState.CONNECTED

    def _publish(self, stream_id: int, args: list[Any], events: list[Event]) -> None:
        if self.state is not SessionState.CONNECTED:
            raise RtmpError(f"publish in state {self.state.value}")
        raw_name = args[0] if args and isinstance(args[0], str) else ""
        publish_type = args[1] if len(args) > 1 and isinstance(args[1], str) else "live"
        key = unquote(raw_name.split("?", 1)[0]).strip()
        self.publish_stream_id = stream_id or 1
        self.publish_name = raw_name
        self.state = SessionState.PUBLISH_PENDING
        if not key:
            self.reject_publish(PUBLISH_BAD_NAME, "no stream key: publish to /live/STREAM_KEY")
            return
        # Media may follow the publish command without waiting for the answer; reading
        # pauses while the key is checked, so only what already arrived is parsed.
        self._reader.set_limits(max_message_size=self._max_message_size,
                                max_pending=2 * self._max_message_size)
        events.append(PublishRequested(key, raw_name, self.app, self.tc_url, publish_type,
                                       self.properties))

    # Output --------------------------------------------------------------------------------

    def _control(self, type_id: int, payload: bytes) -> None:
        self._out += self._writer.write(CSID_CONTROL, type_id, 0, 0, payload)

    def _send_command(self, csid: int, stream_id: int, *values: Any) -> None:
        self._out += self._writer.write(csid, COMMAND_AMF0, stream_id, 0, amf0.encode_all(values))

    def _result(self, txid: float, properties: Any, info: Any) -> None:
        self._send_command(CSID_COMMAND, 0, "_result", txid, properties, info)

    def _status(self, stream_id: int, level: str, code: str, description: str) -> None:
        self._send_command(CSID_STREAM, stream_id, "onStatus", 0.0, None,
                           {"level": level, "code": code, "description": description})

    def _maybe_acknowledge(self) -> None:
        if self._peer_window <= 0:
            return
        received = self._reader.bytes_received
        if received - self._acked >= self._peer_window:
            self._acked = received
            self._control(ACKNOWLEDGEMENT, u32(received))
