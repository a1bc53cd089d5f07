// @ts-check
// Where Xen says each domain's memory is: the `u` debug key's report, read
// back from Xen's console ring. Used by the real-Xen suites in dom0.
import { execFileSync } from 'node:child_process'

/**
 * Pages of every domain on each node, as Xen counts them: domid -> pages by
 * node. `clear` empties the console ring as it is read (a mass start's
 * report is long; the next one then starts whole).
 */
export function pagesOfDomains({ clear = false } = {}) {
  execFileSync('xl', ['debug-keys', 'u'])
  const ring = execFileSync('xl', clear ? ['dmesg', '-c'] : ['dmesg'], { encoding: 'utf8' })
  const report = ring.split('Memory location of each domain:').pop() ?? ''
  const byDomain = new Map()
  let current = null
  for (const line of report.split('\n')) {
    // Xen 4.17 heads each domain "Domain 21 (total: N):", 4.20 "d21 (total: N):".
    const d = /(?:Domain |\bd)(\d+) \(total: \d+\)/.exec(line)
    if (d) {
      current = []
      byDomain.set(Number(d[1]), current)
      continue
    }
    const n = /Node (\d+): (\d+)/.exec(line)
    if (n && current) current[Number(n[1])] = Number(n[2])
    else current = null
  }
  return byDomain
}
