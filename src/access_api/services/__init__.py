"""I/O adapters that are not SQL: hashing, secrets, mail, clocks."""
