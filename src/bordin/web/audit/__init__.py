"""The audit log: an append-only record of every read and write of client data."""
