"""rezeption.store."""
