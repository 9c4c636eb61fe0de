"""Storage: models, engine, schema migrations and repositories (the only SQLAlchemy users)."""
