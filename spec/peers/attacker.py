"""Peers that try to make a WebSocket server hold memory, over raw sockets on 127.0.0.1.

    attacker.py pings PORT PROTOCOL CONNECTIONS COUNT
        each connection sends COUNT pings (125 bytes each) and never reads
    attacker.py flood PORT PROTOCOL CONNECTIONS COUNT SIZE
        each connection sends COUNT binary messages of SIZE bytes (frames of at most 8 MiB)
        and never reads
    attacker.py reset PORT PROTOCOL CONNECTIONS COUNT SIZE
        as flood, then resets every connection (RST, not FIN)
    attacker.py bomb PORT PROTOCOL CONNECTIONS COUNT SIZE
        each connection offers permessage-deflate and sends COUNT messages compressed to
        about a thousandth of their SIZE bytes (zeros), and never reads
    attacker.py legit PORT PROTOCOL 1 1 SIZE
        not an attack: one message of SIZE bytes (8 MiB frames), then reads its echo and
        prints `echoed <bytes>`
    attacker.py normal PORT PROTOCOL 1 SECONDS
        not an attack: echoes 100-byte messages for SECONDS, then prints
        `normal echoes=<n> slowest_ms=<ms>` (exits 1 if an echo is missing or wrong)

Every connection upgrades first. Sending stops when everything was sent or when no socket
took a byte for STALL seconds (the server holds the peers back). Then the script prints one
line, `stalled sent=<bytes> connections=<n> blocked=<n>`, keeps the connections (or resets
them) for HOLD seconds, resets them and exits. (A peer that closes with unsent bytes leaves
its kernel holding the connection for minutes, sending nothing: the server cannot tell it
from a slow reader. A reset leaves.) Frames are masked with the key 0, so that the payload
needs no masking work here. Environment: ATTACK_STALL (default 1.5), ATTACK_HOLD (30).
"""

import functools
import os
import selectors
import zlib
import socket
import struct
import sys
import time

STALL = float(os.environ.get("ATTACK_STALL", "1.5"))
HOLD = float(os.environ.get("ATTACK_HOLD", "30"))
FRAGMENT = 8 * 1024 * 1024
CHUNK = memoryview(b"x" * (1024 * 1024))
REQUEST = (
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: {protocol}\r\n\r\n"
)


def header(opcode, final, length):
    """A masked frame header with the mask key 0."""
    first = (0x80 if final else 0) | opcode
    if length < 126:
        head = struct.pack("!BB", first, 0x80 | length)
    elif length < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, length)
    return head + b"\0\0\0\0"


def message_pieces(size):
    """The bytes of one binary message of `size` bytes, in pieces."""
    sent = 0
    first = True
    while True:
        length = min(FRAGMENT, size - sent)
        final = sent + length == size
        yield header(0x2 if first else 0x0, final, length)
        left = length
        while left > 0:
            piece = min(left, len(CHUNK))
            yield CHUNK[:piece]
            left -= piece
        sent += length
        first = False
        if final:
            return


def ping_pieces(count):
    ping = header(0x9, True, 125) + b"p" * 125
    batch = ping * 512
    while count > 0:
        take = min(count, 512)
        yield batch[: take * len(ping)]
        count -= take


def flood_pieces(count, size):
    for _ in range(count):
        yield from message_pieces(size)


@functools.lru_cache
def bomb_frame(size):
    """A message of SIZE zeros, compressed (made once for every connection)."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(1 << 20)
    compressed = bytearray()
    for _ in range(size // len(zeros)):
        compressed += deflater.compress(zeros)
    compressed += deflater.compress(bytes(size % len(zeros))) + deflater.flush(zlib.Z_SYNC_FLUSH)
    payload = bytes(compressed[:-4])
    frame = bytearray(header(0x2, True, len(payload)))
    frame[0] |= 0x40
    return bytes(frame) + payload


def bomb_pieces(count, size):
    """COUNT compressed messages of SIZE zeros, RSV1 set."""
    for _ in range(count):
        yield bomb_frame(size)


def upgraded(port, protocol, extensions=None):
    sock = socket.create_connection(("127.0.0.1", port))
    request = REQUEST.format(protocol=protocol)
    if extensions:
        request = request[:-2] + f"Sec-WebSocket-Extensions: {extensions}\r\n\r\n"
    sock.sendall(request.encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit("the server closed during the handshake")
        response += chunk
    if not response.startswith(b"HTTP/1.1 101"):
        raise SystemExit("not upgraded: " + response.split(b"\r\n")[0].decode())
    sock.setblocking(False)
    return sock


class Sender:
    """One connection and the bytes it still has to send."""

    def __init__(self, sock, pieces):
        self.sock = sock
        self.pieces = pieces
        self.current = memoryview(b"")
        self.done = False

    def send_some(self):
        """Sends what the socket takes now; the count sent."""
        total = 0
        while True:
            if not self.current:
                piece = next(self.pieces, None)
                if piece is None:
                    self.done = True
                    return total
                self.current = memoryview(piece)
            try:
                count = self.sock.send(self.current)
            except BlockingIOError:
                return total
            except OSError:
                self.done = True
                return total
            total += count
            self.current = self.current[count:]


def attack(senders):
    selector = selectors.DefaultSelector()
    for sender in senders:
        selector.register(sender.sock, selectors.EVENT_WRITE, sender)
    sent = 0
    last_progress = time.monotonic()
    while time.monotonic() - last_progress < STALL:
        events = selector.select(timeout=0.1)
        for key, _ in events:
            sender = key.data
            count = sender.send_some()
            if count:
                sent += count
                last_progress = time.monotonic()
            if sender.done:
                selector.unregister(sender.sock)
        if not selector.get_map():
            break
    blocked = sum(1 for sender in senders if not sender.done)
    return sent, blocked


def read_exactly(sock, count):
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(min(count - len(data), 1 << 20))
        if not chunk:
            raise SystemExit(f"closed after {len(data)} of {count} bytes")
        data += chunk
    return data


def read_message(sock):
    """The payload length of the next data message (frames joined), unmasked frames."""
    total = 0
    while True:
        first, second = read_exactly(sock, 2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", read_exactly(sock, 2))
        elif length == 127:
            (length,) = struct.unpack("!Q", read_exactly(sock, 8))
        read_exactly(sock, length)
        opcode = first & 0x0F
        if opcode == 0x8:
            raise SystemExit("closed by the server")
        if opcode < 0x8:
            total += length
            if first & 0x80:
                return total


def legit(port, protocol, size):
    sock = upgraded(port, protocol)
    sock.setblocking(True)
    for piece in message_pieces(size):
        sock.sendall(piece)
    print(f"echoed {read_message(sock)}", flush=True)
    sock.close()


def normal(port, protocol, seconds):
    sock = upgraded(port, protocol)
    sock.setblocking(True)
    sock.settimeout(10)
    echoes, slowest = 0, 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        payload = f"normal {echoes:094d}".encode()
        sock.sendall(header(0x2, True, len(payload)) + payload)
        if read_message(sock) != len(payload):
            raise SystemExit("a wrong echo")
        echoes += 1
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.01)
    print(f"normal echoes={echoes} slowest_ms={slowest * 1000:.1f}", flush=True)


def reset_all(senders):
    for sender in senders:
        if sender.sock.fileno() >= 0:
            sender.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sender.sock.close()


def main():
    mode, port, protocol, connections, count = sys.argv[1:6]
    port, connections, count = int(port), int(connections), int(count)
    size = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    if mode == "legit":
        legit(port, protocol, size)
        return
    if mode == "normal":
        normal(port, protocol, count)
        return
    senders = []
    for _ in range(connections):
        if mode == "bomb":
            sock = upgraded(port, protocol, "permessage-deflate")
            pieces = bomb_pieces(count, size)
        else:
            sock = upgraded(port, protocol)
            pieces = ping_pieces(count) if mode == "pings" else flood_pieces(count, size)
        senders.append(Sender(sock, pieces))
    sent, blocked = attack(senders)
    print(f"stalled sent={sent} connections={connections} blocked={blocked}", flush=True)
    if mode == "reset":
        reset_all(senders)
        print("reset", flush=True)
    time.sleep(HOLD)
    reset_all(senders)


if __name__ == "__main__":
    main()
