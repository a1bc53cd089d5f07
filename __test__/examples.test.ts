// The README's tour is examples/: it runs as written, in TypeScript (compiled
// by a strict project of a user's, against the published types) and in plain
// JavaScript on Node 20; and the published types hold what they promise
// (__test__/types). Both need `npm run build` (npm test's pretest).
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { node, ROOT } from './helpers.js'

const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
const expected = readFileSync(join(ROOT, 'examples', 'tour.out'), 'utf8')

describe('the tour in examples/', () => {
  it('in TypeScript: compiles under strict settings, and runs', () => {
    rmSync(join(ROOT, 'examples', '.out'), { recursive: true, force: true })
    const compiled = node([TSC, '-p', join(ROOT, 'examples')])
    expect(compiled.stdout + compiled.stderr).toBe('')
    expect(compiled.status).toBe(0)
    const run = node([join(ROOT, 'examples', '.out', 'tour.mjs')])
    expect(run.stderr).toBe('')
    expect(run.stdout).toBe(expected)
  })

  it('suspend, restore and migrate, in TypeScript: runs as compiled', () => {
    // Compiled with the tour, by the test above (same project).
    const run = node([join(ROOT, 'examples', '.out', 'suspend.mjs')])
    expect(run.stderr).toBe('')
    expect(run.stdout).toBe(readFileSync(join(ROOT, 'examples', 'suspend.out'), 'utf8'))
  })

  it('in JavaScript: runs on this Node as it is', () => {
    const run = node([join(ROOT, 'examples', 'tour.mjs')])
    expect(run.stderr).toBe('')
    expect(run.stdout).toBe(expected)
  })

  it('is in the README word for word, with what it prints', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    for (const [file, fence] of [
      ['tour.mts', 'ts'],
      ['tour.mjs', 'js'],
      ['tour.out', 'text'],
      ['suspend.mts', 'ts'],
      ['suspend.out', 'text'],
    ] as const) {
      const text = readFileSync(join(ROOT, 'examples', file), 'utf8')
      expect(readme, `examples/${file}`).toContain(`\`\`\`${fence}\n${text}\`\`\``)
    }
  })
})

describe('the published types', () => {
  it('hold what __test__/types pins (await using, codes, their fields, public names)', () => {
    const checked = node([TSC, '-p', join(ROOT, '__test__', 'types')])
    expect(checked.stdout + checked.stderr).toBe('')
    expect(checked.status).toBe(0)
  })
})
