import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { node, ROOT } from './helpers.js'

describe('docs/API.md', () => {
  it('documents every export, and is what the published declarations say (node scripts/api-reference.mjs)', () => {
    const run = node([join(ROOT, 'scripts', 'api-reference.mjs'), '--check'])
    expect(run.stderr).toBe('')
    expect(run.status).toBe(0)
  })
})
