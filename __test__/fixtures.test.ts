import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT, SHARED_DATA } from './helpers.js'

const COPY = join(ROOT, '__test__', 'fixtures', 'xenopsd')

function files(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`],
  )
}

/** The data files: the top-level README.md describes them and is ours, not a copy. */
function dataFiles(dir: string): string[] {
  return files(dir)
    .filter((file) => file !== 'README.md')
    .sort()
}

// xenopsd's topologies and decisions (see fixtures/xenopsd/README.md) are a
// copy of a folder kept beside the repository where the project was written.
// Where that folder exists, the copy must not have drifted from it; elsewhere
// there is nothing to compare with, and the check is skipped.
describe('the xenopsd fixtures', () => {
  it.skipIf(!existsSync(SHARED_DATA))('are the same data files as their original, byte for byte', () => {
    expect(dataFiles(COPY)).toEqual(dataFiles(SHARED_DATA))
    for (const file of dataFiles(SHARED_DATA)) {
      expect(readFileSync(join(COPY, file)).equals(readFileSync(join(SHARED_DATA, file))), file).toBe(true)
    }
  })
})

// What holds in every clone: each data file is described in the folder's
// README, parses, and each placement scenario comes with xenopsd's decisions.
describe('the xenopsd fixtures, in this clone', () => {
  const readme = readFileSync(join(COPY, 'README.md'), 'utf8')
  it('are each described in their README, and parse', () => {
    const data = dataFiles(COPY)
    expect(data.length).toBeGreaterThan(0)
    for (const file of data) {
      // numa/ files by their name; placement/ scenarios by theirs (NAME.json and NAME.expected.jsonl).
      const name = file.slice(file.lastIndexOf('/') + 1)
      const described = file.startsWith('placement/') ? name.replace(/(\.expected\.jsonl|\.json)$/, '') : name
      expect(readme, file).toContain(`\`${described}\``)
      const text = readFileSync(join(COPY, file), 'utf8')
      const records = file.endsWith('.jsonl') ? text.split('\n').filter(Boolean) : [text]
      for (const record of records) expect(() => JSON.parse(record), file).not.toThrow()
    }
  })
  it("give xenopsd's decisions for every placement scenario", () => {
    const placement = dataFiles(join(COPY, 'placement'))
    const scenarios = placement.filter((file) => !file.endsWith('.expected.jsonl'))
    expect(scenarios.length).toBeGreaterThan(0)
    for (const scenario of scenarios) expect(placement, scenario).toContain(scenario.replace(/\.json$/, '.expected.jsonl'))
  })
})
