/** A small synthetic benchmark run for the unit tests of the report, the targets, the JSON and the chart. */
import { emptyReference, type RefRate, type RunResults } from '../../../bench/lib/results.js';

const MB = 1e6;

function rate(path: RefRate['path'], stack: RefRate['stack'], dir: 'up' | 'down', conns: number, mbps: number, cpu?: [number, number]): RefRate {
  return { path, stack, dir, conns, rate: mbps * MB, samples: [mbps * MB], errors: 0, ...(cpu ? { cpu: { server: cpu[0], agent: cpu[1] } } : {}) };
}

/** A run with a konnbench section (ours 3x Go on HTTP-CONNECT up, short elsewhere) and a few Node-client paths. */
export function sampleRun(): RunResults {
  const reference = emptyReference('ok');
  reference.bulk.push(
    rate('raw', 'raw', 'up', 1, 2000), rate('raw', 'raw', 'down', 1, 1800),
    rate('connect', 'ts', 'up', 1, 600, [0.5, 0.5]), rate('connect', 'go', 'up', 1, 200, [2, 1]),
    rate('connect', 'ts', 'down', 1, 150, [3, 3]), rate('connect', 'go', 'down', 1, 200, [2, 2]),
    rate('grpcfe', 'ts', 'up', 1, 100, [4, 4]), rate('grpcfe', 'go', 'up', 1, 140, [2, 2]),
  );
  reference.longLink.push(
    rate('raw', 'raw', 'down', 1, 500), rate('connect', 'go', 'down', 1, 136), rate('connect', 'ts', 'down', 1, 40),
    rate('connect', 'go-server+ts-agent', 'down', 1, 150),
  );
  reference.dial.push(
    { path: 'raw', stack: 'raw', dialers: 1, rate: 3000, p50Ms: 0.3, p99Ms: 1, cycles: 3000, samples: [3000], errors: 0 },
    { path: 'connect', stack: 'ts', dialers: 1, rate: 2500, p50Ms: 0.5, p99Ms: 2, cycles: 2500, samples: [2500], errors: 0 },
    { path: 'connect', stack: 'go', dialers: 1, rate: 1000, p50Ms: 1, p99Ms: 4, cycles: 1000, samples: [1000], errors: 0 },
  );
  reference.idle.push(
    { path: 'connect', stack: 'ts', requested: 10_000, opened: 10_000, seconds: 5, serverBytesPerConn: 5 * 1024, agentBytesPerConn: 5 * 1024 },
    { path: 'connect', stack: 'go', requested: 10_000, opened: 10_000, seconds: 5, serverBytesPerConn: 27 * 1024, agentBytesPerConn: 18 * 1024 },
  );
  return {
    meta: { date: '2026-12-01T00:00:00.000Z', node: 'v20.0.0', cpus: '2 x Test CPU', loadavg: [1, 1, 1], loadavgStart: [0.5, 0.5, 0.5], seconds: 100 },
    paths: [
      {
        name: 'raw', label: 'raw TCP (baseline)', status: 'ok',
        bulk: [{ dir: 'up', conns: 1, rate: 600 * MB, samples: [600 * MB], verified: true, cpuPerGiB: { client: 1.5 } }],
        dial: [{ dialers: 1, rate: 3000, p50Ms: 0.3, p99Ms: 0.6, errors: 0, samples: [3000] }],
      },
      {
        name: 'yamux', label: 'dial(), yamux leg', status: 'ok',
        bulk: [{ dir: 'up', conns: 1, rate: 300 * MB, samples: [300 * MB], verified: true, cpuPerGiB: { server: 4, agent: 5 } }],
        idle: { requested: 300, opened: 300, seconds: 1, serverBytesPerConn: 11 * 1024, agentBytesPerConn: 3 * 1024 },
        slow: { pushedBytes: 6 << 20, heldBytes: 6 << 20, serverHeldDelta: 1.5 * 2 ** 20, agentHeldDelta: 0, otherRate: 290 * MB, otherVerified: true },
        cpuPerGiB: { server: 4, agent: 5 },
      },
      { name: 'connect-grpc', label: 'HTTP-CONNECT, gRPC leg', status: 'n/a', note: 'not built: httpConnect' },
    ],
    latency: [
      { name: 'raw', label: 'raw TCP (baseline)', status: 'ok', latency: [{ conns: 1, rate: 200 * MB, samples: [200 * MB], verified: true }] },
      { name: 'yamux', label: 'dial(), yamux leg', status: 'ok', latency: [{ conns: 1, rate: 120 * MB, samples: [120 * MB], verified: true }] },
    ],
    reference,
  };
}
