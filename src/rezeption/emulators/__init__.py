"""rezeption.emulators."""
