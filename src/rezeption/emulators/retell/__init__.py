"""A small emulation of Retell's management API (LLMs, agents and their versions, phone numbers),
enough for `rezeption agent diff|publish|rollback|versions` to be tested with the official SDK."""

from rezeption.emulators.retell.app import RetellState, create_app

__all__ = ["RetellState", "create_app"]
