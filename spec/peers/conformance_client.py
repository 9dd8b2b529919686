"""RFC 6455 conformance cases for a WebSocket echo server, spoken in raw frames.

usage: conformance_client.py --list
       conformance_client.py ECHO_URL LIMITED_URL

Each case opens its own TCP connection, does the opening handshake by hand, sends crafted
frames and checks the server's answer against what RFC 6455 (sections 5 to 7) requires.
ECHO_URL echoes every message; LIMITED_URL echoes too, with max_message_size = 1024.
Prints one line per case: `case NAME ok` or `case NAME FAIL why`.
"""

import base64
import os
import socket
import struct
import sys
from urllib.parse import urlparse

from frames import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, close_payload, frame

TIMEOUT = 5


class Failure(Exception):
    pass


class Connection:
    def __init__(self, url):
        address = urlparse(url)
        self.sock = socket.create_connection((address.hostname, address.port), TIMEOUT)
        self.sock.settimeout(TIMEOUT)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {address.path or '/'} HTTP/1.1\r\nHost: {address.hostname}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.receive_some()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise Failure(f"handshake refused: {head[:40]!r}")

    def receive_some(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        return data

    def read_exactly(self, count):
        while len(self.buffer) < count:
            self.buffer += self.receive_some()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def send(self, *frames):
        self.sock.sendall(b"".join(frames))

    def read_frame(self):
        first, second = self.read_exactly(2)
        if second & 0x80:
            raise Failure("the server masked a frame")
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self.read_exactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self.read_exactly(8))[0]
        return first & 0x0F, bool(first & 0x80), self.read_exactly(length)

    def expect_message(self, opcode, payload):
        """The next data message, reassembled; fails on anything else."""
        got_opcode, fin, data = self.read_frame()
        while not fin:
            _, fin, more = self.read_frame()
            data += more
        if (got_opcode, data) != (opcode, payload):
            raise Failure(f"expected opcode {opcode} with {len(payload)} bytes, "
                          f"got opcode {got_opcode} with {len(data)} bytes {data[:20]!r}")

    def expect_pong(self, payload):
        opcode, _, data = self.read_frame()
        if (opcode, data) != (PONG, payload):
            raise Failure(f"expected a pong with {payload[:20]!r}, got opcode {opcode} {data[:20]!r}")

    def expect_close(self, *codes):
        """A close frame with one of `codes` (the server failing or closing the connection);
        data frames before it fail the case."""
        try:
            opcode, _, data = self.read_frame()
        except EOFError:
            raise Failure(f"connection dropped without a close frame (expected {codes})")
        if opcode != CLOSE:
            raise Failure(f"expected a close frame {codes}, got opcode {opcode} {data[:20]!r}")
        code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
        if code not in codes:
            raise Failure(f"expected close code {codes}, got {code}")

    def close_cleanly(self):
        self.send(frame(CLOSE, close_payload(1000)))
        self.expect_close(1000)


CASES = {}


def case(function):
    CASES[function.__name__] = function
    return function


# 5.2 framing: every length encoding, both directions.
@case
def framing_all_payload_lengths(urls):
    ws = Connection(urls["echo"])
    for length in (0, 1, 125, 126, 127, 65535, 65536, 100000):
        payload = bytes(range(256)) * (length // 256 + 1)
        ws.send(frame(BINARY, payload[:length]))
        ws.expect_message(BINARY, payload[:length])
    ws.close_cleanly()


@case
def framing_large_message_8_mib(urls):
    ws = Connection(urls["echo"])
    payload = b"x" * (8 * 1024 * 1024)
    ws.send(frame(BINARY, payload))
    ws.expect_message(BINARY, payload)
    ws.close_cleanly()


@case
def framing_unmasked_client_frame_fails_1002(urls):
    ws = Connection(urls["echo"])
    ws.send(frame(TEXT, b"not masked", masked=False))
    ws.expect_close(1002)


# 5.2 reserved bits and opcodes.
def reserved_bit_case(rsv):
    def run(urls):
        ws = Connection(urls["echo"])
        ws.send(frame(TEXT, b"reserved bits", rsv=rsv))
        ws.expect_close(1002)
    run.__name__ = f"reserved_bits_{rsv}_fail_1002"
    return case(run)


for _rsv in (1, 2, 4, 7):
    reserved_bit_case(_rsv)


def reserved_opcode_case(opcode):
    def run(urls):
        ws = Connection(urls["echo"])
        ws.send(frame(opcode, b"reserved opcode"))
        ws.expect_close(1002)
    run.__name__ = f"reserved_opcode_{opcode}_fails_1002"
    return case(run)


for _opcode in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15):
    reserved_opcode_case(_opcode)


# 5.5 control frames.
@case
def ping_with_125_bytes_gets_its_pong(urls):
    ws = Connection(urls["echo"])
    payload = bytes(range(125))
    ws.send(frame(PING, payload))
    ws.expect_pong(payload)
    ws.close_cleanly()


@case
def empty_ping_gets_empty_pong(urls):
    ws = Connection(urls["echo"])
    ws.send(frame(PING))
    ws.expect_pong(b"")
    ws.close_cleanly()


@case
def ping_over_125_bytes_fails_1002(urls):
    ws = Connection(urls["echo"])
    ws.send(frame(PING, b"x" * 126))
    ws.expect_close(1002)


@case
def fragmented_ping_fails_1002(urls):
    ws = Connection(urls["echo"])
    ws.send(frame(PING, b"first half", fin=False))
    ws.expect_close(1002)


@case
def unsolicited_pong_is_ignored(urls):
    ws = Connection(urls["echo"])
    ws.send(frame(PONG, b"nobody asked"), frame(TEXT, b"after the pong"))
    ws.expect_message(TEXT, b"after the pong")
    ws.close_cleanly()


# 5.4 fragmentation.
@case
def fragmented_text_arrives_whole(urls):
    ws = Connection(urls["echo"])
    ws.send(frame(TEXT, b"frag", fin=False), frame(CONTINUATION, b"men", fin=False),
            frame(CONTINUATION, b"ted"))
    ws.expect_message(TEXT, b"fragmented")
    ws.close_cleanly()


@case
def ping_between_fragments_is_answered_at_once(urls):
    ws = Connection(urls["echo"])
    ws.send(frame(TEXT, b"one ", fin=False), frame(PING, b"in between"),
            frame(CONTINUATION, b"two"))
    ws.expect_pong(b"in between")
    ws.expect_message(TEXT, b"one two")
    ws.close_cleanly()


@case
def many_fragments_arrive_whole(urls):
    ws = Connection(urls["echo"])
    pieces = [frame(BINARY, b"0123456789", fin=False)]
    pieces += [frame(CONTINUATION, b"0123456789", fin=False) for _ in range(998)]
    pieces.append(frame(CONTINUATION, b"0123456789"))
    ws.send(*pieces)
    ws.expect_message(BINARY, b"0123456789" * 1000)
    ws.close_cleanly()


@case
def continuation_without_start_fails_1002(urls):
    ws = Connection(urls["echo"])
    ws.send(frame(CONTINUATION, b"no start"))
    ws.expect_close(1002)


@case
def new_message_inside_fragmented_one_fails_1002(urls):
    ws = Connection(urls["echo"])
    ws.send(frame(TEXT, b"started", fin=False), frame(TEXT, b"another start"))
    ws.expect_close(1002)


# 8.1 UTF-8.
@case
def valid_utf8_split_inside_a_code_point_arrives_whole(urls):
    ws = Connection(urls["echo"])
    text = "κόσμε €𝄞".encode()
    ws.send(frame(TEXT, text[:3], fin=False), frame(CONTINUATION, text[3:]))
    ws.expect_message(TEXT, text)
    ws.close_cleanly()


@case
def invalid_utf8_text_fails_1007(urls):
    ws = Connection(urls["echo"])
    ws.send(frame(TEXT, b"bad \xff text"))
    ws.expect_close(1007)


@case
def invalid_utf8_in_a_later_fragment_fails_1007(urls):
    ws = Connection(urls["echo"])
    ws.send(frame(TEXT, "valid κ".encode(), fin=False), frame(CONTINUATION, b"\xed\xa0\x80"))
    ws.expect_close(1007)


@case
def invalid_utf8_fails_fast_before_the_message_ends(urls):
    ws = Connection(urls["echo"])
    # The message is never finished: the server must fail it on the bad fragment alone.
    ws.send(frame(TEXT, b"\xce\xba\xff", fin=False))
    ws.expect_close(1007)


# 7.4 and 5.5.1 closing.
def close_code_case(code, expected):
    def run(urls):
        ws = Connection(urls["echo"])
        ws.send(frame(CLOSE, close_payload(code, b"why")))
        ws.expect_close(expected)
    outcome = "is_echoed" if expected == code else f"fails_{expected}"
    run.__name__ = f"close_code_{code}_{outcome}"
    return case(run)


for _code in (1000, 1001, 1002, 1003, 1007, 1011, 3000, 4999):
    close_code_case(_code, _code)
for _code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535):
    close_code_case(_code, 1002)


@case
def close_without_payload_is_answered(urls):
    ws = Connection(urls["echo"])
    ws.send(frame(CLOSE))
    ws.expect_close(1000, None)


@case
def close_with_one_byte_payload_fails_1002(urls):
    ws = Connection(urls["echo"])
    ws.send(frame(CLOSE, b"\x03"))
    ws.expect_close(1002)


@case
def close_reason_with_invalid_utf8_fails(urls):
    ws = Connection(urls["echo"])
    ws.send(frame(CLOSE, close_payload(1000, b"\xff\xfe")))
    ws.expect_close(1007, 1002)


@case
def frames_after_close_are_ignored(urls):
    ws = Connection(urls["echo"])
    ws.send(frame(CLOSE, close_payload(1000)), frame(TEXT, b"too late"))
    ws.expect_close(1000)


# Limits.
@case
def handshake_request_over_64_kib_is_refused(urls):
    address = urlparse(urls["echo"])
    sock = socket.create_connection((address.hostname, address.port), TIMEOUT)
    sock.settimeout(TIMEOUT)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 70000 + b"\r\n\r\n")
        answer = sock.recv(100)
    except ConnectionResetError:
        answer = b""
    finally:
        sock.close()
    if answer and not answer.startswith(b"HTTP/1.1 400"):
        raise Failure(f"expected 400 or a hang-up, got {answer[:40]!r}")
    still_serving(urls["echo"])


@case
def message_over_the_limit_fails_1009(urls):
    ws = Connection(urls["limited"])
    ws.send(frame(BINARY, b"x" * 1025))
    ws.expect_close(1009)


@case
def fragments_adding_up_over_the_limit_fail_1009(urls):
    ws = Connection(urls["limited"])
    ws.send(frame(BINARY, b"x" * 600, fin=False), frame(CONTINUATION, b"x" * 600))
    ws.expect_close(1009)


@case
def message_at_the_limit_is_echoed(urls):
    ws = Connection(urls["limited"])
    ws.send(frame(BINARY, b"y" * 1024))
    ws.expect_message(BINARY, b"y" * 1024)
    ws.close_cleanly()


# Fuzzing: random input must never stop the server from serving others.
FUZZ_ROUNDS = int(os.environ.get("FUZZ_ROUNDS", "150"))
FUZZ_SEED = int(os.environ.get("FUZZ_SEED", "6455"))


def still_serving(url):
    ws = Connection(url)
    ws.send(frame(TEXT, b"still serving"))
    ws.expect_message(TEXT, b"still serving")
    ws.close_cleanly()


def random_frame(rng):
    opcode = rng.choice([0, 1, 2, 8, 9, 10, rng.randrange(16)])
    payload = rng.randbytes(rng.choice([0, 1, 2, 5, 125, 126, 300, 70000]))
    return frame(opcode, payload, fin=rng.random() < 0.7, rsv=rng.choice([0, 0, 0, 1]),
                 masked=rng.random() < 0.95)


@case
def fuzz_random_frames_leave_the_server_serving(urls):
    import random
    rng = random.Random(FUZZ_SEED)
    for _ in range(FUZZ_ROUNDS):
        ws = Connection(urls["echo"])
        data = b"".join(random_frame(rng) for _ in range(rng.randrange(1, 6)))
        if rng.random() < 0.3:  # cut somewhere inside a frame
            data = data[: rng.randrange(len(data) + 1)]
        try:
            ws.send(data)
            ws.sock.settimeout(0.2)
            while ws.receive_some():
                pass
        except (OSError, EOFError):
            pass
        ws.sock.close()
    still_serving(urls["echo"])


HANDSHAKE = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
             b"Sec-WebSocket-Protocol: a, b\r\n\r\n")


def mutated_handshake(rng):
    data = bytearray(HANDSHAKE)
    for _ in range(rng.randrange(1, 8)):
        choice = rng.random()
        position = rng.randrange(len(data))
        if choice < 0.4:
            data[position] = rng.randrange(256)
        elif choice < 0.7:
            del data[position: position + rng.randrange(1, 10)]
        else:
            data[position:position] = rng.randbytes(rng.randrange(1, 200))
    return bytes(data)


@case
def fuzz_mutated_handshakes_leave_the_server_serving(urls):
    import random
    rng = random.Random(FUZZ_SEED + 1)
    address = urlparse(urls["echo"])
    for _ in range(FUZZ_ROUNDS):
        sock = socket.create_connection((address.hostname, address.port), TIMEOUT)
        try:
            sock.sendall(mutated_handshake(rng))
            sock.settimeout(0.2)
            answer = sock.recv(200)
            if answer and not answer.startswith((b"HTTP/1.1 101", b"HTTP/1.1 400")):
                raise Failure(f"unexpected answer to a mutated handshake: {answer[:40]!r}")
        except (socket.timeout, ConnectionResetError):
            pass  # waiting for the rest of a request that will never come, or dropped
        finally:
            sock.close()
    still_serving(urls["echo"])


def main(arguments):
    if arguments[:1] == ["--list"]:
        print("\n".join(CASES))
        return
    urls = {"echo": arguments[0], "limited": arguments[1]}
    for name, run in CASES.items():
        try:
            run(urls)
            print(f"case {name} ok", flush=True)
        except Failure as failure:
            print(f"case {name} FAIL {failure}", flush=True)
        except (OSError, EOFError) as error:
            print(f"case {name} FAIL {type(error).__name__}: {error}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
