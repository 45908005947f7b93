"""One place that turns exceptions into gRPC status codes (DESIGN.md §5), wrapped around
each of the service's method handlers once, at registration.

kreg.errors.* carry their own code; anything else is a bug: logged with its traceback,
answered INTERNAL with a fixed text (and the request id to find the log line by) so
internals never leak to callers and no path ever answers UNKNOWN. The wrapped handlers also
pass replies that are already serialised (bytes) through unchanged, so a handler can answer
kept replies without re-encoding them, and record the standard grpc_server_* metrics and the
request id (kreg.logs) of every call. Health and reflection are registered as they are and
keep their own handling.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator, Callable, TypeVar

import grpc

from google.protobuf.message import DecodeError

from kreg import logs
from kreg.errors import InvalidArgument, KregError
from registry import metrics
from registry.audit import AuditLog
from registry.auth import METHOD_ROLES, Principal, Role, TokenTable

log = logging.getLogger(__name__)


async def _abort_for(exc: Exception, context: grpc.aio.ServicerContext, method: str) -> None:
    if isinstance(exc, KregError):
        await context.abort(exc.code, str(exc))
    rid = _ensure_request_id(context)
    log.exception("internal error in %s", method)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error (logged by the registry as request {rid})")


def _request_id(context: grpc.aio.ServicerContext) -> None:
    """Serve the call under the caller's request id, when it sent one (kreg's client always
    does). Calls without one get an id only when something is logged or audited for them
    (_ensure_request_id): a read that succeeds writes nothing to name."""
    for key, value in context.invocation_metadata() or ():
        if key == logs.REQUEST_ID_HEADER:
            if isinstance(value, str) and 0 < len(value) <= logs.MAX_REQUEST_ID_CHARS and value.isprintable():
                logs.request_id.set(value)  # each RPC runs in its own task: the value ends with it
            return


def _ensure_request_id(context: grpc.aio.ServicerContext) -> str:
    """The call's request id, made (and returned to the caller) if it has none yet."""
    rid = logs.request_id.get()
    if not rid:
        rid = logs.new_request_id()
        logs.request_id.set(rid)
        context.set_trailing_metadata(((logs.REQUEST_ID_HEADER, rid),))
    return rid


def _code_of(exc: BaseException, context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    """The status a call that raised `exc` ends with."""
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        return grpc.StatusCode.CANCELLED
    if _is_abort(exc):
        code = context.code()
        return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
    return exc.code if isinstance(exc, KregError) else grpc.StatusCode.INTERNAL


class _Captured:
    """Stands in for the server while the generated add_*_to_server registers the service:
    keeps the method handlers it is given, so they can be wrapped before the real server
    sees them."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}
        self.service = ""

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass  # the same handlers arrive through add_registered_method_handlers

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.service, self.handlers = service, dict(handlers)


def add_service(
    add_to_server: Callable[[Any, Any], None],
    servicer: Any,
    server: grpc.aio.Server,
    auth: TokenTable | None = None,
    audit: AuditLog | None = None,
) -> None:
    """Register `servicer` as `add_to_server` (the generated function) would, every method
    wrapped once with the error mapping and, with `auth`, the caller's token checked first.
    An interceptor would do the same on every call: grpc.aio runs its intercept_service
    coroutine per RPC, a cost the read path cannot afford."""
    captured = _Captured()
    add_to_server(servicer, captured)
    if not captured.handlers:
        raise RuntimeError(f"{add_to_server.__name__} registered no method handlers: regenerate the stubs (scripts/gen_protos.py)")
    wrapped = {name: _wrap(handler, captured.service, name, auth, audit) for name, handler in captured.handlers.items()}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(captured.service, wrapped),))
    server.add_registered_method_handlers(captured.service, wrapped)


F = TypeVar("F", bound=Callable[..., Any])


def raw_request(method: F) -> F:
    """Mark a servicer method that takes its request's bytes (it parses them only when it
    has to: a reply kept for the same bytes needs no parse)."""
    method.raw_request = True  # type: ignore[attr-defined]
    return method


def serialised_reply(method: F) -> F:
    """Mark a servicer method whose replies are always serialised bytes (no serializer call)."""
    method.serialised_reply = True  # type: ignore[attr-defined]
    return method


def _wrap(
    handler: grpc.RpcMethodHandler, service: str, name: str, auth: TokenTable | None, audit: AuditLog | None
) -> grpc.RpcMethodHandler:
    """`handler` with the caller authorized (when `auth`), exceptions mapped to status codes,
    and bytes replies passed through."""
    method = f"/{service}/{name}"
    inner_fn = handler.unary_unary or handler.unary_stream
    # Requests always arrive as bytes and are parsed here: a request grpc failed to parse
    # would be answered UNKNOWN, and a caller's malformed bytes are INVALID_ARGUMENT.
    raw = getattr(inner_fn, "raw_request", False)
    parse = _parser(handler.request_deserializer, name)
    serializer = None if getattr(inner_fn, "serialised_reply", False) else _bytes_or(handler.response_serializer)
    if handler.unary_unary is not None:
        inner = handler.unary_unary
        audited = audit is not None and METHOD_ROLES.get(name, Role.ADMIN) >= Role.WORKER
        unary_metrics = metrics.GRPC.method("unary", service, name)  # found once, here

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            principal, parsed = None, request
            began = unary_metrics.start()
            _request_id(context)
            if audited:
                _ensure_request_id(context)
            try:
                if auth is not None:
                    principal = auth.caller(context.invocation_metadata())
                    auth.permit(name, principal)
                parsed = request if raw else parse(request)
                reply = await inner(parsed, context)
                # A lease poll that found nothing changed nothing: not a write to record.
                if audited and not (name == "LeaseJob" and not reply.HasField("job")):
                    _record(audit, principal, context, name, "OK", parsed, reply)
                unary_metrics.done(began, "OK")
                return reply
            except BaseException as exc:
                unary_metrics.done(began, _code_of(exc, context).name)
                if not isinstance(exc, Exception):
                    raise  # cancelled: the caller went away
                if audited:
                    _record(audit, principal, context, name, _outcome(exc), parsed)
                if _is_abort(exc):
                    raise
                await _abort_for(exc, context, method)

        return grpc.unary_unary_rpc_method_handler(unary, request_deserializer=None, response_serializer=serializer)
    if handler.unary_stream is not None:
        inner_stream = handler.unary_stream
        stream_metrics = metrics.GRPC.method("server_stream", service, name)

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            began = stream_metrics.start()
            _request_id(context)
            try:
                if auth is not None:
                    auth.permit(name, auth.caller(context.invocation_metadata()))
                async for item in inner_stream(request if raw else parse(request), context):
                    yield item
                stream_metrics.done(began, "OK")
            except BaseException as exc:
                stream_metrics.done(began, _code_of(exc, context).name)
                if not isinstance(exc, Exception) or _is_abort(exc):
                    raise  # cancelled (or the stream closed by the caller), or already aborted
                await _abort_for(exc, context, method)

        return grpc.unary_stream_rpc_method_handler(stream, request_deserializer=None, response_serializer=serializer)
    return handler


def _record(
    audit: AuditLog | None, who: Principal | None, context: grpc.aio.ServicerContext, method: str, outcome: str, request: Any,
    reply: Any = None,
) -> None:
    assert audit is not None
    audit.record(who=who.name if who else "anonymous", peer=context.peer(), method=method, outcome=outcome, request=request, reply=reply)


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, KregError):
        return exc.code.name
    return "ABORTED" if _is_abort(exc) else "INTERNAL"


def parse_request(deserialize: Callable[[bytes], Any], raw: bytes, method: str) -> Any:
    """The request message, or InvalidArgument naming the method when the bytes do not parse."""
    try:
        return deserialize(raw)
    except DecodeError:
        raise InvalidArgument(f"the request bytes are not a serialised {method}Request") from None


def _parser(deserialize: Callable[[bytes], Any] | None, method: str) -> Callable[[bytes], Any]:
    if deserialize is None:
        return lambda raw: raw
    return lambda raw: parse_request(deserialize, raw, method)


def _bytes_or(serializer: Callable[[Any], bytes] | None) -> Callable[[Any], bytes]:
    def serialize(message: Any) -> bytes:
        if type(message) is bytes:
            return message
        assert serializer is not None
        return serializer(message)

    return serialize


def _is_abort(exc: BaseException) -> bool:
    # context.abort() raises this to end the RPC; it must pass through untouched.
    return isinstance(exc, grpc.aio.AbortError)
