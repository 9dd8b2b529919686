"""RFC 6455 conformance cases for a WebSocket client, spoken in raw frames.

usage: conformance_server.py PORT_FILE

A server whose request path names a case: `/case/<name>` does the opening handshake, sends
that case's crafted frames and checks what the client sends back; `/verdict/<name>` then
answers with one text message, `ok` or `FAIL why`, for the spec to assert. Each connection
runs in its own thread. The port is written to PORT_FILE as `conformance=<port>`.
"""

import base64
import hashlib
import os
import socketserver
import struct
import sys
import threading
import time

from frames import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, close_payload, frame

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

verdicts = {}
verdicts_lock = threading.Lock()


class Failure(Exception):
    pass


class Peer:
    """The client's side of the conversation, as the server sees it."""

    def __init__(self, handler):
        self.rfile, self.wfile = handler.rfile, handler.wfile

    def send(self, *frames):
        self.wfile.write(b"".join(frames))
        self.wfile.flush()

    def read_frame(self):
        head = self.rfile.read(2)
        if len(head) < 2:
            raise Failure("the client hung up without a close frame")
        first, second = head
        if not second & 0x80:
            raise Failure("the client sent an unmasked frame")
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self.rfile.read(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self.rfile.read(8))[0]
        key = self.rfile.read(4)
        data = bytes(b ^ key[i % 4] for i, b in enumerate(self.rfile.read(length)))
        return first & 0x0F, data

    def expect_close(self, code):
        opcode, data = self.read_frame()
        while opcode in (PONG,):
            opcode, data = self.read_frame()
        got = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
        if (opcode, got) != (CLOSE, code):
            raise Failure(f"expected the client's close {code}, got opcode {opcode} code {got}")
        # Complete the close handshake, as RFC 6455 5.5.1 asks; a client that failed the
        # connection may have hung up already.
        try:
            self.send(server_frame(CLOSE, data[:2]))
        except OSError:
            pass

    def expect_pong(self, payload):
        opcode, data = self.read_frame()
        if (opcode, data) != (PONG, payload):
            raise Failure(f"expected a pong with {payload!r}, got opcode {opcode} {data[:20]!r}")


CASES = {}


def case(function):
    CASES[function.__name__] = function
    return function


def server_frame(opcode, payload=b"", fin=True, rsv=0):
    """A frame as a server sends it: unmasked."""
    return frame(opcode, payload, fin=fin, rsv=rsv, masked=False)


def failing_case(name, expected_code, *frames):
    def run(peer):
        peer.send(*frames)
        peer.expect_close(expected_code)
    run.__name__ = name
    return case(run)


# frame() masks, as only a client may.
failing_case("masked_server_frame", 1002, frame(TEXT, b"masked"))
failing_case("invalid_utf8_text", 1007, server_frame(TEXT, b"bad \xff"))
failing_case("invalid_utf8_in_a_later_fragment", 1007,
             server_frame(TEXT, b"ok ", fin=False), server_frame(CONTINUATION, b"\xc3\x28"))
failing_case("reserved_bits", 1002, server_frame(TEXT, b"rsv", rsv=2))
failing_case("reserved_opcode", 1002, server_frame(5, b"what"))
failing_case("ping_over_125_bytes", 1002, server_frame(PING, b"x" * 126))
failing_case("fragmented_ping", 1002, server_frame(PING, b"half", fin=False))
failing_case("continuation_without_start", 1002, server_frame(CONTINUATION, b"orphan"))
failing_case("new_message_inside_fragmented_one", 1002,
             server_frame(TEXT, b"start", fin=False), server_frame(BINARY, b"restart"))
failing_case("close_with_reserved_code", 1002, server_frame(CLOSE, close_payload(1005)))
failing_case("close_with_one_byte_payload", 1002, server_frame(CLOSE, b"\x03"))
failing_case("message_over_the_client_limit", 1009, server_frame(BINARY, b"x" * 1025))


@case
def ping_then_message(peer):
    peer.send(server_frame(PING, bytes(range(125))))
    peer.expect_pong(bytes(range(125)))
    peer.send(server_frame(TEXT, b"after the ping"))
    peer.expect_close(1000)


@case
def unsolicited_pong_then_message(peer):
    peer.send(server_frame(PONG, b"nobody asked"), server_frame(TEXT, b"after the pong"))
    peer.expect_close(1000)


@case
def fragments_around_a_ping(peer):
    peer.send(server_frame(TEXT, b"one ", fin=False), server_frame(PING, b"mid"), server_frame(CONTINUATION, b"two"))
    peer.expect_pong(b"mid")
    peer.expect_close(1000)


@case
def server_close_is_echoed(peer):
    peer.send(server_frame(CLOSE, close_payload(4000, b"server done")))
    peer.expect_close(4000)


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        request = b""
        while not request.endswith(b"\r\n\r\n"):
            line = self.rfile.readline()
            if not line:
                return
            request += line
        lines = request.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        key = next(l.split(":", 1)[1].strip() for l in lines if l.lower().startswith("sec-websocket-key"))
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        self.wfile.write((
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        self.wfile.flush()
        kind, name = path.strip("/").split("/", 1)
        peer = Peer(self)
        if kind == "verdict":
            # The case's own thread may still be reading the client's last frame.
            verdict = "FAIL the case never finished"
            for _ in range(200):
                with verdicts_lock:
                    if name in verdicts:
                        verdict = verdicts.pop(name)
                        break
                time.sleep(0.01)
            peer.send(server_frame(TEXT, verdict.encode()), server_frame(CLOSE, close_payload(1000)))
            return
        try:
            CASES[name](peer)
            verdict = "ok"
        except Failure as failure:
            verdict = f"FAIL {failure}"
        except (OSError, KeyError) as error:
            verdict = f"FAIL {type(error).__name__}: {error}"
        with verdicts_lock:
            verdicts[name] = verdict


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    server = Server(("127.0.0.1", 0), Handler)
    port_file = sys.argv[1]
    with open(port_file + ".partial", "w") as out:
        out.write(f"conformance={server.server_address[1]}\n")
    os.replace(port_file + ".partial", port_file)
    server.serve_forever()
