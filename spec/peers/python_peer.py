"""A Python `websockets` server for the specs: an independent implementation to test against.

The request path picks the behaviour after the handshake, like tools/testpeer:
/echo (and any other path) echoes; /report first sends the offered Sec-WebSocket-Protocol
header (or <none>); /close/<code>/<reason> closes at once; /ping/<payload> pings and sends
pong:<payload> once answered; /fragments/<n> sends one TEXT message in n fragments;
/later/<ms> sends `late` after ms milliseconds, answering pings meanwhile.
The port is written to the file named by the first argument as a `python=<port>` line.
"""

import asyncio
import os
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

SUPPORTED_PROTOCOLS = ["echo", "chat", "superchat"]


def select_protocol(connection, offered):
    """The first offered protocol we know, or none (the handshake still succeeds)."""
    return next((name for name in offered if name in SUPPORTED_PROTOCOLS), None)


async def behave(ws):
    path = ws.request.path
    if path == "/report":
        offered = ws.request.headers.get("Sec-WebSocket-Protocol", "<none>")
        await ws.send(f"sec-websocket-protocol: {offered}")
    elif path.startswith("/close/"):
        _, _, code, reason = path.split("/", 3)
        await ws.close(int(code), reason)
        return
    elif path.startswith("/ping/"):
        payload = path[len("/ping/"):]
        answered = await ws.ping(payload.encode())
        await answered
        await ws.send(f"pong:{payload}")
    elif path.startswith("/fragments/"):
        count = int(path.split("/")[2])
        await ws.send(f"fragment-{index};" for index in range(count))
    elif path.startswith("/later/"):
        await asyncio.sleep(int(path.split("/")[2]) / 1000)
        await ws.send("late")
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


async def main(port_file):
    async with serve(
        behave,
        "127.0.0.1",
        0,
        select_subprotocol=select_protocol,
        max_size=None,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        # Written whole and then renamed, so that a reader never sees half of it.
        with open(port_file + ".partial", "w") as out:
            out.write(f"python={port}\n")
        os.replace(port_file + ".partial", port_file)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
