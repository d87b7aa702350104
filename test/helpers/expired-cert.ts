/**
 * A client certificate signed by the test CA (`testPki()`) whose validity ended in 2020, made with `openssl ca`
 * (plain `openssl x509` cannot set dates in the past).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { testPki } from '../integration/grpc/helpers.js';

let made: { cert: Buffer; key: Buffer } | undefined;

export function expiredClientCert(): { cert: Buffer; key: Buffer } {
  if (made) return made;
  const dir = fs.mkdtempSync(path.join(testPki().dir, 'expired-'));
  const run = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  fs.writeFileSync(path.join(dir, 'index.txt'), '');
  fs.writeFileSync(path.join(dir, 'serial'), '1000\n');
  fs.writeFileSync(
    path.join(dir, 'ca.cnf'),
    ['[ca]', 'default_ca = d', '[d]', 'database = index.txt', 'new_certs_dir = .', 'serial = serial', 'default_md = sha256', 'policy = p', 'x509_extensions = e', '[p]', 'commonName = supplied', '[e]', 'extendedKeyUsage = clientAuth', ''].join('\n'),
  );
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'expired.key', '-out', 'expired.csr', '-subj', '/CN=expired-agent');
  const pki = testPki();
  run('ca', '-batch', '-config', 'ca.cnf', '-cert', pki.files.ca, '-keyfile', path.join(pki.dir, 'test-ca.key'), '-in', 'expired.csr', '-out', 'expired.crt', '-startdate', '20200101000000Z', '-enddate', '20200102000000Z');
  made = { cert: fs.readFileSync(path.join(dir, 'expired.crt')), key: fs.readFileSync(path.join(dir, 'expired.key')) };
  return made;
}
