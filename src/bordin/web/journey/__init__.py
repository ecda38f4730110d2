"""The client's journey: intake, fit check, shared goals and ending with evidence."""
