"""Our own dialog engine: a deterministic German receptionist behind Retell's custom-LLM socket.

`hearing` turns one caller utterance into what it says (intents, yes/no, service, day and time,
stylist, name, a choice); `manager` keeps the call's state and decides what to say and which of
the agent's functions to run — through a port (`Functions`), the same code and idempotency the
HTTP functions use; `voice` streams the answer and keeps the caller company while a slow calendar
answers. The WebSocket protocol is the Retell adapter's (`retell.llm_socket`).
"""
