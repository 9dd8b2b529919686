"""Benchmark client for bench/compression.sh's memory table: opens COUNT connections to
URL (offering permessage-deflate when MODE is not `plain`), with MODE `busy` sends one
chat message on each and reads its echo, with MODE `alone` the same without context
takeover either way (every message stands alone), prints `open <count>` and holds them
until its standard input closes.

    deflate-connections.py URL COUNT plain|idle|busy|alone
"""

import asyncio
import sys

from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

MESSAGE = '{"type":"message","room":"room-7","user":"user42","text":"hello there, see you soon"}'


async def main(url, count, mode):
    compression = None if mode == "plain" else "deflate"
    extensions = None
    if mode == "alone":
        compression = None
        extensions = [
            ClientPerMessageDeflateFactory(
                server_no_context_takeover=True, client_no_context_takeover=True
            )
        ]
    connections = []
    for _ in range(count):
        ws = await connect(
            url, compression=compression, extensions=extensions, ping_interval=None
        )
        if mode in ("busy", "alone"):
            await ws.send(MESSAGE)
            await ws.recv()
        connections.append(ws)
    print("open", len(connections), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for ws in connections:
        await ws.close()


asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
