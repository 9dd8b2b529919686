"""Python `websockets` clients that probe one server behaviour each, for the specs.

usage:
  python_probe.py ping URL                 pings, prints `pong received`, closes
  python_probe.py flood URL COUNT SIZE     sends COUNT binary messages of SIZE bytes, each
                                           numbered in its first 8 bytes, printing
                                           `sent N at SECONDS` after each; then waits for the
                                           server to close
  python_probe.py listen URL COUNT         offers `chat` (and, as `websockets` does,
                                           permessage-deflate), prints `ready <extensions
                                           agreed>`, then prints each of
                                           the next COUNT messages that are not `probe`
                                           (`text <message>` or `binary <hex>`), and closes
  python_probe.py tls URL CAFILE [CERT KEY] echoes `over tls` through wss:// offering the
                                           `echo` protocol, with a client certificate when
                                           CERT and KEY are given
  python_probe.py origin URL [ORIGIN]      connects with ORIGIN as its Origin header (none
                                           without), prints `echo <answer>` or
                                           `refused <status>`
  python_probe.py deflate URL [SERVER_BITS CLIENT_BITS NO_TAKEOVER]
                                           offers permessage-deflate (with those parameters,
                                           NO_TAKEOVER 1 for no context takeover both ways),
                                           prints the answer's extensions, echoes TEXT and
                                           BINARY, small, large and fragmented messages and
                                           prints `echoed N`
  python_probe.py answer EXTENSIONS       a raw server: prints `port <n>`, answers one
                                           upgrade with `Sec-WebSocket-Extensions:
                                           EXTENSIONS`, then holds the connection a while
  python_probe.py relay TARGET_PORT        a TCP relay to 127.0.0.1:TARGET_PORT that counts
                                           bytes: prints `port <n>`, then after each
                                           connection `total up <bytes> down <bytes>`
  python_probe.py unix PATH URL            echoes `over unix` on the unix socket PATH, URL
                                           giving the Host header and the resource
  python_probe.py topics URL TOPIC         sends `sub TOPIC` and waits for `subscribed
                                           TOPIC`, then `pub TOPIC hello from python` and
                                           `go TOPIC`, and prints `got <message>` for each
                                           message until `end`
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
        print("ready", ws.response.headers.get("Sec-WebSocket-Extensions"), flush=True)
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


async def deflate(url, server_bits=None, client_bits=None, no_takeover="0"):
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

    takeover_off = no_takeover == "1"
    factory = ClientPerMessageDeflateFactory(
        server_no_context_takeover=takeover_off,
        client_no_context_takeover=takeover_off,
        server_max_window_bits=int(server_bits) if server_bits else None,
        client_max_window_bits=int(client_bits) if client_bits else True,
    )
    chat = '{"user":"alice","text":"hello, everyone in the room"}'
    document = "".join(f'{{"id":{i},"name":"item {i}","tags":["a","b"]}}' for i in range(20000))
    messages = [chat, chat, b"\x00\x01\xff" * 1000, document, ""]
    async with connect(url, compression=None, extensions=[factory], max_size=None) as ws:
        print("extensions", ws.response.headers.get("Sec-WebSocket-Extensions"), flush=True)
        echoed = 0
        for message in messages:
            await ws.send(message)
            if await ws.recv() == message:
                echoed += 1
        # Fragmented: an iterable is sent as one message in fragments.
        await ws.send(["frag", "ment", "ed " * 1000])
        if await ws.recv() == "fragment" + "ed " * 1000:
            echoed += 1
        print("echoed", echoed, flush=True)


def answer(extensions):
    import base64
    import hashlib
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    print("port", listener.getsockname()[1], flush=True)
    connection, _ = listener.accept()
    request = b""
    while b"\r\n\r\n" not in request:
        request += connection.recv(4096)
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    digest = hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
    accept = base64.b64encode(digest).decode()
    connection.sendall(
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: {extensions}\r\n\r\n"
        ).encode()
    )
    time.sleep(5)


def relay(target_port):
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    print("port", listener.getsockname()[1], flush=True)
    totals = {"up": 0, "down": 0}
    lock = threading.Lock()

    def pump(source, sink, direction):
        while True:
            data = source.recv(65536)
            if not data:
                break
            with lock:
                totals[direction] += len(data)
            sink.sendall(data)
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def serve(client):
        server = socket.create_connection(("127.0.0.1", int(target_port)))
        up = threading.Thread(target=pump, args=(client, server, "up"))
        up.start()
        pump(server, client, "down")
        up.join()
        client.close()
        server.close()
        with lock:
            print(f"total up {totals['up']} down {totals['down']}", flush=True)

    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client,), daemon=True).start()


async def topics(url, topic):
    async with connect(url, subprotocols=["chat"]) as ws:
        await ws.send(f"sub {topic}")
        while await ws.recv() != f"subscribed {topic}":
            pass
        await ws.send(f"pub {topic} hello from python")
        await ws.send(f"go {topic}")
        while True:
            message = await ws.recv()
            print("got", message, flush=True)
            if message == "end":
                return


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
    elif command == "deflate":
        asyncio.run(deflate(*args[1:]))
    elif command == "answer":
        answer(args[1])
    elif command == "relay":
        relay(args[1])
    elif command == "unix":
        asyncio.run(unix(args[1], args[2]))
    elif command == "topics":
        asyncio.run(topics(args[1], args[2]))
    else:
        raise SystemExit(f"unknown command {command}")


main(sys.argv[1:])
