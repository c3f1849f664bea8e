"""lib0 binary encoding, the one Yjs and y-protocols use: varUints, length-prefixed bytes and
strings, and the tagged "any" values. Decoding is total: malformed input raises the error
class the caller chose, nothing else.
"""

from __future__ import annotations

# lib0 reads varUints into JS numbers: anything past 2**53 cannot come from a real peer.
MAX_VAR_UINT = 2**53 - 1
# yrs (under pycrdt) keeps clocks in 32 bits: a clock or state past this wraps around.
MAX_CLOCK = 2**32 - 1
_MAX_VAR_UINT_BYTES = 8


class Reader:
    """A cursor over bytes that raises `error` instead of running off the end."""

    __slots__ = ("data", "error", "pos")

    def __init__(self, data: bytes, error: type[Exception] = ValueError) -> None:
        self.data = data
        self.error = error
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def done(self) -> None:
        if self.remaining:
            raise self.error(f"{self.remaining} trailing bytes after the message")

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise self.error("unexpected end of data")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def skip(self, size: int) -> None:
        if size > self.remaining:
            raise self.error("unexpected end of data")
        self.pos += size

    def var_uint(self) -> int:
        # Every update is read here byte by byte before pycrdt sees it (crdt/validation.py),
        # and client ids take 5-8 bytes: one straight loop, no range(), no per-byte bounds
        # check (running off the end raises IndexError once).
        data, pos = self.data, self.pos
        try:
            byte = data[pos]
            if byte < 0x80:
                self.pos = pos + 1
                return byte
            value = byte & 0x7F
            shift = 7
            pos += 1
            while True:
                byte = data[pos]
                pos += 1
                if byte < 0x80:
                    value |= byte << shift
                    break
                value |= (byte & 0x7F) << shift
                shift += 7
                if shift == 7 * _MAX_VAR_UINT_BYTES:
                    self.pos = pos
                    raise self.error("varUint too long")
        except IndexError:
            self.pos = len(data)
            raise self.error("truncated varUint") from None
        self.pos = pos
        if value > MAX_VAR_UINT:
            raise self.error("varUint out of range")
        return value

    def skip_var_int(self) -> None:
        for _ in range(_MAX_VAR_UINT_BYTES):
            if self.byte() < 0x80:
                return
        raise self.error("varInt too long")

    def var_bytes(self) -> bytes:
        length = self.var_uint()
        if length > self.remaining:
            raise self.error(f"truncated payload: {length} bytes announced, {self.remaining} left")
        self.pos += length
        return bytes(self.data[self.pos - length : self.pos])

    def var_string(self) -> str:
        try:
            return self.var_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise self.error("string is not valid UTF-8") from None

    def state_vector(self) -> dict[int, int]:
        """An encoded state vector: client id -> clock, every clock within 32 bits."""
        count = self.var_uint()
        if count > self.remaining // 2:  # every entry takes at least two bytes
            raise self.error("state vector announces more entries than it holds")
        vector = {}
        for _ in range(count):
            client = self.var_uint()
            vector[client] = clock = self.var_uint()
            if clock > MAX_CLOCK:  # yrs keeps clocks in 32 bits: it must never read a larger one
                raise self.error(f"state vector clock {clock} of client {client} is past 32 bits")
        return vector

    def skip_any(self) -> None:
        """Skip one lib0 "any" value: a type tag, then the value."""
        tag = self.byte()
        if tag in (127, 126, 121, 120):  # undefined, null, false, true
            return
        if tag == 125:  # varInt
            self.skip_var_int()
        elif tag == 124:  # float32
            self.skip(4)
        elif tag in (123, 122):  # float64, bigint64
            self.skip(8)
        elif tag in (119, 116):  # string, Uint8Array
            self.var_bytes()
        elif tag == 118:  # object
            for _ in range(self.var_uint()):
                self.var_bytes()
                self.skip_any()
        elif tag == 117:  # array
            for _ in range(self.var_uint()):
                self.skip_any()
        else:
            raise self.error(f"unknown any tag {tag}")


def write_var_uint(value: int) -> bytes:
    if not 0 <= value <= MAX_VAR_UINT:
        raise ValueError(f"varUint out of range: {value}")
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def write_var_bytes(data: bytes) -> bytes:
    return write_var_uint(len(data)) + data


def write_var_string(text: str) -> bytes:
    # The length is the UTF-8 byte count (pycrdt's Encoder writes the character count).
    return write_var_bytes(text.encode("utf-8"))
