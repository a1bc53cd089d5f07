// @ts-check
// docs/API.md, generated from the published declarations (dist/index.d.ts,
// and native/binding.d.ts for the addon's types): every export, its
// declaration, its documentation and its members'. TSDoc is the one source:
// an export without documentation fails here.
//   node scripts/api-reference.mjs          writes docs/API.md (after `npm run build`)
//   node scripts/api-reference.mjs --check  fails when an export has no documentation
//                                           or docs/API.md is not what it would write
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const ENTRY = join(ROOT, 'dist', 'index.d.ts')
const OUTPUT = join(ROOT, 'docs', 'API.md')

const program = ts.createProgram([ENTRY], { noEmit: true, strict: true, types: [], lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'] })
const checker = program.getTypeChecker()
const entry = program.getSourceFile(ENTRY)
if (entry === undefined) throw new Error(`${ENTRY} is missing: run npm run build first`)
const printer = ts.createPrinter({ removeComments: true })

/** The documentation of a symbol: its text, then its tags (`@example`, `@param`...), as Markdown. */
function documentation(symbol) {
  const text = ts.displayPartsToString(symbol.getDocumentationComment(checker)).trim()
  const tags = symbol
    .getJsDocTags(checker)
    .filter((tag) => tag.name !== 'internal')
    .map((tag) => {
      const body = ts.displayPartsToString(tag.text ?? []).trim()
      return tag.name === 'example' ? `Example:\n\n${body}` : `*@${tag.name}* ${body}`
    })
  return [text, ...tags].filter((part) => part !== '').join('\n\n')
}

/** @type {[string, (d: import('typescript').Declaration) => boolean][]} */
const KINDS = [
  ['Functions', (d) => ts.isFunctionDeclaration(d)],
  ['Classes', (d) => ts.isClassDeclaration(d)],
  ['Constants', (d) => ts.isVariableDeclaration(d)],
  ['Interfaces', (d) => ts.isInterfaceDeclaration(d)],
  ['Types', (d) => ts.isTypeAliasDeclaration(d)],
]

/** A declaration as the reader needs it: without its comments, and for a class or interface without its members (listed below it). */
function declarationText(declaration) {
  const source = declaration.getSourceFile()
  if (ts.isVariableDeclaration(declaration)) return `const ${printer.printNode(ts.EmitHint.Unspecified, declaration, source)}`
  if (ts.isFunctionDeclaration(declaration))
    return printer.printNode(ts.EmitHint.Unspecified, declaration, source).replace(/^export |declare /g, '')
  if (ts.isClassDeclaration(declaration) || ts.isInterfaceDeclaration(declaration)) {
    const keyword = ts.isClassDeclaration(declaration) ? 'class' : 'interface'
    const heritage = (declaration.heritageClauses ?? [])
      .map((clause) => printer.printNode(ts.EmitHint.Unspecified, clause, source).trim())
      .join(' ')
    const parameters = declaration.typeParameters
      ? `<${declaration.typeParameters.map((p) => printer.printNode(ts.EmitHint.Unspecified, p, source)).join(', ')}>`
      : ''
    return `${keyword} ${declaration.name?.text}${parameters}${heritage ? ` ${heritage}` : ''}`
  }
  return printer.printNode(ts.EmitHint.Unspecified, declaration, source).replace(/^export |declare /g, '')
}

/** A member's line: its declaration, without comments. */
function memberText(member) {
  return printer.printNode(ts.EmitHint.Unspecified, member, member.getSourceFile()).replace(/\s+/g, ' ').replace(/;$/, '')
}

function isPublicMember(member) {
  if (member.name !== undefined && ts.isPrivateIdentifier(member.name)) return false
  const modifiers = ts.canHaveModifiers(member) ? (ts.getModifiers(member) ?? []) : []
  return !modifiers.some((m) => m.kind === ts.SyntaxKind.PrivateKeyword || m.kind === ts.SyntaxKind.ProtectedKeyword)
}

const undocumented = []
const sections = new Map(KINDS.map(([title]) => [title, []]))
const exports = checker.getExportsOfModule(checker.getSymbolAtLocation(entry)).sort((a, b) => a.name.localeCompare(b.name))
for (const exported of exports) {
  const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported
  const declaration = symbol.declarations?.[0]
  if (declaration === undefined) continue
  const kind = KINDS.find(([, test]) => test(declaration))?.[0] ?? 'Types'
  const doc = documentation(symbol)
  if (doc === '') undocumented.push(exported.name)
  const lines = [`### ${exported.name}`, '', '```ts', declarationText(declaration), '```', '', doc || '*(undocumented)*', '']
  if (ts.isClassDeclaration(declaration) || ts.isInterfaceDeclaration(declaration)) {
    // Every declaration's: a class's, and what augments it (the addon's Hypervisor and its dispose).
    const members = symbol.declarations
      .filter((d) => ts.isClassDeclaration(d) || ts.isInterfaceDeclaration(d))
      .flatMap((d) => /** @type {readonly import('typescript').ClassElement[]} */ (d.members))
      .filter(isPublicMember)
    if (members.length > 0) {
      for (const member of members) {
        const memberSymbol = member.name === undefined ? undefined : checker.getSymbolAtLocation(member.name)
        const memberDoc = memberSymbol === undefined ? '' : documentation(memberSymbol).replace(/\n+/g, ' ')
        lines.push(`- \`${memberText(member)}\`${memberDoc ? `: ${memberDoc}` : ''}`)
      }
      lines.push('')
    }
  }
  sections.get(kind).push(lines.join('\n'))
}

const text = [
  '# API reference',
  '',
  '<!-- Generated by scripts/api-reference.mjs from the published declarations; do not edit. -->',
  '',
  'Everything `xen-domain-build` exports, from its TSDoc (what an editor shows on hover). The',
  "[README](../README.md) is the guide; this is the reference. The addon's types (`Hypervisor`,",
  '`PhysInfo`, ...) are documented in the Rust sources they are generated from (`src/*.rs`).',
  '',
  ...KINDS.flatMap(([title]) => (sections.get(title).length === 0 ? [] : [`## ${title}`, '', ...sections.get(title)])),
].join('\n')

if (undocumented.length > 0) {
  console.error(`xen-domain-build: exports without documentation: ${undocumented.join(', ')}`)
  process.exitCode = 1
}
if (process.argv.includes('--check')) {
  let committed = ''
  try {
    committed = readFileSync(OUTPUT, 'utf8')
  } catch {
    // Missing: not what it would write.
  }
  if (committed !== text) {
    console.error('xen-domain-build: docs/API.md is not what the declarations say: run `node scripts/api-reference.mjs` and commit it')
    process.exitCode = 1
  }
} else {
  writeFileSync(OUTPUT, text)
}
