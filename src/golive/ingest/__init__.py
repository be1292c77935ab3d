"""Ingest stage: accepts publishers and turns them into timestamped media for a broadcast."""
