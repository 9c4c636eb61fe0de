"""Bringing users and their access in from other systems (``watchword import-emmett``)."""
