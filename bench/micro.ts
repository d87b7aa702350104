/**
 * Micro-benchmarks of the codec and the framers, ours against protobufjs (the generic protobuf library most Node
 * projects would use). Each case runs in a tight loop for a fixed time, repeated; the median is reported.
 *
 * Run alone with `npx tsx bench/micro.ts [--quick]`, or as part of `npm run bench`.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import {
  DelimitedMessageDecoder,
  GrpcMessageDecoder,
  PacketType,
  decodePacket,
  delimitedPrefix,
  encodeDataHeader,
  encodePacket,
  writeGrpcPrefix,
  GRPC_PREFIX_BYTES,
  type Packet,
} from '../src/index.js';
import { table } from './lib/format.js';
import { median } from './lib/stats.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

/** One micro-benchmark result: ours and, where protobufjs has an equivalent, theirs. */
export interface MicroResult {
  name: string;
  /** Bytes handled per operation (for MB/s), 0 when not meaningful. */
  bytesPerOp: number;
  oursNsPerOp: number;
  protobufjsNsPerOp: number | undefined;
  /** protobufjs time / our time: above 1 means ours is faster. */
  speedup: number | undefined;
}

interface Case {
  name: string;
  bytesPerOp: number;
  ours: () => unknown;
  theirs?: () => unknown;
}

/** Nanoseconds per call of `fn`, measured over about `ms` milliseconds. */
function time(fn: () => unknown, ms: number): number {
  // Calibrate a batch that takes about 5 ms, so the clock is read rarely.
  let batch = 1;
  for (;;) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) fn();
    const dt = Number(process.hrtime.bigint() - t0);
    if (dt > 5e6 || batch > 1e7) break;
    batch *= 2;
  }
  let ops = 0;
  const t0 = process.hrtime.bigint();
  const until = t0 + BigInt(Math.round(ms * 1e6));
  let now = t0;
  while (now < until) {
    for (let i = 0; i < batch; i++) fn();
    ops += batch;
    now = process.hrtime.bigint();
  }
  return Number(now - t0) / ops;
}

function cases(): Case[] {
  const root = new protobuf.Root().loadSync(resolve(ROOT, 'proto/konnectivity.proto'), { keepCase: true });
  const Pb = root.lookupType('Packet');
  const payload = Buffer.alloc(32 * 1024, 0x5a);
  const connectID = 123_456n;
  const data: Packet = { type: PacketType.DATA, data: { connectID, error: '', data: payload } };
  const dataPb = { type: PacketType.DATA, data: { connectID: 123_456, data: payload } };
  const dial: Packet = {
    type: PacketType.DIAL_REQ,
    dialRequest: { protocol: 'tcp', address: '10.96.0.1:443', random: 0x1234_5678_9abc_def0n },
  };
  const dialPb = {
    type: PacketType.DIAL_REQ,
    dialRequest: { protocol: 'tcp', address: '10.96.0.1:443', random: '1311768467463790320' },
  };
  const dataBytes = encodePacket(data);
  const dialBytes = encodePacket(dial);

  // A stream of 128 framed 32 KiB DATA packets (4 MiB), cut into 64 KiB chunks as a socket would deliver them.
  const count = 128;
  const grpcStream = Buffer.concat(
    Array.from({ length: count }, () => {
      const b = encodePacket(data, { reserve: GRPC_PREFIX_BYTES });
      writeGrpcPrefix(b, b.length - GRPC_PREFIX_BYTES);
      return b;
    }),
  );
  const delimStream = Buffer.concat(Array.from({ length: count }, () => [delimitedPrefix(dataBytes.length), dataBytes]).flat());
  const chunks = (b: Buffer) => Array.from({ length: Math.ceil(b.length / 65536) }, (_, i) => b.subarray(i * 65536, (i + 1) * 65536));
  const grpcChunks = chunks(grpcStream);
  const delimChunks = chunks(delimStream);

  let sink = 0;
  const decodeFramed = (decoder: { push(c: Uint8Array): Array<Buffer | Buffer[]> }, parts: Buffer[]) => {
    for (const c of parts) for (const m of decoder.push(c)) sink += decodePacket(m).type;
  };

  return [
    {
      name: 'encode DATA 32 KiB',
      bytesPerOp: dataBytes.length,
      ours: () => encodePacket(data),
      theirs: () => Pb.encode(dataPb).finish(),
    },
    {
      // What a transport can do instead: encode only the envelope and write the payload as a second buffer.
      name: 'encode DATA header only (zero-copy payload)',
      bytesPerOp: dataBytes.length,
      ours: () => encodeDataHeader(connectID, payload.length, GRPC_PREFIX_BYTES),
    },
    {
      name: 'decode DATA 32 KiB',
      bytesPerOp: dataBytes.length,
      ours: () => decodePacket(dataBytes),
      theirs: () => Pb.decode(dataBytes),
    },
    {
      name: 'encode DIAL_REQ',
      bytesPerOp: 0,
      ours: () => encodePacket(dial),
      theirs: () => Pb.encode(dialPb).finish(),
    },
    {
      name: 'decode DIAL_REQ',
      bytesPerOp: 0,
      ours: () => decodePacket(dialBytes),
      theirs: () => Pb.decode(dialBytes),
    },
    {
      name: 'gRPC framer + decode, 4 MiB in 64 KiB chunks',
      bytesPerOp: grpcStream.length,
      ours: () => decodeFramed(new GrpcMessageDecoder(), grpcChunks),
    },
    {
      // Half the messages straddle two chunks and are assembled in a buffer of their own.
      name: 'delimited framer + decode, 4 MiB in 64 KiB chunks',
      bytesPerOp: delimStream.length,
      ours: () => decodeFramed(new DelimitedMessageDecoder(), delimChunks),
    },
    {
      // protobufjs cannot frame a stream, so both get the whole buffer at once here.
      name: 'delimited framer + decode, one 4 MiB buffer',
      bytesPerOp: delimStream.length,
      ours: () => decodeFramed(new DelimitedMessageDecoder(), [delimStream]),
      theirs: () => {
        const r = protobuf.Reader.create(delimStream);
        while (r.pos < r.len) sink += (Pb.decodeDelimited(r) as unknown as { type: number }).type;
      },
    },
  ].map((c) => ({ ...c, sinkGuard: sink }));
}

/** Run every micro-benchmark `repeats` times for `ms` milliseconds each; medians. */
export function runMicro(options: { ms: number; repeats: number }): MicroResult[] {
  const out: MicroResult[] = [];
  for (const c of cases()) {
    const ours: number[] = [];
    const theirs: number[] = [];
    for (let r = 0; r < options.repeats; r++) {
      ours.push(time(c.ours, options.ms));
      if (c.theirs) theirs.push(time(c.theirs, options.ms));
    }
    const o = median(ours);
    const t = c.theirs ? median(theirs) : undefined;
    out.push({ name: c.name, bytesPerOp: c.bytesPerOp, oursNsPerOp: o, protobufjsNsPerOp: t, speedup: t === undefined ? undefined : t / o });
  }
  return out;
}

/** A printable table of micro results. */
export function formatMicro(results: MicroResult[]): string {
  const rows = [['micro-benchmark', 'ours', 'protobufjs', 'speed vs protobufjs']];
  const fmt = (ns: number, bytes: number) =>
    bytes ? `${((bytes / ns) * 1e3).toFixed(0)} MB/s` : `${(1e9 / ns / 1e6).toFixed(2)} M op/s`;
  for (const r of results) {
    rows.push([
      r.name,
      fmt(r.oursNsPerOp, r.bytesPerOp),
      r.protobufjsNsPerOp === undefined ? '-' : fmt(r.protobufjsNsPerOp, r.bytesPerOp),
      r.speedup === undefined ? '-' : `${r.speedup.toFixed(2)}x`,
    ]);
  }
  return table(rows);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes('--quick');
  console.log(formatMicro(runMicro({ ms: quick ? 100 : 300, repeats: quick ? 3 : 5 })));
}
