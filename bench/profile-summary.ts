/**
 * Summarise .cpuprofile files (from `npm run bench -- --cpu-prof`): where each role's CPU time goes during one
 * scenario, by function and by source file, self time only.
 * Usage: `npx tsx bench/profile-summary.ts [--top=20] file.cpuprofile...`
 */
import { readFileSync } from 'node:fs';
import { basename, relative } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time in microseconds by function and by file, busiest first. */
export function summarise(profile: Profile): { total: number; idle: number; byFunction: Array<[string, number]>; byFile: Array<[string, number]> } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const fn = new Map<string, number>();
  const file = new Map<string, number>();
  let total = 0;
  let idle = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const f = byId.get(id)!.callFrame;
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

function shortUrl(url: string): string {
  if (url.startsWith('node:')) return url;
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('node_modules/');
  return nm >= 0 ? path.slice(nm) : relative(process.cwd(), path);
}

if (process.argv[1]?.endsWith('profile-summary.ts')) {
  const top = Number(process.argv.find((a) => a.startsWith('--top='))?.slice(6) ?? 15);
  for (const path of process.argv.slice(2).filter((a) => !a.startsWith('--'))) {
    const s = summarise(JSON.parse(readFileSync(path, 'utf8')) as Profile);
    const pct = (us: number) => `${((100 * us) / s.total).toFixed(1).padStart(5)}%`;
    console.log(`\n${basename(path)}: ${(s.total / 1e6).toFixed(2)} s busy, ${(s.idle / 1e6).toFixed(2)} s idle`);
    const share = (name: string) => pct(s.byFile.find(([k]) => k === name)?.[1] ?? 0).trim();
    console.log(`  garbage collection ${share('(garbage collector)')}, native outside JS (program) ${share('(program)')}`);
    console.log('  by file:');
    for (const [k, v] of s.byFile.slice(0, top)) console.log(`  ${pct(v)}  ${k}`);
    console.log('  by function:');
    for (const [k, v] of s.byFunction.slice(0, top)) console.log(`  ${pct(v)}  ${k}`);
  }
}
