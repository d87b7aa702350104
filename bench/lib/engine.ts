/**
 * The one place where the benchmark meets the library. It takes each piece from the package's public entry point
 * (src/index.ts) and, for pieces not exported there yet, from the module that defines them, so a path runs as soon
 * as its pieces are on main. A piece that does not exist makes its paths "n/a (not built)".
 */
/* eslint-disable @typescript-eslint/no-explicit-any */

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
  createHttpConnectFrontend?: any;
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
  for (const spec of MODULES) {
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
