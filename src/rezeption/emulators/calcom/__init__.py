"""A faithful local Cal.com API v2 emulator with fault injection (tests, benchmarks, the demo).

`app` composes it (`create_app`, `run_emulator`); `config`, `state`, `records`, `slots`,
`bookings`, `requests`, `routes`, `admin`, `middleware`, `faults` and `wire` hold its parts.
"""

from rezeption.emulators.calcom.app import EmulatorConfig, create_app, load_config, run_emulator

__all__ = ["EmulatorConfig", "create_app", "load_config", "run_emulator"]
