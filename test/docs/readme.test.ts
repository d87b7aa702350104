/**
 * The README's code, verbatim from the checkout (the package name resolves to src/ through tsconfig's paths, as for
 * the examples): every ```ts block type-checks with the project's strict options, the first snippet prints the
 * target's reply and exits by itself, and the http/fetch block, called with a server whose agent reaches a loopback
 * target, prints both answers. test/build/package.test.ts runs the first block against the installed tarball.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { README_SNIPPET_OUTPUT, readmeFirstSnippet, readmeSnippet, readmeSnippets } from './readme-snippet.js';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DIR = join(ROOT, '.tmp', `readme-${process.pid}`);

/** Run a TypeScript file of DIR with tsx, from the checkout. */
async function runTs(name: string, code: string): Promise<{ stdout: string; stderr: string }> {
  const file = join(DIR, name);
  writeFileSync(file, code);
  return run(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, timeout: 60_000 });
}

beforeAll(() => mkdirSync(DIR, { recursive: true }));
afterAll(() => rmSync(DIR, { recursive: true, force: true }));

describe('README', () => {
  it('every ts block type-checks (strict, the project options)', () => {
    const blocks = readmeSnippets(ROOT);
    expect(blocks.length).toBeGreaterThanOrEqual(2);
    const files = blocks.map((code, i) => {
      const file = join(DIR, `block-${i}.mts`);
      writeFileSync(file, code);
      return file;
    });
    const config = ts.getParsedCommandLineOfConfigFile(join(ROOT, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
    if (config === undefined) throw new Error('tsconfig.json could not be read');
    const program = ts.createProgram(files, { ...config.options, noEmit: true });
    const diagnostics = files.flatMap((f) => ts.getPreEmitDiagnostics(program, program.getSourceFile(f)));
    const text = diagnostics.map((d) => {
      const where = d.file ? `${relative(DIR, d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}` : '';
      return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
    });
    expect(text).toEqual([]);
  }, 120_000);

  it('the first snippet (ProxyServer, Agent, ServerTunnels, memoryConnector) prints the reply and exits', async () => {
    const { stdout, stderr } = await runTs('snippet.mts', readmeFirstSnippet(ROOT));
    expect(stderr).toBe('');
    expect(stdout).toMatch(README_SNIPPET_OUTPUT);
  });

  it('the http and fetch block, given a server whose agent reaches a loopback target, prints both answers', async () => {
    writeFileSync(join(DIR, 'ask.mts'), readmeSnippet(ROOT, 'createDialDispatcher'));
    const { stdout, stderr } = await runTs(
      'ask-driver.mts',
      `import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { Agent, ProxyServer, memoryConnector } from 'konnectivity-ts';
import { askThroughTheTunnel } from './ask.mts';

const target = http.createServer((req, res) => res.end(req.url + ' answered\\n'));
await once(target.listen(0, '127.0.0.1'), 'listening');
const { port } = target.address() as net.AddressInfo;
// The block's 10.0.0.5:8080 stands for a node behind the agent: this agent's dialer takes it to the loopback target.
const dialed: string[] = [];
const agent = new Agent({
  agentID: 'node-1',
  dialer: async ({ address }) => {
    dialed.push(address);
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    return socket;
  },
});
const server = new ProxyServer({ serverID: 'server-1' });
await agent.connect(memoryConnector((incoming) => void server.acceptAgent(incoming)));
await askThroughTheTunnel(server);
process.stdout.write('dialed ' + dialed.join(' ') + '\\n');
await agent.close();
await server.close();
target.closeAllConnections();
target.close();
`,
    );
    expect(stderr).toBe('');
    expect(stdout).toBe('/healthz answered\n/ answered\ndialed 10.0.0.5:8080 10.0.0.5:8080\n');
  });
});
