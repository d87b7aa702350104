/**
 * The one place where the benchmark meets the library. It takes each piece from the package's public entry point:
 * the built package (bench/lib/build.ts) when the run made one ({@link BUILD_ENV}), else src/index.ts through tsx
 * and, for pieces not exported there yet, the module that defines them, so a path runs as soon as its pieces are
 * on main. A piece that does not exist makes its paths "n/a (not built)".
 */
/* eslint-disable @typescript-eslint/no-explicit-any */
import { existsSync, readFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BUILD_ENV } from './build.js';

/** Library pieces the benchmark uses, by their exported names. */
export interface Lib {
  ProxyServer?: any;
  Agent?: any;
  createMemoryPair?: any;
  createGrpcServer?: any;
  grpcAgentConnector?: any;
  openProxyStream?: any;
  GrpcConnection?: any;
  dialOverStream?: any;
  createYamuxServer?: any;
  yamuxAgentConnector?: any;
  tcpCarrier?: any;
  tlsCarrier?: any;
  createHttpConnectFrontend?: any;
  /** The framers, for the receive trace (bench/lib/rx-trace.ts). */
  GrpcMessageDecoder?: any;
  DelimitedMessageDecoder?: any;
}

const MODULES = [
  '../../src/index.js',
  '../../src/server/index.js',
  '../../src/server/proxy-server.js',
  '../../src/agent/index.js',
  '../../src/client/index.js',
  '../../src/transport/grpc/index.js',
  '../../src/transport/yamux/index.js',
  '../../src/server/frontends/http-connect/index.js',
];

let loaded: Lib | undefined;
/** Why a module could not be loaded (for `--verbose`). */
export const loadErrors: Record<string, string> = {};

/** Import every module that exists; the public entry point wins where names repeat. */
export async function loadLib(): Promise<Lib> {
  if (loaded) return loaded;
  const lib: Record<string, unknown> = {};
  const build = process.env[BUILD_ENV];
  const specs = build ? [pathToFileURL(resolve(build, 'index.js')).href] : MODULES;
  for (const spec of specs) {
    try {
      const url = new URL(spec, import.meta.url).href;
      const mod = (await import(url)) as Record<string, unknown>;
      for (const [k, v] of Object.entries(mod)) if (!(k in lib)) lib[k] = v;
    } catch (err) {
      loadErrors[spec] = (err as Error).message.split('\n')[0]!;
    }
  }
  loaded = lib as Lib;
  return loaded;
}

/** The agent legs and frontends the benchmark can drive, and whether this checkout has them. */
export function availability(lib: Lib): Record<'engine' | 'grpcLeg' | 'yamuxLeg' | 'httpConnect' | 'grpcFrontend', boolean> {
  const fn = (x: unknown) => typeof x === 'function';
  const engine = fn(lib.ProxyServer) && fn(lib.Agent);
  return {
    engine: engine && fn(lib.createMemoryPair),
    grpcLeg: engine && fn(lib.createGrpcServer) && fn(lib.grpcAgentConnector),
    yamuxLeg: engine && fn(lib.createYamuxServer) && fn(lib.yamuxAgentConnector) && fn(lib.tcpCarrier),
    httpConnect: engine && fn(lib.createHttpConnectFrontend),
    grpcFrontend: engine && fn(lib.createGrpcServer) && fn(lib.openProxyStream) && fn(lib.dialOverStream) && fn(lib.GrpcConnection),
  };
}

/** The konnectivity-ts programs (built, or the sources run through tsx), or what is missing. */
export function cliPrograms(): { server: string; agent: string } | { missing: string } {
  const build = process.env[BUILD_ENV];
  const server = build ? resolve(build, 'cli/konnectivity-server.js') : fileURLToPath(new URL('../../src/cli/konnectivity-server.ts', import.meta.url));
  const agent = build ? resolve(build, 'cli/konnectivity-agent.js') : fileURLToPath(new URL('../../src/cli/konnectivity-agent.ts', import.meta.url));
  const missing = [server, agent].filter((f) => !existsSync(f));
  return missing.length ? { missing: `not built: ${missing.map((f) => relative(process.cwd(), f)).join(', ')}` } : { server, agent };
}

/** mTLS material for the yamux-over-TLS paths: the tests' throw-away certificates (server for 127.0.0.1/localhost). */
export function benchTls(): { server: Record<string, Buffer | boolean>; client: Record<string, Buffer> } {
  const pem = (name: string) => readFileSync(new URL(`../../test/integration/http-connect/fixtures/${name}`, import.meta.url));
  return {
    server: { key: pem('server-key.pem'), cert: pem('server.pem'), ca: pem('ca.pem'), requestCert: true, rejectUnauthorized: true },
    client: { key: pem('client-key.pem'), cert: pem('client.pem'), ca: pem('ca.pem') },
  };
}
