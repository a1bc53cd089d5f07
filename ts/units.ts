/**
 * Xen's memory units and the conversions between them, in one place. A page
 * is 4 KiB on x86. Amounts used round up, amounts free round down, as
 * xenopsd's `Memory` module does.
 */

export const KIB = 1024
export const MIB = 1024 * KIB
export const GIB = 1024 * MIB
export const PAGE_BYTES = 4096
export const KIB_PER_PAGE = PAGE_BYTES / KIB
export const PAGES_PER_MIB = MIB / PAGE_BYTES

export const bytesOfPages = (pages: number): number => pages * PAGE_BYTES
export const kibOfPages = (pages: number): number => pages * KIB_PER_PAGE
export const kibOfMib = (mib: number): number => mib * KIB
export const bytesOfKib = (kib: number): number => kib * KIB
export const bytesOfMib = (mib: number): number => mib * MIB
export const pagesOfMib = (mib: number): number => mib * PAGES_PER_MIB

/** Memory a VM uses, KiB to MiB, rounding up (xenopsd's `mib_of_kib_used`). */
export const mibOfKibUsed = (kib: number): number => Math.ceil(kib / KIB)
