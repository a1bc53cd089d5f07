import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { cli, systemPackage } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'xdb-report-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const CHROMIUM = process.env.CHROMIUM ?? 'chromium'

/** Debian's chromium (or `CHROMIUM`), headless, as a person's browser would open the file. */
function chromium(args: string[]): string {
  const result = spawnSync(
    CHROMIUM,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${join(dir, 'profile')}`,
      ...args,
    ],
    { encoding: 'utf8', timeout: 60_000 },
  )
  expect(result.error, 'chromium runs').toBeUndefined()
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

  it.runIf(systemPackage({ command: CHROMIUM }, 'chromium'))(
    'renders in headless Chromium with both modes, their charts and every VM',
    () => {
      const dom = chromium(['--dump-dom', `file://${file}`])
      expect(dom.match(/<section class="mode"/g)).toHaveLength(2)
      expect(dom.match(/<svg class="chart"/g)).toHaveLength(2)
      // One line per node in each chart, one box per VM in each landing map.
      expect(dom.match(/<polyline class="node-line"/g)).toHaveLength(8)
      expect(dom.match(/<g class="vm /g)).toHaveLength(96)
      const png = join(dir, 'storm.png')
      chromium(['--hide-scrollbars', '--window-size=1200,1800', `--screenshot=${png}`, `file://${file}`])
      expect(readFileSync(png).subarray(1, 4).toString()).toBe('PNG')
    },
  )
})

describe('the live view', () => {
  it('fits the terminal, hides the cursor while it draws and gives it back', async () => {
    const { LiveView } = await import('../ts/tools/live.js')
    for (const columns of [60, 80, 132]) {
      let written = ''
      const out = { columns, write: (text: string) => (written += text) } as unknown as NodeJS.WriteStream
      const view = new LiveView(out, 'storm: 256 VMs on amd-opteron-6272 (no node claims), in-flight accounting', 256)
      const node = { totalBytes: 16 * 2 ** 30, usedBytes: 9 * 2 ** 30, promisedBytes: 2 * 2 ** 30 }
      view.draw({ ms: 1234, done: 100, failed: 2, inFlight: 40, nodes: Array(8).fill(node) })
      view.draw({ ms: 2345, done: 256, failed: 2, inFlight: 0, nodes: Array(8).fill(node) })
      view.close()
      expect(written.startsWith('\x1b[?25l')).toBe(true)
      expect(written.endsWith('\x1b[?25h')).toBe(true)
      // The second frame moves up over the first, whose 11 lines all fit.
      expect(written).toContain('\x1b[11A')
      // biome-ignore lint/suspicious/noControlCharactersInRegex: the terminal's escapes are what it strips
      const escapes = /\x1b\[\?25[lh]|\x1b\[\d+A|\x1b\[2K/g
      const lines = written
        .replace(escapes, '')
        .split('\n')
        .filter((l) => l !== '')
      expect(lines).toHaveLength(22)
      for (const line of lines) expect([...line].length, `${columns}: ${line}`).toBeLessThan(columns)
    }
  })
})
