"""rezeption: the backend of a voice AI receptionist for service businesses."""
