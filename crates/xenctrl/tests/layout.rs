//! Every struct the crate passes to libxenctrl, laid out as the installed
//! Xen headers lay it out: a C program compiled against them prints each
//! field's offset and size, and they must equal the Rust definitions.
//! Needs Debian's libxen-dev (`npm test` installs it).

use std::fmt::Write as _;
use std::path::Path;
use xenctrl::layouts::v4_17;

#[test]
fn xen_4_17_layouts_match_the_installed_headers() {
    assert!(
        Path::new("/usr/include/xenctrl.h").exists(),
        "/usr/include/xenctrl.h is missing: install libxen-dev (npm test does it)"
    );
    let version = std::fs::read_to_string("/usr/include/xen/sysctl.h").unwrap();
    assert!(
        version.contains("#define XEN_SYSCTL_INTERFACE_VERSION 0x00000015"),
        "the installed headers are not Xen 4.17's"
    );

    let fields = v4_17::fields();
    let mut program = String::from(
        "#define __XEN_TOOLS__ 1\n#include <stddef.h>\n#include <stdio.h>\n#include <xenctrl.h>\nint main(void) {\n",
    );
    for f in &fields {
        if f.field.is_empty() {
            writeln!(
                program,
                "  printf(\"{0} - 0 %zu\\n\", sizeof(struct {0}));",
                f.c_struct
            )
            .unwrap();
        } else {
            writeln!(
                program,
                "  printf(\"{0} {1} %zu %zu\\n\", offsetof(struct {0}, {1}), sizeof(((struct {0} *)0)->{1}));",
                f.c_struct, f.field
            )
            .unwrap();
        }
    }
    program.push_str("  return 0;\n}\n");

    let printed = c_probe::run("xenctrl-layout", &program);
    let c_lines: Vec<&str> = printed.lines().collect();
    assert_eq!(c_lines.len(), fields.len());
    for (line, f) in c_lines.iter().zip(&fields) {
        let rust = format!(
            "{} {} {} {}",
            f.c_struct,
            if f.field.is_empty() { "-" } else { f.field },
            f.offset,
            f.size
        );
        assert_eq!(*line, rust, "C says `{line}`, Rust says `{rust}`");
    }
}
