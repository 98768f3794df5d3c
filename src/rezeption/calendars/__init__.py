"""rezeption.calendars."""
