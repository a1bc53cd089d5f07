/**
 * A live view of a storm on a terminal: builds done and failed, and each
 * node's memory as a bar filling up (used, and promised to builds in flight).
 */
import type { StormSample } from './storm.js'

const GIB = 2 ** 30
const BAR = 40

function bar(parts: [number, string][], width: number): string {
  let text = ''
  let used = 0
  for (const [share, glyph] of parts) {
    const cells = Math.max(0, Math.min(width - used, Math.round(share * width)))
    text += glyph.repeat(cells)
    used += cells
  }
  return text + '·'.repeat(width - used)
}

export class LiveView {
  readonly #out: NodeJS.WriteStream
  readonly #title: string
  readonly #vms: number
  #lines = 0

  constructor(out: NodeJS.WriteStream, title: string, vms: number) {
    this.#out = out
    this.#title = title
    this.#vms = vms
  }

  /** Draws a sample over the previous one. */
  draw(sample: StormSample): void {
    const lines = [
      `${this.#title}   ${(sample.ms / 1000).toFixed(1)} s`,
      `builds  [${bar([[sample.done / this.#vms, '█']], BAR)}]  ${sample.done}/${this.#vms} done, ${sample.failed} failed, ${sample.inFlight} in flight`,
      ...sample.nodes.map((n, i) => {
        const used = n.usedBytes / n.totalBytes
        const promised = n.promisedBytes / n.totalBytes
        const over = n.usedBytes + n.promisedBytes > n.totalBytes ? '  over-promised' : ''
        return `node ${String(i).padEnd(2)} [${bar([[used, '█'], [promised, '░']], BAR)}]  ${(n.usedBytes / GIB).toFixed(1)} / ${(n.totalBytes / GIB).toFixed(1)} GiB${over}`
      }),
      '        █ used  ░ promised to builds in flight',
    ]
    if (this.#lines > 0) this.#out.write(`\x1b[${this.#lines}A`)
    this.#out.write(lines.map((l) => `\x1b[2K${l}\n`).join(''))
    this.#lines = lines.length
  }
}
