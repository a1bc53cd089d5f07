//! The ACPI tables a PVH guest boots with: libxl builds them with its
//! private libacpi; these are the minimum a PVH kernel needs, hardware-reduced
//! as a PVH guest is (no legacy devices, no SCI): RSDP, XSDT, FADT, an empty
//! DSDT, and a MADT with a local APIC per vCPU. One page, at a guest address
//! inside the MMIO hole that the e820 map marks ACPI.

/// libacpi's `ACPI_INFO_PHYSICAL_ADDRESS`, where libxl puts them too.
pub const ACPI_TABLES_ADDRESS: u64 = 0xFC00_0000;
/// libxl's `LAPIC_BASE_ADDRESS`.
pub const LAPIC_BASE_ADDRESS: u32 = 0xFEE0_0000;

const HEADER_BYTES: usize = 36;
const FADT_BYTES: usize = 268;
const RSDP_BYTES: usize = 36;
/// FADT flags: HW_REDUCED_ACPI.
const FADT_HW_REDUCED_ACPI: u32 = 1 << 20;
/// FADT IAPC_BOOT_ARCH: no VGA, no CMOS RTC (a PVH guest has neither).
const FADT_NO_VGA_NO_CMOS_RTC: u16 = (1 << 2) | (1 << 5);
const MADT_LOCAL_APIC: u8 = 0;
const MADT_LOCAL_APIC_ENABLED: u32 = 1;

/// Where each table sits in the page, from its start.
const RSDP_AT: usize = 0;
const XSDT_AT: usize = 64;
const DSDT_AT: usize = 128;
const FADT_AT: usize = 192;
const MADT_AT: usize = 512;

/// The most vCPUs: APIC ids (2 per vCPU) are one byte; the MADT then fits
/// the page.
pub const MAX_VCPUS: u32 = 128;

fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

/// A table header; the checksum is filled in by [`finish`].
fn header(signature: &[u8; 4], length: usize, revision: u8) -> Vec<u8> {
    let mut t = vec![0u8; length];
    t[0..4].copy_from_slice(signature);
    t[4..8].copy_from_slice(&(length as u32).to_le_bytes());
    t[8] = revision;
    t[10..16].copy_from_slice(b"Xen\0\0\0");
    t[16..24].copy_from_slice(b"XDBPVH\0\0");
    t[24..28].copy_from_slice(&1u32.to_le_bytes());
    t[28..32].copy_from_slice(b"XDB ");
    t[32..36].copy_from_slice(&1u32.to_le_bytes());
    t
}

fn finish(mut table: Vec<u8>) -> Vec<u8> {
    table[9] = checksum(&table);
    table
}

/// The tables for `nr_vcpus` vCPUs (APIC ids 0, 2, 4...: Xen's numbering),
/// as one page to load at `ACPI_TABLES_ADDRESS`; the RSDP is at its start.
pub fn pvh_tables(nr_vcpus: u32) -> Result<Vec<u8>, String> {
    if nr_vcpus == 0 || nr_vcpus > MAX_VCPUS {
        return Err(format!(
            "{nr_vcpus} vCPUs: the ACPI tables take 1 to {MAX_VCPUS}"
        ));
    }
    let at = |offset: usize| ACPI_TABLES_ADDRESS + offset as u64;
    let mut page = vec![0u8; 4096];

    let dsdt = finish(header(b"DSDT", HEADER_BYTES, 2));

    let mut fadt = header(b"FACP", FADT_BYTES, 5);
    fadt[40..44].copy_from_slice(&(at(DSDT_AT) as u32).to_le_bytes());
    fadt[109..111].copy_from_slice(&FADT_NO_VGA_NO_CMOS_RTC.to_le_bytes());
    fadt[112..116].copy_from_slice(&FADT_HW_REDUCED_ACPI.to_le_bytes());
    fadt[140..148].copy_from_slice(&at(DSDT_AT).to_le_bytes());
    let fadt = finish(fadt);

    let mut madt = header(b"APIC", HEADER_BYTES + 8 + 8 * nr_vcpus as usize, 3);
    madt[36..40].copy_from_slice(&LAPIC_BASE_ADDRESS.to_le_bytes());
    for vcpu in 0..nr_vcpus as usize {
        let e = HEADER_BYTES + 8 + 8 * vcpu;
        madt[e] = MADT_LOCAL_APIC;
        madt[e + 1] = 8;
        madt[e + 2] = vcpu as u8;
        madt[e + 3] = (2 * vcpu) as u8;
        madt[e + 4..e + 8].copy_from_slice(&MADT_LOCAL_APIC_ENABLED.to_le_bytes());
    }
    let madt = finish(madt);

    let mut xsdt = header(b"XSDT", HEADER_BYTES + 16, 1);
    xsdt[36..44].copy_from_slice(&at(FADT_AT).to_le_bytes());
    xsdt[44..52].copy_from_slice(&at(MADT_AT).to_le_bytes());
    let xsdt = finish(xsdt);

    let mut rsdp = vec![0u8; RSDP_BYTES];
    rsdp[0..8].copy_from_slice(b"RSD PTR ");
    rsdp[9..15].copy_from_slice(b"Xen\0\0\0");
    rsdp[15] = 2;
    rsdp[20..24].copy_from_slice(&(RSDP_BYTES as u32).to_le_bytes());
    rsdp[24..32].copy_from_slice(&at(XSDT_AT).to_le_bytes());
    rsdp[8] = checksum(&rsdp[..20]);
    rsdp[32] = checksum(&rsdp);

    for (offset, table) in [
        (RSDP_AT, &rsdp),
        (XSDT_AT, &xsdt),
        (DSDT_AT, &dsdt),
        (FADT_AT, &fadt),
        (MADT_AT, &madt),
    ] {
        page[offset..offset + table.len()].copy_from_slice(table);
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    /// The table at guest address `address`, checked: its bytes sum to 0.
    fn table(page: &[u8], address: u64, signature: &[u8; 4]) -> Vec<u8> {
        let at = (address - ACPI_TABLES_ADDRESS) as usize;
        assert_eq!(&page[at..at + 4], signature);
        let length = u32_at(page, at + 4) as usize;
        let t = page[at..at + length].to_vec();
        assert_eq!(
            t.iter().fold(0u8, |a, b| a.wrapping_add(*b)),
            0,
            "{signature:?} checksum"
        );
        t
    }

    #[test]
    fn rsdp_xsdt_fadt_dsdt_and_madt_chain_with_valid_checksums() {
        let page = pvh_tables(3).unwrap();
        assert_eq!(page.len(), 4096);
        let rsdp = &page[..RSDP_BYTES];
        assert_eq!(&rsdp[..8], b"RSD PTR ");
        assert_eq!(rsdp[..20].iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
        assert_eq!(rsdp.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
        assert_eq!(rsdp[15], 2, "ACPI 2.0+ RSDP, with an XSDT");
        let xsdt = table(&page, u64_at(rsdp, 24), b"XSDT");
        let fadt = table(&page, u64_at(&xsdt, 36), b"FACP");
        let madt = table(&page, u64_at(&xsdt, 44), b"APIC");
        assert_eq!(fadt.len(), FADT_BYTES);
        assert_ne!(u32_at(&fadt, 112) & FADT_HW_REDUCED_ACPI, 0);
        let dsdt = table(&page, u64_at(&fadt, 140), b"DSDT");
        assert_eq!(u64::from(u32_at(&fadt, 40)), u64_at(&fadt, 140));
        assert_eq!(dsdt.len(), HEADER_BYTES);
        assert_eq!(u32_at(&madt, 36), LAPIC_BASE_ADDRESS);
        let apic_ids: Vec<(u8, u8, u32)> = madt[44..]
            .chunks(8)
            .map(|e| {
                assert_eq!((e[0], e[1]), (MADT_LOCAL_APIC, 8));
                (e[2], e[3], u32_at(e, 4))
            })
            .collect();
        assert_eq!(apic_ids, vec![(0, 0, 1), (1, 2, 1), (2, 4, 1)]);
    }

    #[test]
    fn vcpu_counts_the_page_cannot_hold_are_refused() {
        assert!(pvh_tables(0).is_err());
        assert!(pvh_tables(MAX_VCPUS).is_ok());
        assert!(pvh_tables(MAX_VCPUS + 1).is_err());
    }
}
