"""The fan-out benchmark's server on Python's websockets: every message goes to every
connection with websockets.broadcast. bench/fanout.sh runs it. With FANOUT_DEFLATE set in
the environment, it agrees to permessage-deflate (websockets' default settings)."""

import asyncio
import os
import sys

from websockets.asyncio.server import broadcast, serve

connections = set()


async def handler(ws):
    connections.add(ws)
    try:
        async for message in ws:
            broadcast(connections, message)
    finally:
        connections.discard(ws)


async def main(port):
    # No keepalive pings: the benchmark's listeners are raw sockets that never answer them
    # (Node's ws and this project's server do not ping unless asked to either).
    compression = "deflate" if os.environ.get("FANOUT_DEFLATE") else None
    async with serve(
        handler,
        "127.0.0.1",
        port,
        max_size=None,
        ping_interval=None,
        compression=compression,
    ):
        print("listening", flush=True)
        await asyncio.get_running_loop().create_future()


asyncio.run(main(int(sys.argv[1])))
