"""Talking to Nextcloud: one shared connection pool, per-user credentials, errors mapped once."""
