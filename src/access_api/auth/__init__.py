"""Authentication: how a bearer credential becomes a caller."""
