"""The floor for bench/registry_load.py: a bare grpc.aio server that answers the registry's
method paths with fixed, pre-serialised replies (the bytes the real registry returned for
the same requests), with no parsing, no logic and no store — the fastest a Python gRPC server
can answer those bytes.

    python bench/bare_grpc_server.py REPLIES.pickle PORT

REPLIES.pickle: {method path: bytes} for unary methods and {method path: [bytes, ...]} for
server-streaming ones (each element one streamed message). Prints "ready" once serving.
"""

from __future__ import annotations

import asyncio
import pickle
import sys
from collections.abc import AsyncIterator

import grpc


def handlers(replies: dict[str, bytes | list[bytes]]) -> grpc.GenericRpcHandler:
    by_service: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
    for path, reply in replies.items():
        service, method = path.strip("/").split("/")
        if isinstance(reply, list):
            chunks = reply

            async def stream(request: bytes, context: object, chunks: list[bytes] = chunks) -> AsyncIterator[bytes]:
                for chunk in chunks:
                    yield chunk

            handler = grpc.unary_stream_rpc_method_handler(stream)
        else:

            async def unary(request: bytes, context: object, reply: bytes = reply) -> bytes:
                return reply

            handler = grpc.unary_unary_rpc_method_handler(unary)
        by_service.setdefault(service, {})[method] = handler
    # No (de)serialisers: requests arrive and replies leave as raw bytes.
    return [grpc.method_handlers_generic_handler(s, m) for s, m in by_service.items()]  # type: ignore[return-value]


async def main(replies_path: str, port: int) -> None:
    with open(replies_path, "rb") as f:
        replies = pickle.load(f)
    server = grpc.aio.server(options=[("grpc.max_send_message_length", 32 << 20)])
    server.add_generic_rpc_handlers(handlers(replies))  # type: ignore[arg-type]
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
