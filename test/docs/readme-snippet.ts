/** The README's first code block (the one with `memoryConnector`), as the tests run it verbatim. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The TypeScript of the README's first ```ts block that uses `memoryConnector`. */
export function readmeFirstSnippet(root: string): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const block = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!).find((code) => code.includes('memoryConnector'));
  if (block === undefined) throw new Error('README.md has no ```ts block with memoryConnector');
  return block;
}

/** What the snippet prints: the target's HTTP/1.0 reply, headers and body, through the tunnel. */
export const README_SNIPPET_OUTPUT = /^HTTP\/1\.[01] 200 OK\r\n[\s\S]*\r\n\r\nhello from behind the tunnel: \/\n$/;
