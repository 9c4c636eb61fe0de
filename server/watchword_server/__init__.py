"""Watchword: an authentication and authorization service over gRPC."""

from importlib.metadata import version

# The installed distribution's, which setuptools read from the repository's VERSION.
__version__ = version("watchword-server")
