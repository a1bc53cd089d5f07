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

/** Cuts a line to `width` columns (the glyphs used here are one column each). */
function fitWidth(line: string, width: number): string {
  return [...line].length <= width ? line : `${[...line].slice(0, Math.max(0, width - 1)).join('')}…`
}

/**
 * Redraws itself in place on a terminal: it fits the terminal's width (a
 * wrapped line would break the redraw), hides the cursor while it draws, and
 * gives it back on `close()` or Ctrl-C. Only for a TTY: callers leave it off
 * elsewhere.
 */
export class LiveView {
  readonly #out: NodeJS.WriteStream
  readonly #title: string
  readonly #vms: number
  #lines = 0
  readonly #onInterrupt = () => {
    this.close()
    process.exit(130)
  }

  constructor(out: NodeJS.WriteStream, title: string, vms: number) {
    this.#out = out
    this.#title = title
    this.#vms = vms
    this.#out.write('\x1b[?25l')
    process.once('SIGINT', this.#onInterrupt)
  }

  /** Draws a sample over the previous one. */
  draw(sample: StormSample): void {
    // One column short of the width: writing the last column wraps on some terminals.
    const width = Math.max(20, (this.#out.columns ?? 80) - 1)
    const builds = `  ${sample.done}/${this.#vms} done, ${sample.failed} failed, ${sample.inFlight} in flight`
    const bars = Math.max(8, Math.min(BAR, width - 10 - Math.max(builds.length, 24)))
    const lines = [
      `${(sample.ms / 1000).toFixed(1).padStart(5)} s  ${this.#title}`,
      `builds  [${bar([[sample.done / this.#vms, '█']], bars)}]${builds}`,
      ...sample.nodes.map((n, i) => {
        const used = n.usedBytes / n.totalBytes
        const promised = n.promisedBytes / n.totalBytes
        const over = n.usedBytes + n.promisedBytes > n.totalBytes ? ' over-promised' : ''
        return `node ${String(i).padEnd(2)} [${bar(
          [
            [used, '█'],
            [promised, '░'],
          ],
          bars,
        )}]  ${(n.usedBytes / GIB).toFixed(1)}/${(n.totalBytes / GIB).toFixed(1)} GiB${over}`
      }),
      '        █ used  ░ promised to builds in flight',
    ].map((line) => fitWidth(line, width))
    if (this.#lines > 0) this.#out.write(`\x1b[${this.#lines}A`)
    this.#out.write(lines.map((l) => `\x1b[2K${l}\n`).join(''))
    this.#lines = lines.length
  }

  /** Gives the cursor back. */
  close(): void {
    process.removeListener('SIGINT', this.#onInterrupt)
    this.#out.write('\x1b[?25h')
  }
}
