"""TensorBoard event files for `--report-to tensorboard`, without TensorFlow or the tensorboard package (neither is in
the worker's environment): a TFRecord file of `Event` protos, each a scalar `Summary`. Only the fields TensorBoard
reads for scalars are written (tensorflow/core/util/event.proto, summary.proto)."""

import os
import socket
import struct
import time

# The Castagnoli CRC (CRC-32C) TFRecord frames each length and record with; zlib's crc32 is a different polynomial.
_CRC32C_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C_TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _delimited(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _event(step: int, *fields: bytes) -> bytes:
    """Event: wall_time = 1 (double), step = 2 (int64), then the given fields."""
    return _varint(1 << 3 | 1) + struct.pack("<d", time.time()) + _varint(2 << 3) + _varint(step) + b"".join(fields)


def scalar_event(step: int, tag: str, value: float) -> bytes:
    """Event.summary = 5 → Summary.value = 1 → Value{tag = 1, simple_value = 2 (float)}."""
    summary_value = _delimited(1, tag.encode()) + _varint(2 << 3 | 5) + struct.pack("<f", value)
    return _event(step, _delimited(5, _delimited(1, summary_value)))


def file_version_event() -> bytes:
    return _event(0, _delimited(3, b"brain.Event:2"))


def restart_event(step: int) -> bytes:
    """Event.session_log = 7 → SessionLog{status = 1: START}: TensorBoard drops what earlier files logged at `step` and
    after, as a resumed run's metrics.jsonl drops what came after its checkpoint."""
    return _event(step, _delimited(7, _varint(1 << 3) + _varint(1)))


def record(data: bytes) -> bytes:
    """One TFRecord: length, its masked CRC, the data, its masked CRC."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))


def tag_of(key: str) -> str:
    """metrics.jsonl's names under TensorBoard's usual sections: eval_loss → eval/loss, exact_match → eval/exact_match."""
    if key.startswith("eval_"):
        return "eval/" + key[len("eval_") :]
    return ("eval/" if key == "exact_match" else "train/") + key


class EventWriter:
    """One event file under `folder` (a run's tensorboard/), flushed after each record so TensorBoard follows the run
    live. A resumed run writes a new file that starts with a restart at its checkpoint's step."""

    def __init__(self, folder: str, resumed_at: int = 0):
        os.makedirs(folder, exist_ok=True)
        stem = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}"
        count = 0
        while os.path.exists(os.path.join(folder, f"{stem}.{count}")):
            count += 1
        self.file = open(os.path.join(folder, f"{stem}.{count}"), "xb")
        self.file.write(record(file_version_event()))
        if resumed_at:
            self.file.write(record(restart_event(resumed_at + 1)))
        self.file.flush()

    def write(self, metrics: dict) -> None:
        """The record's numbers at its step (booleans and text, such as exact match's `when`, are not scalars)."""
        step = int(metrics.get("step", 0))
        for key, value in metrics.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.file.write(record(scalar_event(step, tag_of(key), float(value))))
        self.file.flush()
