/**
 * Xenstore, as domain build uses it. An interface, so that a toolstack can
 * plug in its own client; `InMemoryXenstore` records what was written, for
 * the simulated host and tests.
 */

export interface Xenstore {
  /** The value at `path`, or null when there is none. */
  read(path: string): Promise<string | null>
  write(path: string, value: string): Promise<void>
  /** Writes every entry below `base` in one transaction. */
  writeMany(base: string, entries: Readonly<Record<string, string>>): Promise<void>
  /** Tells xenstored about a new domain's store page and event channel. */
  introduce(domid: number, storeMfn: bigint, storePort: number): Promise<void>
}

/** `/local/domain/DOMID`. */
export function domainPath(domid: number): string {
  return `/local/domain/${domid}`
}

export interface Introduction {
  domid: number
  storeMfn: bigint
  storePort: number
}

export class InMemoryXenstore implements Xenstore {
  readonly entries = new Map<string, string>()
  /** Every write, in order: [path, value]. */
  readonly writes: [string, string][] = []
  readonly introductions: Introduction[] = []

  async read(path: string): Promise<string | null> {
    return this.entries.get(path) ?? null
  }

  async write(path: string, value: string): Promise<void> {
    this.entries.set(path, value)
    this.writes.push([path, value])
  }

  async writeMany(base: string, entries: Readonly<Record<string, string>>): Promise<void> {
    for (const [key, value] of Object.entries(entries)) await this.write(`${base}/${key}`, value)
  }

  async introduce(domid: number, storeMfn: bigint, storePort: number): Promise<void> {
    this.introductions.push({ domid, storeMfn, storePort })
  }
}
