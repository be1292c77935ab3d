"""SRT ingest: sans-IO protocol core (packets, handshake, crypto, receiver, the listener) and an asyncio shell."""
