/**
 * Summarise .cpuprofile files (from `npm run bench -- --cpu-prof`): where each role's CPU time goes during one
 * scenario, by function and by source file, self time only; with `--callers=NAME`, also where the self time of
 * the functions named NAME (say `writeBuffer`, `createUnsafeBuffer`, `_copyActual`) is spent from: the nearest
 * caller outside node's internals, which names our code that asks for the work.
 * Usage: `npx tsx bench/profile-summary.ts [--top=20] [--callers=NAME,...] file.cpuprofile...`
 */
import { readFileSync } from 'node:fs';
import { basename, relative } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/**
 * Self time in microseconds by function and by file, busiest first. The profiler's own start (samples under
 * node:inspector's `post`, called from bench/lib/ipc.ts) is left out of the busy time.
 */
export function summarise(profile: Profile): { total: number; idle: number; byFunction: Array<[string, number]>; byFile: Array<[string, number]> } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const profiler = new Set<number>();
  for (const n of profile.nodes) {
    for (let p: number | undefined = n.id; p !== undefined; p = parent.get(p)) {
      const f = byId.get(p)!.callFrame;
      if (f.url === 'node:inspector') {
        profiler.add(n.id);
        break;
      }
    }
  }
  const fn = new Map<string, number>();
  const file = new Map<string, number>();
  let total = 0;
  let idle = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const f = byId.get(id)!.callFrame;
    if (profiler.has(id)) return;
    if (f.functionName === '(idle)') {
      idle += dt;
      return;
    }
    total += dt;
    const where = f.url ? shortUrl(f.url) : '';
    // tsx's output keeps a module on few lines, so line 1 says nothing; function names do.
    const key = `${f.functionName || '(anonymous)'} ${where}${where && f.lineNumber > 0 ? `:${f.lineNumber + 1}` : ''}`;
    fn.set(key, (fn.get(key) ?? 0) + dt);
    const fileKey = where || f.functionName;
    file.set(fileKey, (file.get(fileKey) ?? 0) + dt);
  });
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
  return { total, idle, byFunction: sorted(fn), byFile: sorted(file) };
}

/**
 * Self time of the functions named `name`, by their nearest caller in our code or a package (the first frame up the
 * stack that is neither node-internal nor native), busiest first.
 */
export function callersOf(profile: Profile, name: string): Array<[string, number]> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const out = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    if (byId.get(id)!.callFrame.functionName !== name) return;
    let p = parent.get(id);
    while (p !== undefined) {
      const f = byId.get(p)!.callFrame;
      if (f.url && !f.url.startsWith('node:')) break;
      p = parent.get(p);
    }
    const f = p === undefined ? undefined : byId.get(p)!.callFrame;
    const key = f ? `${f.functionName || '(anonymous)'} ${shortUrl(f.url)}` : '(no JS caller)';
    out.set(key, (out.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  return [...out].sort((a, b) => b[1] - a[1]);
}

function shortUrl(url: string): string {
  if (url.startsWith('node:')) return url;
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('node_modules/');
  return nm >= 0 ? path.slice(nm) : relative(process.cwd(), path);
}

if (process.argv[1]?.endsWith('profile-summary.ts')) {
  const top = Number(process.argv.find((a) => a.startsWith('--top='))?.slice(6) ?? 15);
  const callers = process.argv.find((a) => a.startsWith('--callers='))?.slice(10).split(',').filter(Boolean) ?? [];
  for (const path of process.argv.slice(2).filter((a) => !a.startsWith('--'))) {
    const profile = JSON.parse(readFileSync(path, 'utf8')) as Profile;
    const s = summarise(profile);
    const pct = (us: number) => `${((100 * us) / s.total).toFixed(1).padStart(5)}%`;
    console.log(`\n${basename(path)}: ${(s.total / 1e6).toFixed(2)} s busy, ${(s.idle / 1e6).toFixed(2)} s idle`);
    const share = (name: string) => pct(s.byFile.find(([k]) => k === name)?.[1] ?? 0).trim();
    console.log(`  garbage collection ${share('(garbage collector)')}, native outside JS (program) ${share('(program)')}`);
    console.log('  by file:');
    for (const [k, v] of s.byFile.slice(0, top)) console.log(`  ${pct(v)}  ${k}`);
    console.log('  by function:');
    for (const [k, v] of s.byFunction.slice(0, top)) console.log(`  ${pct(v)}  ${k}`);
    for (const name of callers) {
      console.log(`  ${name} called from:`);
      for (const [k, v] of callersOf(profile, name).slice(0, 6)) console.log(`  ${pct(v)}  ${k}`);
    }
  }
}
