//! The offsets the builder uses in `struct xc_dom_image`, the structs it
//! fills and the constants it relies on (save and restore's callbacks and
//! flags too) are each supported release's own:
//! the Rust definitions must say exactly what every release's committed
//! facts say (crates/c-probe, measured from that release's headers).

use builder::ffi::layout::{
    HvmInfoTable, RawE820Entry, RawFirmwareModule, RawPrecopyStats, RawRestoreCallbacks,
    RawSaveCallbacks, RawVmemrange, RawXcError, DOM_IMAGE, HVM_INFO_OFFSET, HVM_INFO_PFN,
    HVM_MAX_VCPUS, MAX_ACPI_MODULES, XCFLAGS_DEBUG, XCFLAGS_LIVE, XC_DOM_HVM_CONTAINER,
    XC_DOM_PV_CONTAINER, XC_STREAM_PLAIN, XGR_SDD_MISSING_CPUID, XGR_SDD_MISSING_MSR,
    XGS_POLICY_ABORT, XGS_POLICY_CONTINUE_PRECOPY, XGS_POLICY_STOP_AND_COPY,
};
use builder::save_restore::exact_node_memflags;
use c_probe::{assert_matches, committed, RustFacts};
use std::mem::{offset_of, size_of, size_of_val};

const OWNED: &[&str] = &[
    "xc_dom_image",
    "hvm_info_table",
    "xen_vmemrange_t",
    "xc_error",
    "e820entry",
    "xc_hvm_firmware_module",
    "XC_DOM_PV_CONTAINER",
    "XC_DOM_HVM_CONTAINER",
    "HVM_INFO_PFN",
    "HVM_INFO_OFFSET",
    "HVM_MAX_VCPUS",
    "MAX_ACPI_MODULES",
    "precopy_stats",
    "save_callbacks",
    "restore_callbacks",
    "XCFLAGS_LIVE",
    "XCFLAGS_DEBUG",
    "XC_STREAM_PLAIN",
    "XGS_POLICY_ABORT",
    "XGS_POLICY_CONTINUE_PRECOPY",
    "XGS_POLICY_STOP_AND_COPY",
    "XGR_SDD_MISSING_CPUID",
    "XGR_SDD_MISSING_MSR",
    "XENMEMF_exact_node(0)",
    "XENMEMF_exact_node(3)",
];

fn rust_facts() -> RustFacts {
    let mut rust = RustFacts::default();
    for (field, offset, size) in DOM_IMAGE.fields() {
        rust.field("xc_dom_image", field, offset, size);
    }
    let t = HvmInfoTable::default();
    rust.size("hvm_info_table", size_of::<HvmInfoTable>());
    macro_rules! hvm_info {
        ($($f:ident),*) => {$(
            rust.field("hvm_info_table", stringify!($f), offset_of!(HvmInfoTable, $f), size_of_val(&t.$f));
        )*};
    }
    hvm_info!(
        signature,
        length,
        checksum,
        apic_mode,
        nr_vcpus,
        low_mem_pgend,
        reserved_mem_pgstart,
        high_mem_pgend,
        vcpu_online
    );
    rust.size("xen_vmemrange_t", size_of::<RawVmemrange>());
    rust.field("xen_vmemrange_t", "nid", offset_of!(RawVmemrange, nid), 4);
    rust.size("xc_error", size_of::<RawXcError>());
    rust.field(
        "xc_error",
        "message",
        offset_of!(RawXcError, message),
        size_of::<[std::ffi::c_char; 1024]>(),
    );
    rust.size("e820entry", size_of::<RawE820Entry>());
    rust.size("xc_hvm_firmware_module", size_of::<RawFirmwareModule>());
    rust.field(
        "xc_hvm_firmware_module",
        "guest_addr_out",
        offset_of!(RawFirmwareModule, guest_addr_out),
        8,
    );
    rust.constant("XC_DOM_PV_CONTAINER", XC_DOM_PV_CONTAINER.into());
    rust.constant("XC_DOM_HVM_CONTAINER", XC_DOM_HVM_CONTAINER.into());
    rust.constant("HVM_INFO_PFN", HVM_INFO_PFN as i64);
    rust.constant("HVM_INFO_OFFSET", HVM_INFO_OFFSET as i64);
    rust.constant("HVM_MAX_VCPUS", HVM_MAX_VCPUS as i64);
    rust.constant("MAX_ACPI_MODULES", MAX_ACPI_MODULES as i64);

    rust.size("precopy_stats", size_of::<RawPrecopyStats>());
    let p = RawPrecopyStats::default();
    macro_rules! precopy {
        ($($f:ident),*) => {$(
            rust.field("precopy_stats", stringify!($f), offset_of!(RawPrecopyStats, $f), size_of_val(&p.$f));
        )*};
    }
    precopy!(iteration, total_written, dirty_count);
    // Every member is a pointer (a function's or `data`).
    macro_rules! pointers {
        ($s:literal, $t:ty: $($f:ident),*) => {
            rust.size($s, size_of::<$t>());
            $(rust.field($s, stringify!($f), offset_of!($t, $f), size_of::<*mut u8>());)*
        };
    }
    pointers!("save_callbacks", RawSaveCallbacks: suspend, precopy_policy, postcopy, checkpoint,
        wait_checkpoint, switch_qemu_logdirty, data);
    pointers!("restore_callbacks", RawRestoreCallbacks: static_data_done, suspend, postcopy,
        checkpoint, wait_checkpoint, restore_results, data);
    rust.constant("XCFLAGS_LIVE", XCFLAGS_LIVE.into());
    rust.constant("XCFLAGS_DEBUG", XCFLAGS_DEBUG.into());
    rust.constant("XC_STREAM_PLAIN", XC_STREAM_PLAIN.into());
    rust.constant("XGS_POLICY_ABORT", XGS_POLICY_ABORT.into());
    rust.constant(
        "XGS_POLICY_CONTINUE_PRECOPY",
        XGS_POLICY_CONTINUE_PRECOPY.into(),
    );
    rust.constant("XGS_POLICY_STOP_AND_COPY", XGS_POLICY_STOP_AND_COPY.into());
    rust.constant("XGR_SDD_MISSING_CPUID", XGR_SDD_MISSING_CPUID.into());
    rust.constant("XGR_SDD_MISSING_MSR", XGR_SDD_MISSING_MSR.into());
    // The builder's own encoding of -mem_pnode, against the C macro's.
    for node in [0, 3] {
        let flags = exact_node_memflags(node).expect("a node the flags hold");
        rust.constant(&format!("XENMEMF_exact_node({node})"), flags.into());
    }
    rust
}

#[test]
fn xc_dom_image_and_friends_match_every_release_s_headers() {
    let rust = rust_facts();
    for release in xenlib::RELEASES {
        let facts = committed(release.version.minor);
        assert_matches(&release.version.to_string(), &facts, OWNED, &rust);
    }
}
