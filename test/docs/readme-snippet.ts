/** The README's TypeScript code blocks, as the tests type-check and run them verbatim. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Every ```ts block of README.md, in order. */
export function readmeSnippets(root: string): string[] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  return [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

/** The first block that contains `marker`. */
export function readmeSnippet(root: string, marker: string): string {
  const block = readmeSnippets(root).find((code) => code.includes(marker));
  if (block === undefined) throw new Error(`README.md has no \`\`\`ts block with ${marker}`);
  return block;
}

/** The README's first snippet: the one with `memoryConnector`. */
export function readmeFirstSnippet(root: string): string {
  return readmeSnippet(root, 'memoryConnector');
}

/** What the first snippet prints: the target's HTTP/1.0 reply, headers and body, through the tunnel. */
export const README_SNIPPET_OUTPUT = /^HTTP\/1\.[01] 200 OK\r\n[\s\S]*\r\n\r\nhello from behind the tunnel: \/\n$/;
