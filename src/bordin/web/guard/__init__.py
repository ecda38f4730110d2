"""Limits shared by every worker and host, and the checks that the client address is known."""
