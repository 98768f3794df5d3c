"""rezeption.domain."""
