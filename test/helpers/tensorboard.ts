import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A TensorBoard event-file reader for tests: TFRecord framing with both masked CRC-32Cs checked, and the Event fields
 * scalars use (step, file_version, summary.value{tag, simple_value}, session_log.status). Checked against a file that
 * torch.utils.tensorboard.SummaryWriter wrote (test/fixtures/tensorboard/).
 */
export interface TensorboardEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  scalars: { tag: string; value: number }[];
  sessionStatus?: number;
}

const CRC32C_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  return c >>> 0;
});

export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) crc = CRC32C_TABLE[(crc ^ b) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

const masked = (bytes: Uint8Array) => {
  const crc = crc32c(bytes);
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
};

function* fields(buf: Buffer): Generator<{ field: number; wire: number; value: number | Buffer; at: number }> {
  let pos = 0;
  const varint = () => {
    let value = 0;
    let scale = 1;
    for (;;) {
      const byte = buf[pos++];
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
  };
  while (pos < buf.length) {
    const tag = varint();
    const wire = tag & 7;
    const at = pos;
    if (wire === 0) yield { field: tag >>> 3, wire, value: varint(), at };
    else if (wire === 1) yield { field: tag >>> 3, wire, value: buf.readDoubleLE((pos += 8) - 8), at };
    else if (wire === 5) yield { field: tag >>> 3, wire, value: buf.readFloatLE((pos += 4) - 4), at };
    else if (wire === 2) {
      const length = varint();
      yield { field: tag >>> 3, wire, value: buf.subarray(pos, (pos += length)), at };
    } else throw new Error(`wire type ${wire} at ${pos}`);
  }
}

function decodeEvent(buf: Buffer): TensorboardEvent {
  const event: TensorboardEvent = { wallTime: 0, step: 0, scalars: [] };
  for (const f of fields(buf)) {
    if (f.field === 1) event.wallTime = f.value as number;
    else if (f.field === 2) event.step = f.value as number;
    else if (f.field === 3) event.fileVersion = String(f.value);
    else if (f.field === 5) {
      for (const v of fields(f.value as Buffer)) {
        if (v.field !== 1) continue;
        let tag = '';
        let value = Number.NaN;
        for (const x of fields(v.value as Buffer)) {
          if (x.field === 1) tag = String(x.value);
          else if (x.field === 2) value = x.value as number;
        }
        event.scalars.push({ tag, value });
      }
    } else if (f.field === 7) {
      for (const s of fields(f.value as Buffer)) if (s.field === 1) event.sessionStatus = s.value as number;
    }
  }
  return event;
}

/** Every event of one file, in order; throws on a bad length or data CRC. */
export function readEventFile(path: string): TensorboardEvent[] {
  const buf = readFileSync(path);
  const events: TensorboardEvent[] = [];
  for (let pos = 0; pos < buf.length; ) {
    const header = buf.subarray(pos, pos + 8);
    if (buf.readUInt32LE(pos + 8) !== masked(header)) throw new Error(`${path}: bad length CRC at byte ${pos}`);
    const length = Number(buf.readBigUInt64LE(pos));
    const data = buf.subarray(pos + 12, pos + 12 + length);
    if (buf.readUInt32LE(pos + 12 + length) !== masked(data)) throw new Error(`${path}: bad data CRC at byte ${pos + 12}`);
    events.push(decodeEvent(data));
    pos += 16 + length;
  }
  return events;
}

/**
 * [step, value] per tag over a log folder's event files, read in name order (a resumed run's file comes later), as
 * TensorBoard shows them: a SessionLog START at step N drops what came before it at step N and after.
 */
export function tensorboardScalars(folder: string): Record<string, [number, number][]> {
  const out: Record<string, [number, number][]> = {};
  const files = readdirSync(folder).filter((f) => f.startsWith('events.out.tfevents.'));
  for (const name of files.sort()) {
    for (const e of readEventFile(join(folder, name))) {
      if (e.sessionStatus === 1) for (const tag of Object.keys(out)) out[tag] = out[tag].filter(([step]) => step < e.step);
      for (const s of e.scalars) (out[s.tag] ??= []).push([e.step, s.value]);
    }
  }
  return out;
}
