"""A Python `websockets` client for the specs: talks to the URL given as first argument
(offering the `echo` protocol) and prints one line per exchange for the spec to check."""

import asyncio
import sys

from websockets.asyncio.client import connect


async def main(url):
    async with connect(url, subprotocols=["echo"], max_size=None) as ws:
        print("protocol", ws.subprotocol)
        await ws.send("hello from python")
        print("text", await ws.recv())
        await ws.send(bytes([0, 1, 255]))
        print("binary", (await ws.recv()).hex())
        big = "x" * 70000
        await ws.send(big)
        echoed = await ws.recv()
        print("big", len(echoed), echoed == big)
        answered = await ws.ping(b"are you there")
        await answered
        print("pong received")
        await ws.close(4001, "done")
        print("closed", ws.close_code, ws.close_reason)


asyncio.run(main(sys.argv[1]))
