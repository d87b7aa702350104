/**
 * Architecture guardrails over src/**: no circular imports (type-only ones included), imports flow one way between
 * the layers of STYLE.md (protocol <- transport <- tunnel <- server | agent | client <- cli), protocol/ uses no Node
 * built-in, and no file grows past about 400 lines unless it says why it reads better whole. Imports are parsed here
 * with a few regular expressions over comment-stripped source, so the check needs no dependency and no build.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

const SRC = join(ROOT, 'src');

/**
 * What each layer (top-level folder of src/) may import besides itself. `ops` (metrics, logging, health) is
 * cross-cutting: the roles use it, and it stands on protocol only. `kube` (the Kubernetes API client) stands on
 * protocol only too; the server's TokenReview uses it. `cli` and src/index.ts may import anything.
 */
const ALLOWED: Readonly<Record<string, readonly string[] | '*'>> = {
  protocol: [],
  transport: ['protocol'],
  tunnel: ['protocol', 'transport'],
  ops: ['protocol'],
  kube: ['protocol'],
  server: ['protocol', 'transport', 'tunnel', 'ops', 'kube'],
  agent: ['protocol', 'transport', 'tunnel', 'ops'],
  client: ['protocol', 'transport', 'tunnel', 'ops'],
  cli: '*',
  '': '*', // src/index.ts and any other file directly in src/
};

/**
 * Import circles that exist on main while issue 17 removes them; each must go once its circle is gone (the test
 * fails on a stale entry). Files relative to the project root, sorted, joined by ' <-> '.
 */
const KNOWN_CYCLES: readonly string[] = [];

/** Past this many lines a source file must open with a comment that says why it is kept whole. */
const MAX_FILE_LINES = 400;
/** The words that comment holds, followed by the reason (e.g. one state machine whose parts share its state). */
export const KEPT_WHOLE_MARKER = 'Kept whole:';
/** Files over the limit on main while issue 17 splits them; each must go once it is under (or says why). */
const KNOWN_LONG_FILES: readonly string[] = [];

/** True for a specifier that names a Node built-in module (`node:fs`, `fs`, `fs/promises`, `crypto`, ...). */
export function isNodeBuiltin(specifier: string): boolean {
  return specifier.startsWith('node:') || builtinModules.includes(specifier.split('/')[0]!);
}

/**
 * The files over `maxLines` lines whose source does not open with a comment holding {@link KEPT_WHOLE_MARKER}
 * and a reason after it.
 */
export function overLongWithoutReason(files: ReadonlyArray<{ path: string; source: string }>, maxLines: number): string[] {
  const out: string[] = [];
  for (const { path, source } of files) {
    const lines = source.split('\n').length - (source.endsWith('\n') ? 1 : 0);
    if (lines <= maxLines) continue;
    const head = /^\s*\/\*([\s\S]*?)\*\//.exec(source)?.[1] ?? '';
    const at = head.indexOf(KEPT_WHOLE_MARKER);
    const reason = at < 0 ? '' : head.slice(at + KEPT_WHOLE_MARKER.length).replace(/[\s*]+/g, ' ').trim();
    if (reason.length < 20) out.push(`${path} (${lines} lines)`);
  }
  return out;
}

/** One import of a source file. */
export interface ImportEdge {
  /** The specifier as written. */
  specifier: string;
  /** `import type` / `export type`: erased at compile time, so it cannot make a runtime cycle. */
  typeOnly: boolean;
}

/**
 * Remove comments and mask string literals: each literal becomes `"#N"`, its text kept in `literals[N]`. Masking
 * keeps import-like text inside strings (and quotes inside comments) from being read as imports.
 */
export function maskSource(source: string): { code: string; literals: string[] } {
  let code = '';
  const literals: string[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    const next = source[i + 1];
    if (c === '/' && next === '/') {
      while (i < source.length && source[i] !== '\n') i++;
    } else if (c === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      i = end < 0 ? source.length : end + 2;
      code += ' ';
    } else if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      while (j < source.length && source[j] !== c) {
        if (source[j] === '\\') j++;
        else if (c !== '`' && source[j] === '\n') break;
        j++;
      }
      code += `"#${literals.length}"`;
      literals.push(source.slice(i + 1, j));
      i = j + 1;
    } else {
      code += c;
      i++;
    }
  }
  return { code, literals };
}

/** Every static import/export-from, side-effect import and dynamic import() of a TypeScript source. */
export function parseImports(source: string): ImportEdge[] {
  const { code, literals } = maskSource(source);
  const edges: ImportEdge[] = [];
  const literal = (n: string): string => literals[Number(n)]!;
  // `import x from`, `import { a,\n b } from`, `export * from`, `export { a } from`, and their `type` forms. The
  // clause never holds a quote or a semicolon, which keeps a match inside one statement.
  const fromRe = /(?:^|[^\w$.])(import|export)(\s+type)?\s+([^;"]*?)\bfrom\s*"#(\d+)"/g;
  for (const m of code.matchAll(fromRe)) {
    // `import type X from` / `export type { X } from`. (`type` is also a legal binding name: `import type from 'x'`.)
    const typeOnly = m[2] !== undefined && m[3]!.trim() !== '';
    edges.push({ specifier: literal(m[4]!), typeOnly });
  }
  for (const m of code.matchAll(/(?:^|[^\w$.])import\s*"#(\d+)"/g)) {
    edges.push({ specifier: literal(m[1]!), typeOnly: false });
  }
  for (const m of code.matchAll(/(?:^|[^\w$.])(?:import|require)\s*\(\s*"#(\d+)"\s*\)/g)) {
    edges.push({ specifier: literal(m[1]!), typeOnly: false });
  }
  return edges;
}

function listSources(dir: string): string[] {
  const out: string[] = [];
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name === 'node_modules' || name === 'results') continue;
    if (statSync(path).isDirectory()) out.push(...listSources(path));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(path);
  }
  return out.sort();
}

/** The .ts file a relative specifier names (`./x.js` -> x.ts, `./dir/index.js`), or undefined. */
function resolveSpecifier(from: string, specifier: string, files: ReadonlySet<string>): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const base = resolve(dirname(from), specifier);
  const candidates = [base.replace(/\.(c|m)?js$/, '.$1ts'), base, `${base}.ts`, join(base, 'index.ts')];
  return candidates.find((c) => files.has(c));
}

/** The layer of a file: its top-level folder under src/ ('' for files directly in src/). */
function layerOf(file: string): string {
  const parts = relative(SRC, file).split(sep);
  return parts.length > 1 ? parts[0]! : '';
}

const rel = (file: string): string => relative(ROOT, file).split(sep).join('/');

interface Graph {
  files: string[];
  /** file -> [target file, typeOnly] */
  edges: Map<string, Array<[string, boolean]>>;
}

function buildGraph(): Graph {
  const files = listSources(SRC);
  const set = new Set(files);
  return { files, edges: edgesOf(files, set) };
}

/** file -> [resolved target, typeOnly] for every relative import of `files` that lands in `known`. */
function edgesOf(files: readonly string[], known: ReadonlySet<string>): Map<string, Array<[string, boolean]>> {
  const edges = new Map<string, Array<[string, boolean]>>();
  for (const file of files) {
    const out: Array<[string, boolean]> = [];
    for (const edge of parseImports(readFileSync(file, 'utf8'))) {
      const target = resolveSpecifier(file, edge.specifier, known);
      if (target) out.push([target, edge.typeOnly]);
    }
    edges.set(file, out);
  }
  return edges;
}

/** Strongly connected components with more than one file (or a file importing itself): the cycles. */
export function findCycles(nodes: readonly string[], next: (n: string) => readonly string[]): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  // Iterative Tarjan, so a deep import chain cannot overflow the call stack.
  for (const root of nodes) {
    if (idx.has(root)) continue;
    const work: Array<{ node: string; i: number }> = [{ node: root, i: 0 }];
    idx.set(root, index);
    low.set(root, index++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const succ = next(frame.node);
      if (frame.i < succ.length) {
        const w = succ[frame.i++]!;
        if (!idx.has(w)) {
          idx.set(w, index);
          low.set(w, index++);
          stack.push(w);
          onStack.add(w);
          work.push({ node: w, i: 0 });
        } else if (onStack.has(w)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, idx.get(w)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!));
      if (low.get(frame.node) === idx.get(frame.node)) {
        const component: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          component.push(w);
        } while (w !== frame.node);
        if (component.length > 1 || succ.includes(frame.node)) cycles.push(component.sort());
      }
    }
  }
  return cycles;
}

describe('import parser', () => {
  it('finds static, multi-line, re-export, side-effect and dynamic imports, and marks type-only ones', () => {
    const src = [
      "import { a } from './a.js';",
      'import {',
      '  b,',
      '  type B,',
      "} from '../b.js';",
      "import type { C } from './c.js';",
      "export * from './d.js';",
      "export type { E } from './e.js';",
      "export { f } from './f.js';",
      "import './g.js';",
      "const h = await import('./h.js');",
      "// import { x } from './commented.js';",
      "/* export * from './commented2.js'; */",
      "const s = 'import { y } from \"./in-string.js\"';",
      "import type from './type-is-a-name.js';",
    ].join('\n');
    const got = parseImports(src).map((e) => `${e.specifier}${e.typeOnly ? ' (type)' : ''}`);
    expect(got.sort()).toEqual(
      [
        './a.js',
        '../b.js',
        './c.js (type)',
        './d.js',
        './e.js (type)',
        './f.js',
        './g.js',
        './h.js',
        './type-is-a-name.js',
      ].sort(),
    );
  });

  it('recognizes Node built-ins with and without the node: prefix, and nothing else', () => {
    for (const s of ['node:fs', 'fs', 'fs/promises', 'crypto', 'net', 'node:test', 'buffer']) expect(isNodeBuiltin(s), s).toBe(true);
    for (const s of ['./crypto.js', '../net.js', 'ws', 'protobufjs', 'eventemitter3']) expect(isNodeBuiltin(s), s).toBe(false);
  });

  it('flags a long file unless it opens with a comment saying why it is kept whole', () => {
    const body = 'x\n'.repeat(10);
    const why = `/**\n * A state machine.\n * ${KEPT_WHOLE_MARKER} one state machine whose handlers share all its state.\n */\n`;
    const files = [
      { path: 'short.ts', source: 'x\n'.repeat(5) },
      { path: 'long.ts', source: body },
      { path: 'reasoned.ts', source: why + body },
      { path: 'no-reason.ts', source: `/** ${KEPT_WHOLE_MARKER} */\n${body}` },
      { path: 'marker-later.ts', source: `/** A file. */\n// ${KEPT_WHOLE_MARKER} because it is long enough to say so.\n${body}` },
    ];
    expect(overLongWithoutReason(files, 8)).toEqual(['long.ts (10 lines)', 'no-reason.ts (11 lines)', 'marker-later.ts (12 lines)']);
  });

  it('finds cycles, including self-imports, and none in a DAG', () => {
    const g: Record<string, string[]> = { a: ['b'], b: ['c'], c: ['a'], d: ['d'], e: ['a'] };
    expect(findCycles(Object.keys(g), (n) => g[n] ?? [])).toEqual([['a', 'b', 'c'], ['d']]);
    const dag: Record<string, string[]> = { a: ['b', 'c'], b: ['c'], c: [] };
    expect(findCycles(Object.keys(dag), (n) => dag[n] ?? [])).toEqual([]);
  });
});

describe('src/ architecture', () => {
  const graph = buildGraph();

  it('sees the imports (the parser is not silently blind)', () => {
    const targets = (graph.edges.get(join(SRC, 'transport', 'packet-stream.ts')) ?? []).map(([f]) => rel(f));
    expect(targets).toContain('src/protocol/errors.ts');
    expect(targets).toContain('src/protocol/packet.ts');
  });

  // Type-only circles count too: erased at run time, they still tie two modules so neither can be read, moved or
  // tested alone.
  it('has no circular imports, type-only ones included', () => {
    const all = (n: string): string[] => (graph.edges.get(n) ?? []).map(([f]) => f);
    const cycles = findCycles(graph.files, all).map((c) => c.map(rel).join(' <-> '));
    expect(cycles.filter((c) => !KNOWN_CYCLES.includes(c)), 'circular imports').toEqual([]);
    expect(KNOWN_CYCLES.filter((c) => !cycles.includes(c)), 'KNOWN_CYCLES entries whose circle is gone: remove them').toEqual([]);
  });

  it('protocol/ imports no Node built-in (it is pure)', () => {
    const violations: string[] = [];
    for (const file of graph.files) {
      if (layerOf(file) !== 'protocol') continue;
      for (const { specifier } of parseImports(readFileSync(file, 'utf8'))) {
        if (isNodeBuiltin(specifier)) violations.push(`${rel(file)} imports ${specifier}`);
      }
    }
    expect(violations).toEqual([]);
  });

  it(`no source file is over ${MAX_FILE_LINES} lines unless its opening comment says why it is kept whole`, () => {
    const files = graph.files.map((f) => ({ path: rel(f), source: readFileSync(f, 'utf8') }));
    const long = overLongWithoutReason(files, MAX_FILE_LINES);
    const name = (entry: string): string => entry.slice(0, entry.indexOf(' ('));
    expect(long.filter((e) => !KNOWN_LONG_FILES.includes(name(e))), `files over ${MAX_FILE_LINES} lines`).toEqual([]);
    const stale = KNOWN_LONG_FILES.filter((f) => !long.some((e) => name(e) === f));
    expect(stale, 'KNOWN_LONG_FILES entries now short enough (or kept whole with a reason): remove them').toEqual([]);
  });

  it('keeps every file in a known layer', () => {
    const unknown = [...new Set(graph.files.map(layerOf))].filter((l) => !(l in ALLOWED));
    expect(unknown, 'src/ folders with no layer rule in test/unit/protocol/circular.test.ts').toEqual([]);
  });

  it('imports flow one way between layers (STYLE.md)', () => {
    const violations: string[] = [];
    for (const [file, targets] of graph.edges) {
      const from = layerOf(file);
      const allowed = ALLOWED[from];
      for (const [target] of targets) {
        const to = layerOf(target);
        if (to === from || allowed === '*' || allowed === undefined) continue;
        if (!allowed.includes(to)) violations.push(`${rel(file)} (${from}) imports ${rel(target)} (${to})`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('the tunnel engine knows the PacketStream contract, never a concrete transport adapter', () => {
    const violations: string[] = [];
    for (const [file, targets] of graph.edges) {
      if (layerOf(file) !== 'tunnel') continue;
      for (const [target] of targets) {
        const path = rel(target);
        // src/transport/<adapter>/... and the transport barrel (which re-exports the adapters).
        const adapter = /^src\/transport\/[^/]+\//.test(path) || path === 'src/transport/index.ts';
        if (adapter) violations.push(`${rel(file)} imports ${path}`);
      }
    }
    expect(violations).toEqual([]);
  });

  // The barrels (src/<area>/index.ts) count as public too: they are what src/index.ts re-exports, and an area's
  // barrel may land in a benchmark before the lead wires it into src/index.ts.
  it('benchmarks use only the public entry points (src/index.ts and the area barrels)', () => {
    const violations: string[] = [];
    for (const [file, targets] of edgesOf(listSources(join(ROOT, 'bench')), new Set(graph.files))) {
      for (const [target] of targets) {
        if (!/^src\/([^/]+\/)*index\.ts$/.test(rel(target))) violations.push(`${rel(file)} imports ${rel(target)}`);
      }
    }
    expect(violations).toEqual([]);
  });

  // So a reader can paste an example into a project of their own: tsconfig.json "paths" maps the names to src/.
  it('examples import the package by name, through the entry points package.json exports, never src/', () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; exports: object };
    const exported = new Set(Object.keys(manifest.exports).map((k) => manifest.name + k.slice(1)));
    const violations: string[] = [];
    let byName = 0;
    for (const file of listSources(join(ROOT, 'examples'))) {
      for (const { specifier } of parseImports(readFileSync(file, 'utf8'))) {
        const ours = specifier === manifest.name || specifier.startsWith(`${manifest.name}/`);
        if (ours) byName++;
        if (ours && !exported.has(specifier)) violations.push(`${rel(file)} imports ${specifier}, not an entry point`);
        if (specifier.startsWith('.') && resolve(dirname(file), specifier).startsWith(SRC + sep)) {
          violations.push(`${rel(file)} imports ${specifier}`);
        }
      }
    }
    expect(violations).toEqual([]);
    expect(byName).toBeGreaterThan(0);
  });
});
