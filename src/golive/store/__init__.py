"""Persistent state (control plane): SQLAlchemy models, migrations and repositories."""
