/**
 * Every exported declaration of the public entry points (package.json "exports": the root and each subpath) has a
 * doc comment, and so does every public member of an exported class or interface. Read with the TypeScript
 * compiler API over the entry points' sources, so a new export without TSDoc fails here. Members that override a
 * base (`override`), private and protected members, `@internal` ones, and names starting with `_` (Node's stream
 * hooks) are not asked for one; constructors neither (their class is documented).
 */
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };

/** src/ file of each entry point: `.` is src/index.ts, `./client` is src/client/index.ts. */
const ENTRY_FILES = Object.keys(manifest.exports)
  .filter((e) => e !== './package.json')
  .map((e) => join(ROOT, 'src', e === '.' ? 'index.ts' : `${e.slice(2)}/index.ts`));

function hasDoc(node: ts.Node): boolean {
  // JSDoc is attached to the declaration, or to its statement for `export const x = ...`.
  const target = ts.isVariableDeclaration(node) ? node.parent.parent : node;
  return ts.getJSDocCommentsAndTags(target).some((d) => ts.isJSDoc(d) && (d.comment !== undefined || (d.tags?.length ?? 0) > 0));
}

function isInternal(node: ts.Node): boolean {
  return ts.getJSDocTags(node).some((t) => t.tagName.text === 'internal');
}

function hasModifier(node: ts.Node, kind: ts.SyntaxKind): boolean {
  return ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((m) => m.kind === kind);
}

/** Where a declaration is, for the failure message. */
function where(node: ts.Node): string {
  const sf = node.getSourceFile();
  const { line } = sf.getLineAndCharacterOfPosition(node.getStart());
  return `${relative(ROOT, sf.fileName)}:${line + 1}`;
}

/** The undocumented exports and public members, as `name (file:line)`. */
function undocumented(): { exports: string[]; members: string[] } {
  const program = ts.createProgram(ENTRY_FILES, {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    types: ['node'],
  });
  const checker = program.getTypeChecker();
  const exports = new Set<string>();
  const members = new Set<string>();
  const seen = new Set<ts.Node>();
  for (const file of ENTRY_FILES) {
    const sf = program.getSourceFile(file);
    const moduleSymbol = sf && checker.getSymbolAtLocation(sf);
    if (!moduleSymbol) throw new Error(`cannot read ${file}`);
    for (const exported of checker.getExportsOfModule(moduleSymbol)) {
      const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      for (const decl of symbol.declarations ?? []) {
        if (seen.has(decl) || decl.getSourceFile().isDeclarationFile) continue;
        seen.add(decl);
        if (isInternal(decl)) continue;
        if (!hasDoc(decl)) exports.add(`${exported.name} (${where(decl)})`);
        if (ts.isClassDeclaration(decl) || ts.isInterfaceDeclaration(decl)) {
          for (const member of decl.members) {
            if (ts.isConstructorDeclaration(member) || ts.isIndexSignatureDeclaration(member) || ts.isClassStaticBlockDeclaration(member)) continue;
            const name = member.name && ts.isIdentifier(member.name) ? member.name.text : member.name?.getText();
            if (!name || name.startsWith('_') || name.startsWith('#') || isInternal(member)) continue;
            if ([ts.SyntaxKind.PrivateKeyword, ts.SyntaxKind.ProtectedKeyword, ts.SyntaxKind.OverrideKeyword].some((k) => hasModifier(member, k))) continue;
            // An overload list is documented once.
            if (!hasDoc(member) && !(ts.isMethodDeclaration(member) && member.body === undefined)) members.add(`${exported.name}.${name} (${where(member)})`);
          }
        }
      }
    }
  }
  return { exports: [...exports].sort(), members: [...members].sort() };
}

describe('TSDoc on the public surface', () => {
  it('every exported declaration and every public member of an exported class or interface has a doc comment', () => {
    const missing = undocumented();
    expect(missing.exports, `${missing.exports.length} exports without a doc comment`).toEqual([]);
    expect(missing.members, `${missing.members.length} public members without a doc comment`).toEqual([]);
  }, 120_000);
});
