"""Python `websockets` clients that probe one server behaviour each, for the specs.

usage:
  python_probe.py ping URL                 pings, prints `pong received`, closes
  python_probe.py flood URL COUNT SIZE     sends COUNT binary messages of SIZE bytes, each
                                           numbered in its first 8 bytes, printing
                                           `sent N at SECONDS` after each; then waits for the
                                           server to close
  python_probe.py listen URL COUNT         offers `chat`, prints `ready`, then prints each of
                                           the next COUNT messages that are not `probe`
                                           (`text <message>` or `binary <hex>`), and closes
  python_probe.py tls URL CAFILE [CERT KEY] echoes `over tls` through wss:// offering the
                                           `echo` protocol, with a client certificate when
                                           CERT and KEY are given
  python_probe.py origin URL [ORIGIN]      connects with ORIGIN as its Origin header (none
                                           without), prints `echo <answer>` or
                                           `refused <status>`
  python_probe.py unix PATH URL            echoes `over unix` on the unix socket PATH, URL
                                           giving the Host header and the resource
"""

import asyncio
import ssl
import sys
import time

from websockets.asyncio.client import connect, unix_connect
from websockets.exceptions import InvalidStatus


async def ping(url):
    async with connect(url) as ws:
        answered = await ws.ping(b"still there?")
        await asyncio.wait_for(answered, 5)
        print("pong received", flush=True)


async def flood(url, count, size):
    started = time.monotonic()
    async with connect(url, max_size=None, close_timeout=30) as ws:
        for index in range(count):
            payload = index.to_bytes(8, "big") + bytes(size - 8)
            await ws.send(payload)
            print(f"sent {index + 1} at {time.monotonic() - started:.3f}", flush=True)
        await ws.wait_closed()
        print("closed", ws.close_code, flush=True)


async def listen(url, count):
    async with connect(url, subprotocols=["chat"]) as ws:
        print("ready", flush=True)
        seen = 0
        while seen < count:
            message = await ws.recv()
            if message == "probe":
                continue
            seen += 1
            if isinstance(message, str):
                print("text", message, flush=True)
            else:
                print("binary", message.hex(), flush=True)


async def tls(url, cafile, cert=None, key=None):
    context = ssl.create_default_context(cafile=cafile)
    if cert:
        context.load_cert_chain(cert, key)
    async with connect(url, ssl=context, subprotocols=["echo"]) as ws:
        await ws.send("over tls")
        print("echo", await ws.recv(), flush=True)


async def origin(url, origin=None):
    try:
        async with connect(url, origin=origin) as ws:
            await ws.send("from python")
            print("echo", await ws.recv(), flush=True)
    except InvalidStatus as refusal:
        print("refused", refusal.response.status_code, flush=True)


async def unix(path, url):
    async with unix_connect(path, url) as ws:
        await ws.send("over unix")
        print("echo", await ws.recv(), flush=True)


def main(args):
    command = args[0]
    if command == "ping":
        asyncio.run(ping(args[1]))
    elif command == "flood":
        asyncio.run(flood(args[1], int(args[2]), int(args[3])))
    elif command == "listen":
        asyncio.run(listen(args[1], int(args[2])))
    elif command == "tls":
        asyncio.run(tls(*args[1:]))
    elif command == "origin":
        asyncio.run(origin(*args[1:]))
    elif command == "unix":
        asyncio.run(unix(args[1], args[2]))
    else:
        raise SystemExit(f"unknown command {command}")


main(sys.argv[1:])
