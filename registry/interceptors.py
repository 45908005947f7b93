"""One place that turns exceptions into gRPC status codes (DESIGN.md §5).

kreg.errors.* carry their own code; anything else is a bug: logged with its traceback,
answered INTERNAL with a fixed text so internals never leak to callers and no path ever
answers UNKNOWN. The handlers it rebuilds also pass replies that are already serialised
(bytes) through unchanged, so a handler can answer kept replies without re-encoding them.
"""

from __future__ import annotations

import logging
from typing import Any, AsyncIterator, Awaitable, Callable

import grpc

from kreg.errors import KregError

log = logging.getLogger(__name__)
SERVICE_PREFIX = "/kreg.v1."


async def _abort_for(exc: Exception, context: grpc.aio.ServicerContext, method: str) -> None:
    if isinstance(exc, KregError):
        await context.abort(exc.code, str(exc))
    log.exception("internal error in %s", method)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error (logged by the registry)")


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        # The wrapped handler per method, built on its first call: gRPC asks the interceptor
        # on every call, and rebuilding handler and closures each time was per-call waste.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        # Only our service raises domain errors; health and reflection keep their own handling
        # (health's Watch, for one, streams through context.write rather than a generator).
        if handler is None or not method.startswith(SERVICE_PREFIX):
            return handler
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = _wrap(handler, method)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


def _wrap(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """`handler` with exceptions mapped to status codes, and bytes replies passed through."""
    if handler.unary_unary is not None:
        inner = handler.unary_unary

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await inner(request, context)
            except Exception as exc:
                if _is_abort(exc):
                    raise
                await _abort_for(exc, context, method)

        return grpc.unary_unary_rpc_method_handler(
            unary, request_deserializer=handler.request_deserializer, response_serializer=_bytes_or(handler.response_serializer)
        )
    if handler.unary_stream is not None:
        inner_stream = handler.unary_stream

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                async for item in inner_stream(request, context):
                    yield item
            except Exception as exc:
                if _is_abort(exc):
                    raise
                await _abort_for(exc, context, method)

        return grpc.unary_stream_rpc_method_handler(
            stream, request_deserializer=handler.request_deserializer, response_serializer=_bytes_or(handler.response_serializer)
        )
    return handler


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
