// Types of the conformance suite (a plain module, so that dom0 runs it with node alone).
import type { Permission, Xenstore } from '../ts/xenstore.js'

export interface ConformanceEnv {
  store: Xenstore
  /** A second client of the same store (a second writer; one client's transactions run in turn). */
  other?: Xenstore
  /** A domain that exists (the permission checks make it an owner). */
  guest: number
  /** A view of the same store acting as domain `domid`, where the store can give one. */
  asDomain?: (domid: number) => Xenstore
}
type Check = (env: ConformanceEnv & { base: string }) => Promise<void>
export declare const checks: Record<string, Check>
export declare function runCheck(name: string, env: ConformanceEnv): Promise<void>
export declare function permString(perms: readonly Permission[]): string
export declare function domainTreeProblems(store: Xenstore, domid: number, vm: { uuid: string; name: string }): Promise<string[]>
