"""RTMP ingest: sans-IO protocol core (handshake, chunks, AMF0, session) and an asyncio server."""
