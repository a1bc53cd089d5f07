//! The offsets the builder uses in `struct xc_dom_image` (and the sizes of the
//! structs it fills) are the installed Xen headers' own: a C program compiled
//! against `xenguest.h` prints them and they must equal `ffi::layout`.
//! Needs Debian's libxen-dev (`npm test` installs it).

use builder::ffi::layout::{
    HvmInfoTable, RawE820Entry, RawFirmwareModule, RawVmemrange, RawXcError, V4_17,
};
use std::fmt::Write as _;
use std::path::Path;

#[test]
fn xen_4_17_xc_dom_image_offsets_match_the_installed_headers() {
    assert!(
        Path::new("/usr/include/xenguest.h").exists(),
        "/usr/include/xenguest.h is missing: install libxen-dev (npm test does it)"
    );
    let version = std::fs::read_to_string("/usr/include/xen/domctl.h").unwrap();
    assert!(
        version.contains("#define XEN_DOMCTL_INTERFACE_VERSION 0x00000015"),
        "the installed headers are not Xen 4.17's"
    );

    let mut expected = Vec::new();
    let mut program = String::from(
        "#define __XEN_TOOLS__ 1\n#include <stddef.h>\n#include <stdio.h>\n#include <xenctrl.h>\n#include <xenguest.h>\n#include <xen/hvm/hvm_info_table.h>\nint main(void) {\n",
    );
    for (field, offset, size) in V4_17.fields() {
        writeln!(
            program,
            "  printf(\"{field} %zu %zu\\n\", offsetof(struct xc_dom_image, {field}), sizeof(((struct xc_dom_image *)0)->{field}));"
        )
        .unwrap();
        expected.push(format!("{field} {offset} {size}"));
    }
    macro_rules! hvm_info {
        ($($f:ident),*) => {[$(
            (
                concat!("hvm_info.", stringify!($f)),
                concat!("offsetof(struct hvm_info_table, ", stringify!($f), ")"),
                std::mem::offset_of!(HvmInfoTable, $f),
            ),
        )*]};
    }
    let hvm_info = hvm_info!(
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
    for (name, c, size) in hvm_info.into_iter().chain([
        (
            "xen_vmemrange_t",
            "sizeof(xen_vmemrange_t)",
            std::mem::size_of::<RawVmemrange>(),
        ),
        (
            "vmemrange.nid",
            "offsetof(xen_vmemrange_t, nid)",
            std::mem::offset_of!(RawVmemrange, nid),
        ),
        (
            "xc_error",
            "sizeof(xc_error)",
            std::mem::size_of::<RawXcError>(),
        ),
        (
            "xc_error.message",
            "offsetof(xc_error, message)",
            std::mem::offset_of!(RawXcError, message),
        ),
        (
            "XC_DOM_HVM_CONTAINER",
            "(size_t)XC_DOM_HVM_CONTAINER",
            builder::ffi::layout::XC_DOM_HVM_CONTAINER as usize,
        ),
        (
            "hvm_info_table",
            "sizeof(struct hvm_info_table)",
            std::mem::size_of::<HvmInfoTable>(),
        ),
        (
            "HVM_INFO_PFN",
            "(size_t)HVM_INFO_PFN",
            builder::ffi::layout::HVM_INFO_PFN as usize,
        ),
        (
            "HVM_INFO_OFFSET",
            "(size_t)HVM_INFO_OFFSET",
            builder::ffi::layout::HVM_INFO_OFFSET,
        ),
        (
            "HVM_MAX_VCPUS",
            "(size_t)HVM_MAX_VCPUS",
            builder::ffi::layout::HVM_MAX_VCPUS,
        ),
        (
            "e820entry",
            "sizeof(struct e820entry)",
            std::mem::size_of::<RawE820Entry>(),
        ),
        (
            "xc_hvm_firmware_module",
            "sizeof(struct xc_hvm_firmware_module)",
            std::mem::size_of::<RawFirmwareModule>(),
        ),
        (
            "xc_hvm_firmware_module.guest_addr_out",
            "offsetof(struct xc_hvm_firmware_module, guest_addr_out)",
            std::mem::offset_of!(RawFirmwareModule, guest_addr_out),
        ),
        (
            "MAX_ACPI_MODULES",
            "(size_t)MAX_ACPI_MODULES",
            builder::ffi::layout::MAX_ACPI_MODULES,
        ),
    ]) {
        writeln!(program, "  printf(\"{name} %zu\\n\", {c});").unwrap();
        expected.push(format!("{name} {size}"));
    }
    program.push_str("  return 0;\n}\n");

    let printed = c_probe::run("builder-layout", &program);
    let c_lines: Vec<&str> = printed.lines().collect();
    assert_eq!(c_lines, expected);
}
