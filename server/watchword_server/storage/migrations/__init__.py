"""Alembic migrations, reviewed by hand; run them with `watchword migrate`."""
