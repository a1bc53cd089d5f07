// Types of diagnose.mjs (a plain module, imported by test-xen.mjs).
export declare const HANG_QUIET_SECONDS: number
export declare function tail(log: string, count: number): string[]
export declare function whereItWas(log: string): { phase: string; suite?: string; dom0: boolean }
export interface Boot {
  log: string
  killed: boolean
  code: number | null
  signal: string | null
  seconds: number
  quietSeconds: number
}
export declare function diagnose(boot: Boot, limitSeconds: number): string
