"""rezeption.retell."""
