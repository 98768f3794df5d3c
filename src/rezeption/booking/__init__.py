"""rezeption.booking."""
