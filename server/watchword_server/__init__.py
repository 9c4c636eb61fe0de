"""Watchword: an authentication and authorization service over gRPC."""

__version__ = "0.1.0"
