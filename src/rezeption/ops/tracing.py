"""OpenTelemetry tracing, on only when `REZEPTION_OTLP_ENDPOINT` is set (OTLP over HTTP).

One trace per phone call: its trace id is derived from the Retell call id (sha256), so every
function call of the call — in whichever process, HTTP or the dialog socket — lands in the same
trace, with the database statements (SQLAlchemy's instrumentation) and the Cal.com requests (httpx's)
as children. Spans carry the call id, the salon's slug, the function and its outcome; never a name
or a number: statements are recorded without their values, and an outgoing request's URL is cut to
its route (`ops.metrics.route_label`, no query string). Unset, the tracer is OpenTelemetry's no-op.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, TraceFlags, set_span_in_context

from rezeption.ops.metrics import route_label

TRACER_NAME = "rezeption"
_configured: dict[str, Any] = {}


def configure_tracing(endpoint: str | None, *, engines: list[Any], service: str = "rezeption") -> bool:
    """Export spans to `endpoint` (e.g. http://collector:4318) and instrument the given SQLAlchemy
    engines and every httpx client. Once per process; False when tracing stays off."""
    if not endpoint:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if "provider" not in _configured:
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces"))
        )
        trace.set_tracer_provider(provider)
        HTTPXClientInstrumentor().instrument(request_hook=_cut_url, async_request_hook=_cut_url_async)
        _configured["provider"] = provider
    for engine in engines:
        # skip_dep_check: the instrumentation declares "sqlalchemy < 2.1" but works with 2.1 (tested)
        SQLAlchemyInstrumentor().instrument(engine=engine, enable_commenter=False, skip_dep_check=True)
    return True


def shutdown_tracing() -> None:
    """Send what is buffered (on shutdown)."""
    provider = _configured.get("provider")
    if provider is not None:
        provider.force_flush(timeout_millis=5000)


def call_context(call_id: str) -> Context:
    """The context of the call's trace: every span started in it belongs to the call's trace."""
    digest = hashlib.sha256(f"rezeption-call\x1f{call_id}".encode()).digest()
    parent = SpanContext(
        trace_id=int.from_bytes(digest[:16], "big") or 1,
        span_id=int.from_bytes(digest[16:24], "big") or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return set_span_in_context(NonRecordingSpan(parent))


@contextlib.contextmanager
def call_span(name: str, call_id: str, **attributes: str) -> Iterator[Span]:
    """A span in the call's trace, current while the block runs (the statements and requests made
    in it become its children)."""
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(
        name,
        context=call_context(call_id),
        attributes={"rezeption.call_id": call_id, **{f"rezeption.{k}": v for k, v in attributes.items()}},
    ) as span:
        yield span


def _cut_url(span: Span, request: Any) -> None:
    url = getattr(request, "url", None)
    if url is None or not span.is_recording():
        return
    cut = f"{url.scheme}://{url.host}{f':{url.port}' if url.port else ''}{route_label(url.path)}"
    for key in ("http.url", "url.full"):
        span.set_attribute(key, cut)


async def _cut_url_async(span: Span, request: Any) -> None:
    _cut_url(span, request)
