"""The publisher conversation, driven byte by byte against the sans-IO session."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.ingest.rtmp.rtmpclient import C0C1, ClientCodec, status_codes

from golive.formats import amf0
from golive.formats.tag import TagType
from golive.ingest.rtmp.chunk import encode_chunk
from golive.ingest.rtmp.session import (
    MediaReceived,
    PublishRequested,
    RtmpError,
    ServerSession,
    SessionState,
    Unpublished,
)


def handshaken() -> tuple[ServerSession, ClientCodec]:
    session = ServerSession()
    assert session.receive_data(C0C1) == []
    reply = session.data_to_send()
    assert len(reply) == 1 + 2 * 1536 and reply[0] == 3
    assert reply[1 + 1536 + 8 :] == C0C1[9:]  # S2 echoes C1's random bytes
    assert session.receive_data(reply[1:1537]) == []  # C2
    assert session.state is SessionState.OPEN
    return session, ClientCodec()


def publish(session: ServerSession, client: ClientCodec, key: str = "sk_test") -> PublishRequested:
    events = []
    for chunk in client.publish_sequence(key):
        events += session.receive_data(chunk)
    (request,) = events
    assert isinstance(request, PublishRequested)
    return request


def test_publish_flow_like_ffmpeg() -> None:
    session, client = handshaken()
    request = publish(session, client, "sk_abc?token=1")
    assert (request.stream_key, request.app, request.publish_type) == ("sk_abc", "live", "live")
    replies = client.parse(session.data_to_send())
    results = [v for _m, v in replies if v and v[0] == "_result"]
    assert results[0][3]["code"] == "NetConnection.Connect.Success"
    assert results[-1][3] == 1.0  # createStream's stream id
    session.accept_publish()
    assert status_codes(client.parse(session.data_to_send())) == ["NetStream.Publish.Start"]

    meta = amf0.encode_all(["@setDataFrame", "onMetaData", amf0.EcmaArray({"width": 640.0})])
    events = session.receive_data(
        client.writer.write(4, 18, 1, 0, meta)
        + client.media(9, 0, b"\x17\x00\x00\x00\x00config")
        + client.media(8, 23, b"\xaf\x01frame")
    )
    tags = [e.tag for e in events if isinstance(e, MediaReceived)]
    assert [t.type for t in tags] == [TagType.SCRIPT, TagType.VIDEO, TagType.AUDIO]
    assert amf0.decode_all(tags[0].body) == ["onMetaData", amf0.EcmaArray({"width": 640.0})]
    assert tags[2].timestamp == 23

    events = session.receive_data(client.command("FCUnpublish", None, "sk_abc")
                                  + client.command("deleteStream", None, 1.0))
    assert events == [Unpublished("FCUnpublish")]


def test_rejected_publish_gets_the_error_status_and_closes() -> None:
    session, client = handshaken()
    publish(session, client)
    session.data_to_send()
    session.reject_publish("NetStream.Publish.BadName", "unknown stream key")
    assert status_codes(client.parse(session.data_to_send())) == ["NetStream.Publish.BadName"]
    assert session.closed
    assert session.receive_data(client.media(9, 0, b"\x17")) == []


def test_media_before_publish_is_dropped_not_delivered() -> None:
    session, client = handshaken()
    session.receive_data(client.command("connect", {"app": "live"}))
    assert session.receive_data(client.media(9, 0, b"\x17\x01")) == []
    assert session.dropped_before_publish == 1


def test_unknown_app_is_rejected_at_connect() -> None:
    session, client = handshaken()
    session.receive_data(client.command("connect", {"app": "other"}))
    assert status_codes(client.parse(session.data_to_send())) == ["NetConnection.Connect.Rejected"]
    assert session.closed


def test_enhanced_rtmp_fourcc_list_is_echoed() -> None:
    session, client = handshaken()
    session.receive_data(client.command("connect", {"app": "live",
                                                    "fourCcList": ["hvc1", "av01"]}))
    (_m, values), = [r for r in client.parse(session.data_to_send()) if r[1]]
    assert values[2]["fourCcList"] == ["hvc1", "av01"]


def test_ping_and_acknowledgement() -> None:
    session, client = handshaken()
    session.receive_data(client.command("connect", {"app": "live"}))
    session.data_to_send()
    ping = encode_chunk(0, 2, length=6, type_id=4, body=b"\x00\x06\x00\x00\x01\x00")
    window = encode_chunk(0, 2, length=4, type_id=5, body=(5000).to_bytes(4, "big"))
    session.receive_data(ping + window)
    session.receive_data(client.media(9, 0, b"x" * 6000))  # not publishing: dropped, but counted
    replies = [m for m, _v in client.parse(session.data_to_send())]
    pong = [m for m in replies if m.type_id == 4]
    assert pong and pong[0].payload == b"\x00\x07\x00\x00\x01\x00"
    acks = [m for m in replies if m.type_id == 3]
    assert acks and int.from_bytes(acks[0].payload, "big") == session.bytes_received


def test_commands_before_connect_and_bad_versions_are_errors() -> None:
    session, client = handshaken()
    with pytest.raises(RtmpError, match="before connect"):
        session.receive_data(client.command("createStream", None))
    with pytest.raises(RtmpError, match="version 6"):
        ServerSession().receive_data(b"\x06" + bytes(1536))


def test_aggregate_messages_are_split_and_rebased() -> None:
    session, client = handshaken()
    publish(session, client)
    session.accept_publish()

    def sub(type_id: int, ts: int, body: bytes) -> bytes:
        header = bytes([type_id]) + len(body).to_bytes(3, "big") + (ts & 0xFFFFFF).to_bytes(3, "big")
        return header + bytes([ts >> 24]) + b"\x00\x00\x00" + body + (11 + len(body)).to_bytes(4, "big")

    payload = sub(9, 500, b"\x17\x01v1") + sub(8, 510, b"\xaf\x01a1") + sub(9, 533, b"\x27\x01v2")
    events = session.receive_data(client.writer.write(6, 22, 1, 1000, payload))
    tags = [e.tag for e in events if isinstance(e, MediaReceived)]
    assert [(t.type, t.timestamp) for t in tags] == [
        (TagType.VIDEO, 1000), (TagType.AUDIO, 1010), (TagType.VIDEO, 1033)]


@given(st.binary(max_size=3000))
@settings(max_examples=200)
def test_arbitrary_bytes_after_handshake_raise_only_rtmp_error(data: bytes) -> None:
    session, _client = handshaken()
    try:
        session.receive_data(data)
    except RtmpError:
        pass


@given(st.lists(st.sampled_from(["connect", "createStream", "publish", "FCUnpublish",
                                 "deleteStream", "play", "releaseStream", "bogus"]), max_size=8),
       st.lists(st.one_of(st.none(), st.floats(allow_nan=False), st.text(max_size=10)), max_size=3))
@settings(max_examples=200)
def test_any_command_order_raises_only_rtmp_error(names: list[str], args: list[object]) -> None:
    session, client = handshaken()
    for name in names:
        try:
            events = session.receive_data(client.command(name, *args, stream_id=1))
        except RtmpError:
            return
        for event in events:
            if isinstance(event, PublishRequested):
                session.accept_publish()


def test_only_small_messages_before_a_publish_is_requested() -> None:
    session, client = handshaken()
    with pytest.raises(RtmpError, match="exceeds the limit"):
        session.receive_data(client.writer.write(3, 20, 0, 0, bytes(100_000)))


def test_large_media_is_accepted_once_a_publish_is_requested() -> None:
    session, client = handshaken()
    publish(session, client)
    session.accept_publish()
    session.data_to_send()
    events = session.receive_data(client.media(9, 0, b"\x17\x01\x00\x00\x00" + bytes(500_000)))
    (event,) = events
    assert isinstance(event, MediaReceived) and len(event.tag.body) == 500_005
