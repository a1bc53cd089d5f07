/**
 * A storm report as one self-contained HTML page (inline CSS and SVG, no
 * script, no network): per accounting mode, each node's memory over time and
 * where each VM's memory landed.
 */
import type { StormReport } from './storm.js'

const GIB = 2 ** 30

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string)
}

/** Ten colours that stay apart (Tableau 10); past ten nodes, hues around the wheel. */
const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac']

/** A distinct colour per node. */
export function nodeColour(node: number, nodes: number): string {
  return nodes <= PALETTE.length ? (PALETTE[node] as string) : `hsl(${Math.round((360 * node) / nodes)}, 65%, 45%)`
}

function memoryChart(r: StormReport): string {
  const width = 640
  const height = 260
  const pad = { left: 48, right: 12, top: 12, bottom: 32 }
  const nodes = r.samples[0]?.nodes.length ?? 0
  const maxMs = Math.max(1, ...r.samples.map((s) => s.ms))
  const maxGib = Math.max(1, ...r.samples.flatMap((s) => s.nodes.map((n) => n.totalBytes / GIB)))
  const x = (ms: number) => pad.left + ((width - pad.left - pad.right) * ms) / maxMs
  const y = (gib: number) => height - pad.bottom - ((height - pad.top - pad.bottom) * gib) / maxGib
  const lines = Array.from({ length: nodes }, (_, node) => {
    const points = r.samples.map((s) => `${x(s.ms).toFixed(1)},${y((s.nodes[node]?.usedBytes ?? 0) / GIB).toFixed(1)}`)
    return `<polyline class="node-line" fill="none" stroke="${nodeColour(node, nodes)}" stroke-width="2" points="${points.join(' ')}"><title>node ${node}</title></polyline>`
  })
  const capacity = `<line x1="${pad.left}" x2="${width - pad.right}" y1="${y(maxGib)}" y2="${y(maxGib)}" stroke="#999" stroke-dasharray="4 3"/>`
  const ticksY = [0, maxGib / 2, maxGib].map(
    (g) => `<text x="${pad.left - 6}" y="${y(g) + 4}" text-anchor="end">${g.toFixed(0)} GiB</text>`,
  )
  const ticksX = [0, maxMs / 2, maxMs].map(
    (ms) => `<text x="${x(ms)}" y="${height - 10}" text-anchor="middle">${(ms / 1000).toFixed(2)} s</text>`,
  )
  return `<svg class="chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="each node's memory over time">
  <rect x="${pad.left}" y="${pad.top}" width="${width - pad.left - pad.right}" height="${height - pad.top - pad.bottom}" fill="#fafafa" stroke="#ddd"/>
  ${capacity}${lines.join('\n  ')}
  ${ticksY.join('')}${ticksX.join('')}
</svg>`
}

function landingChart(r: StormReport): string {
  const nodes = r.perNode.length
  const columns = 16
  const cell = { width: 38, height: 14, gap: 3 }
  const vms = [...r.vms].sort((a, b) => (a.placement?.plan?.nodes[0] ?? 99) - (b.placement?.plan?.nodes[0] ?? 99))
  const rows = Math.ceil(vms.length / columns)
  const width = columns * (cell.width + cell.gap)
  const height = rows * (cell.height + cell.gap)
  const cells = vms.map((vm, i) => {
    const x0 = (i % columns) * (cell.width + cell.gap)
    const y0 = Math.floor(i / columns) * (cell.height + cell.gap)
    const total = vm.pagesByNode.reduce((a, b) => a + b, 0)
    let offset = 0
    const segments = vm.pagesByNode.flatMap((pages, node) => {
      if (pages === 0 || total === 0) return []
      const w = (cell.width * pages) / total
      const rect = `<rect x="${(x0 + offset).toFixed(1)}" y="${y0}" width="${w.toFixed(1)}" height="${cell.height}" fill="${nodeColour(node, nodes)}"/>`
      offset += w
      return [rect]
    })
    const planned = vm.placement?.plan?.nodes.join(',') ?? 'none'
    const where = vm.pagesByNode.flatMap((p, n) => (p > 0 ? [`node ${n}: ${((100 * p) / total).toFixed(0)}%`] : [])).join(', ')
    const title = `domain ${vm.domid}: ${vm.sizeMib} MiB, planned on ${planned}; memory ${where || (vm.error ?? 'none')}`
    const cls = vm.error !== undefined ? 'vm failed' : vm.local ? 'vm local' : 'vm spilled'
    const outline =
      vm.error !== undefined || !vm.local
        ? `<rect x="${x0}" y="${y0}" width="${cell.width}" height="${cell.height}" fill="none" stroke="#d00" stroke-width="2"/>`
        : ''
    return `<g class="${cls}"><title>${escapeHtml(title)}</title>${segments.join('')}${outline}</g>`
  })
  return `<svg class="landing" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="where each VM's memory landed">
  ${cells.join('\n  ')}
</svg>`
}

function legend(nodes: number): string {
  return Array.from(
    { length: nodes },
    (_, n) => `<span class="key"><i style="background:${nodeColour(n, nodes)}"></i>node ${n}</span>`,
  ).join(' ')
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`

export function renderReport(reports: readonly StormReport[], title = 'xen-domain-build storm'): string {
  const first = reports[0]
  const nodes = first?.perNode.length ?? 0
  const rows = reports.map(
    (
      r,
    ) => `<tr><th>${r.accounting}</th><td>${r.completed}</td><td>${r.failed}</td><td>${r.wallMs.toFixed(0)} ms</td><td>${r.buildsPerSecond.toFixed(0)}</td>
      <td>${r.eventLoopDelayMs.max.toFixed(1)} / ${r.eventLoopDelayMs.p99.toFixed(1)} ms</td><td class="share">${pct(r.whollyShare)}</td><td>${r.overpromised}</td></tr>`,
  )
  const sections = reports.map(
    (r) => `<section class="mode" data-accounting="${r.accounting}">
  <h2>${r.accounting} accounting: ${r.outcomes.wholly} of ${r.vms.length} VMs (${pct(r.whollyShare)}) entirely on their planned nodes; ${r.outcomes.spread} spread, ${r.outcomes.unplaced} unplaced, ${r.outcomes.failed} failed</h2>
  <h3>Each node's memory in use over time (dashed: a node's size)</h3>
  ${memoryChart(r)}
  <h3>Where each VM's memory landed (one box per VM, coloured by node; red outline: off its planned nodes)</h3>
  ${landingChart(r)}
  <p>Per node, VMs planned there alone / of them entirely local: ${r.perNode.map((n) => `node ${n.node}: ${n.planned}/${n.local}`).join(', ')}</p>
</section>`,
  )
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(title)}</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
  table { border-collapse: collapse; margin: 12px 0; }
  th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
  th:first-child { text-align: left; }
  svg text { font-size: 11px; fill: #555; }
  .key { margin-right: 12px; } .key i { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; }
  section.mode { margin-top: 28px; }
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p>${first ? `${first.vms.length} VMs on the simulated host <b>${escapeHtml(first.preset)}</b>, built at once with the simulated xenguest.` : 'No runs.'}</p>
<table>
  <tr><th>accounting</th><th>completed</th><th>failed</th><th>wall time</th><th>builds/s</th><th>event-loop delay max / p99</th><th>VMs wholly on their planned nodes, of all VMs</th><th>over-promised placements</th></tr>
  ${rows.join('\n  ')}
</table>
<p>${legend(nodes)}</p>
${sections.join('\n')}
</body>
</html>
`
}
