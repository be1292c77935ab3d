"""REST API under /api/v1 (control plane)."""
