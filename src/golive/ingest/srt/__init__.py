"""SRT ingest: sans-IO protocol core (packets, handshake, crypto, receiver) and an asyncio server."""
