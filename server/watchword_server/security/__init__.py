"""Credential primitives: password hashing with a pepper, and opaque random tokens."""
