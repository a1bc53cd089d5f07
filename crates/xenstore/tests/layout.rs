//! `struct xs_permissions` and the permission bits as every supported
//! release's `xenstore_lib.h` has them: the Rust definitions must say
//! exactly what each release's committed facts say (crates/c-probe,
//! measured from that release's headers).

use c_probe::{assert_matches, committed, RustFacts};
use xenstore::Access;

#[test]
fn xs_permissions_matches_every_release_s_header() {
    let mut rust = RustFacts::default();
    for (field, offset, size) in xenstore::layouts::xs_permissions() {
        if field.is_empty() {
            rust.size("xs_permissions", size);
        } else {
            rust.field("xs_permissions", field, offset, size);
        }
    }
    rust.constant("XS_PERM_NONE", Access::None.bits().into());
    rust.constant("XS_PERM_READ", Access::Read.bits().into());
    rust.constant("XS_PERM_WRITE", Access::Write.bits().into());
    let owned = [
        "xs_permissions",
        "XS_PERM_NONE",
        "XS_PERM_READ",
        "XS_PERM_WRITE",
    ];
    for release in xenlib::RELEASES {
        let facts = committed(release.version.minor);
        assert_matches(&release.version.to_string(), &facts, &owned, &rust);
    }
}
