/**
 * Flag parity with the Go binaries, read from their own `--help`: every flag they list is accepted by our program
 * (or refused with exit 2 and a reason, exactly the ones the README's "refused flags" table lists), in the forms a
 * manifest writes it, and every default our `--help` prints is the Go program's; the -v=1 option dump reads as
 * theirs for the same flags.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { agentFlagSpecs, parseAgentOptions } from '../../../src/cli/agent-options.js';
import { FlagError } from '../../../src/cli/flags.js';
import { agentOptionLines, serverOptionLines } from '../../../src/cli/option-lines.js';
import { parseServerOptions, serverFlagSpecs } from '../../../src/cli/server-options.js';
import { ROOT } from '../../helpers/shared.js';
import { startProgram } from '../../integration/cli/processes.js';
import { describeKit, kit } from './kit.js';

/** One flag of a --help listing. `default` is as printed, quotes removed; undefined when none is printed. */
interface HelpFlag {
  name: string;
  short?: string;
  type: string;
  default: string | undefined;
}

/** Flags of a pflag (Go) or of our --help listing. */
function parseHelp(text: string): Map<string, HelpFlag> {
  const flags = new Map<string, HelpFlag>();
  for (const line of text.split('\n')) {
    const m = /^\s+(?:-(\w), )?--?([a-z0-9-]+)(?: ([A-Za-z0-9]+))?\s{2,}(.*)$/.exec(line);
    if (!m || m[2] === 'help') continue;
    const def = /\(default (.*)\)$/.exec(m[4]!)?.[1];
    flags.set(m[2]!, { name: m[2]!, ...(m[1] ? { short: m[1] } : {}), type: m[3] ?? 'bool', default: def?.replace(/^"(.*)"$/, '$1') });
  }
  return flags;
}

/** What pflag prints nothing for: a type's zero value. */
function zero(type: string): string {
  if (type === 'bool') return 'false';
  if (type === 'duration') return '0s';
  if (type === 'string' || type === 'strings' || type === 'moduleSpec' || type === 'traceLocation') return '';
  return '0';
}

/** Values a manifest may give a Go flag: its default, a non-default value of its type, both states of a bool. */
function samples(f: HelpFlag): string[] {
  const byType: Record<string, string> = { int: '7', uint: '7', float32: '2.5', duration: '90s', strings: 'a,b', Level: '3', moduleSpec: 'x=2', severity: '1' };
  if (f.type === 'bool') return [`--${f.name}`, `--${f.name}=false`, `--${f.name}=true`];
  const values = new Set([f.default ?? zero(f.type)]);
  if (f.default === undefined && byType[f.type]) values.add(byType[f.type]!);
  const forms = [...values].map((v) => `--${f.name}=${v}`);
  if (f.short) forms.push(`-${f.short}=${[...values][0]}`);
  return forms;
}

/** The README's "refused flags" table: `| program | flag | why |` rows after the `| refused flag` header. */
function readmeRefused(): Array<{ program: string; flag: string }> {
  const text = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = text.indexOf('| program | refused flag |');
  if (start < 0) return [];
  const rows = text.slice(start).split('\n').slice(2);
  const out: Array<{ program: string; flag: string }> = [];
  for (const row of rows) {
    const m = /^\| (konnectivity-server|konnectivity-agent) \| `(--[a-z0-9-]+)(?:=[^`]*)?` \|/.exec(row);
    if (!m) break;
    out.push({ program: m[1]!, flag: m[2]! });
  }
  return out;
}

const programs = [
  { ours: 'konnectivity-server', go: () => kit!.bin.proxyServer, parse: parseServerOptions },
  { ours: 'konnectivity-agent', go: () => kit!.bin.proxyAgent, parse: parseAgentOptions },
] as const;

describeKit('flag parity with the Go binaries', () => {
  for (const p of programs) {
    const goHelp = (): Map<string, HelpFlag> => {
      const r = spawnSync(p.go(), ['--help'], { encoding: 'utf8' });
      expect(r.status).toBe(0);
      const flags = parseHelp(r.stdout + r.stderr);
      expect(flags.size).toBeGreaterThan(40);
      return flags;
    };

    it(`${p.ours}: every flag of the Go program's --help is accepted, or refused with exit 2 as the README lists`, async () => {
      const refused: string[] = [];
      const problems: string[] = [];
      for (const f of goHelp().values()) {
        for (const arg of samples(f)) {
          try {
            p.parse([arg], {});
          } catch (err) {
            if (!(err instanceof FlagError)) throw err;
            refused.push(arg);
            if (!err.message.includes(`--${f.name}`)) problems.push(`${arg}: the reason does not name the flag: ${err.message}`);
          }
        }
      }
      expect(problems).toEqual([]);
      const listed = readmeRefused().filter((r) => r.program === p.ours);
      expect([...new Set(refused.map((a) => a.replace(/=.*/, '')))].sort()).toEqual([...new Set(listed.map((r) => r.flag))].sort());
      // The programs themselves exit 2 and say why.
      for (const arg of refused) {
        const run = startProgram(p.ours, [arg]);
        expect(await run.exited, `${p.ours} ${arg}`).toBe(2);
        expect(run.output()).toContain(arg.replace(/=.*/, ''));
      }
    });

    it(`${p.ours}: every default our --help prints is the Go program's`, async () => {
      const run = startProgram(p.ours, ['--help']);
      expect(await run.exited).toBe(0);
      const ours = parseHelp(run.output());
      const mismatches: string[] = [];
      for (const f of goHelp().values()) {
        const o = ours.get(f.name);
        if (!o) {
          mismatches.push(`--${f.name}: not in our --help`);
          continue;
        }
        const goDefault = f.default ?? zero(f.type);
        const ourDefault = o.default ?? zero(o.type);
        // A generated ID: Go prints the UUID it drew, ours says where the ID comes from.
        if (/^[0-9a-f]{8}-[0-9a-f]{4}-/.test(goDefault)) {
          if (!/random UUID/.test(ourDefault)) mismatches.push(`--${f.name}: Go draws a UUID, ours prints ${ourDefault}`);
        } else if (goDefault !== ourDefault) {
          mismatches.push(`--${f.name}: Go ${JSON.stringify(goDefault)}, ours ${JSON.stringify(ourDefault)}`);
        }
      }
      expect(mismatches).toEqual([]);
    });
  }
});

/** The `X set to Y.` lines of a Go program's -v=1 output, without their headers. */
function goOptionLines(bin: string, args: string[]): string[] {
  // Both runs stop right after the dump: the server refuses the reserved port, the agent cannot read its CA.
  const r = spawnSync(bin, ['--v=1', ...args], { encoding: 'utf8', timeout: 20_000 });
  return (r.stdout + r.stderr).split('\n').flatMap((l) => {
    const m = /^I\d{4} [\d:.]+ +\d+ options\.go:\d+\] (.* set to .*)$/.exec(l);
    return m ? [m[1]!] : [];
  });
}

describeKit('the -v=1 option dump of the Go binaries', () => {
  it('konnectivity-server prints the same lines as proxy-server for the same flags', () => {
    const args = [
      '--server-id=s1', '--mode=http-connect', '--uds-name=/run/konn "x".sock', '--agent-port=1', '--proxy-strategies=destHost,default',
      '--kubeconfig-qps=0.5', '--keepalive-time=90s', '--frontend-keepalive-time=1500ms', '--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_AES_128_GCM_SHA256',
      '--lease-label=a=b', '--enable-lease-controller', '--server-count=3', '--xfr-channel-size=20',
    ];
    const go = goOptionLines(kit!.bin.proxyServer, args);
    expect(go.length).toBeGreaterThan(30);
    expect(serverOptionLines(serverFlagSpecs(), parseServerOptions(args, {}).parsed, 's1')).toEqual(go);
  });

  it('konnectivity-agent prints the same lines as proxy-agent for the same flags', () => {
    const args = [
      '--agent-id=a1', '--ca-cert=/nonexistent/ca.crt', '--proxy-server-port=1', '--health-server-host=127.0.0.1', '--health-server-port=1', '--admin-server-port=1',
      '--alpn-proto=h2,http/1.1', '--agent-identifiers=host=localhost', '--sync-interval=1500ms', '--lease-label=a=b', '--count-server-leases', '--server-count-source=max',
    ];
    const go = goOptionLines(kit!.bin.proxyAgent, args);
    expect(go.length).toBeGreaterThan(20);
    expect(agentOptionLines(agentFlagSpecs(), parseAgentOptions(args, {}).parsed, 'a1')).toEqual(go);
  });
});
