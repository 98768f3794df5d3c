"""The Retell AI adapter: signed webhooks, the booking functions, call memory and call_inbound context."""
