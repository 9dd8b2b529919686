"""The fan-out benchmark's server on Python's websockets: every message goes to every
connection with websockets.broadcast. bench/fanout.sh runs it."""

import asyncio
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
    async with serve(handler, "127.0.0.1", port, max_size=None):
        print("listening", flush=True)
        await asyncio.get_running_loop().create_future()


asyncio.run(main(int(sys.argv[1])))
