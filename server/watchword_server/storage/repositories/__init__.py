"""Repositories: Core queries on a connection that the caller's transaction owns."""
