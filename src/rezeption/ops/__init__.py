"""rezeption.ops."""
