"""Cluster mode (REDIS_URL): several server processes share live notes through Redis."""
