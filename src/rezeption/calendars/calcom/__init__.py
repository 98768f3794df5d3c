"""Cal.com API v2 as a calendar provider: one package per concept.

- `provider`: `CalcomCalendar` (the booking port over one salon's Cal.com account) and its settings;
- `client` (safe writes, read-backs) over `api` (the endpoints) over `transport` (one request:
  headers, timeouts, retries, breakers, the request budget, rate-limit headers);
- `picture` (keeping the salon's cached free slots current from our writes, webhooks and the
  reconciler, without reading);
- `budget` (the key's shared request budget), `breaker`, `errors`, `models`, `webhook` (Cal.com's
  signed webhooks).
"""

from rezeption.calendars.calcom.provider import CalcomCalendar, CalcomSettings

__all__ = ["CalcomCalendar", "CalcomSettings"]
