"""Clinic operations: staff, clients and episodes, imports, and the client's data rights."""
