import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { cli } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'xdb-report-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Debian's chromium (or `CHROMIUM`), headless, as a person's browser would open the file. */
function chromium(args: string[]): string {
  const result = spawnSync(
    process.env.CHROMIUM ?? 'chromium',
    [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--user-data-dir=${join(dir, 'profile')}`, ...args,
    ],
    { encoding: 'utf8', timeout: 60_000 },
  )
  expect(result.error, 'chromium runs (npm test installs it)').toBeUndefined()
  return result.stdout
}

describe('the storm report', () => {
  const file = join(dir, 'storm.html')
  const run = cli(['storm', '--sim', 'two-socket-4-node', '--vms', '48', '--accounting', 'both', '--report', file])

  it('is written by storm --report', () => {
    expect(run.status).toBe(0)
    expect(run.stdout).toContain(`report: ${file}`)
  })

  it('is self-contained: no script, no network', () => {
    const html = readFileSync(file, 'utf8')
    expect(html).not.toMatch(/<script|<link|src=|url\(|https?:/i)
  })

  it('renders in headless Chromium with both modes, their charts and every VM', () => {
    const dom = chromium(['--dump-dom', `file://${file}`])
    expect(dom.match(/<section class="mode"/g)).toHaveLength(2)
    expect(dom.match(/<svg class="chart"/g)).toHaveLength(2)
    // One line per node in each chart, one box per VM in each landing map.
    expect(dom.match(/<polyline class="node-line"/g)).toHaveLength(8)
    expect(dom.match(/<g class="vm /g)).toHaveLength(96)
    const png = join(dir, 'storm.png')
    chromium(['--hide-scrollbars', '--window-size=1200,1800', `--screenshot=${png}`, `file://${file}`])
    expect(readFileSync(png).subarray(1, 4).toString()).toBe('PNG')
  })
})
