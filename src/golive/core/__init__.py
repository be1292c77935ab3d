"""Domain types and the event bus shared by every stage (control plane)."""
