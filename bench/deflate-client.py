"""Benchmark client for bench/compression.sh: echoes a JSON corpus through a server with
permessage-deflate (Python `websockets`' defaults: context takeover, 15-bit windows) and
checks every echo.

    deflate-client.py URL KIND COUNT      KIND: chat (about 200-byte chat messages) or
                                          doc (about 4 KB documents)
Prints `echoed <count> extensions <header>`.
"""

import asyncio
import json
import random
import sys

from websockets.asyncio.client import connect

WORDS = ("hello there how are you today the meeting moved to three pm please review the "
         "draft before lunch thanks see you soon great idea let us ship it tomorrow").split()


def chat(rng, index):
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16)))
    return json.dumps({"type": "message", "id": index, "room": f"room-{rng.randint(1, 20)}",
                       "user": f"user{rng.randint(1, 500)}", "text": text, "ts": 1733300000 + index})


def doc(rng, index):
    items = [{"id": index * 100 + i, "name": f"item {rng.randint(1, 10000)}",
              "price": round(rng.uniform(1, 500), 2), "tags": rng.sample(WORDS, 3),
              "in_stock": rng.random() < 0.7} for i in range(30)]
    return json.dumps({"type": "catalog", "page": index, "items": items})


async def main(url, kind, count):
    rng = random.Random(7)
    make = chat if kind == "chat" else doc
    messages = [make(rng, index) for index in range(count)]
    async with connect(url, max_size=None) as ws:
        echoed = 0
        for message in messages:
            await ws.send(message)
            if await ws.recv() == message:
                echoed += 1
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions")
    print(f"echoed {echoed} extensions {extensions}", flush=True)


asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
