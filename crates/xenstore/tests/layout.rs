//! `struct xs_permissions` as the installed `xenstore_lib.h` lays it out: a C
//! program compiled against the header prints each field's offset and size,
//! and they must equal the Rust definition. Needs Debian's libxen-dev (`npm
//! test` installs it).

use std::fmt::Write as _;
use std::path::Path;

#[test]
fn xs_permissions_matches_the_installed_header() {
    assert!(
        Path::new("/usr/include/xenstore_lib.h").exists(),
        "/usr/include/xenstore_lib.h is missing: install libxen-dev (npm test does it)"
    );
    let fields = xenstore::layouts::xs_permissions();
    let mut program = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include <xenstore_lib.h>\nint main(void) {\n",
    );
    for (field, _, _) in &fields {
        if field.is_empty() {
            program.push_str("  printf(\"- 0 %zu\\n\", sizeof(struct xs_permissions));\n");
        } else {
            writeln!(
                program,
                "  printf(\"{field} %zu %zu\\n\", offsetof(struct xs_permissions, {field}), sizeof(((struct xs_permissions *)0)->{field}));"
            )
            .unwrap();
        }
    }
    program.push_str(
        "  printf(\"bits %d %d %d\\n\", XS_PERM_NONE, XS_PERM_READ, XS_PERM_WRITE);\n  return 0;\n}\n",
    );

    let printed = c_probe::run("xenstore-layout", &program);
    let mut rust: Vec<String> = fields
        .iter()
        .map(|(f, offset, size)| format!("{} {offset} {size}", if f.is_empty() { "-" } else { f }))
        .collect();
    use xenstore::Access;
    rust.push(format!(
        "bits {} {} {}",
        Access::None.bits(),
        Access::Read.bits(),
        Access::Write.bits()
    ));
    assert_eq!(printed.lines().collect::<Vec<_>>(), rust);
}
