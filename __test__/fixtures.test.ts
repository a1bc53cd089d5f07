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

describe('the fixtures copied from shared/data', () => {
  it.skipIf(!existsSync(SHARED_DATA))('are the same files as ../shared/data, byte for byte', () => {
    expect(files(COPY).sort()).toEqual(files(SHARED_DATA).sort())
    for (const file of files(SHARED_DATA)) {
      expect(readFileSync(join(COPY, file)).equals(readFileSync(join(SHARED_DATA, file))), file).toBe(true)
    }
  })
})
