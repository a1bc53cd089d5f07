//! The Xen releases this project supports, and what changes between them
//! for the calls it makes (see `docs/XEN-RELEASES.md` for where each fact
//! comes from). Everything else the project passes to Xen's libraries is
//! laid out the same in every release listed here; the layout tests check
//! that against each release's headers.

/// A Xen release, as `XENVER_version` reports it (major << 16 | minor).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct XenVersion {
    pub major: u32,
    pub minor: u32,
}

impl XenVersion {
    pub const fn new(major: u32, minor: u32) -> XenVersion {
        XenVersion { major, minor }
    }

    /// From `xc_version(XENVER_version)`'s packed answer.
    pub fn from_packed(raw: u32) -> XenVersion {
        XenVersion {
            major: raw >> 16,
            minor: raw & 0xffff,
        }
    }
}

impl std::fmt::Display for XenVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The two layouts `struct xen_domctl_createdomain` has had in the
/// supported releases (x86_64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateDomainLayout {
    /// 64 bytes: `vmtrace_size` right after `grant_opts` (4.17, 4.18).
    Bytes64,
    /// 68 bytes: a 32-bit altp2m field after `grant_opts` moves
    /// `vmtrace_size`, `cpupool_id` and `arch` 4 bytes on (4.19 and later).
    Bytes68,
}

/// What differs in one release, for the calls this project makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Release {
    pub version: XenVersion,
    /// `XEN_SYSCTL_INTERFACE_VERSION`: Xen refuses a sysctl from a library
    /// built with another one (EACCES).
    pub sysctl_interface: u32,
    /// `XEN_DOMCTL_INTERFACE_VERSION`, likewise for domctls.
    pub domctl_interface: u32,
    pub createdomain: CreateDomainLayout,
    /// Whether `xc_domain_claim_pages` passes ENOSYS (a Xen without
    /// claims) back to its caller; before 4.22 it turned it into success.
    pub claim_passes_enosys: bool,
    /// The first patch release (4.x.N) in which a claim for a dying domain
    /// is EINVAL; earlier ones accepted it.
    pub dying_claim_einval_from_patch: u32,
    /// The C field name of createdomain's altp2m bytes, where there are some.
    pub createdomain_altp2m_field: Option<&'static str>,
    /// Whether `xc_domain_restore` takes a last `unsigned int memflags`
    /// argument (for its `xc_domain_populate_physmap` calls); before 4.22 it
    /// has none, and a restore's pages follow the domain's node affinity.
    pub restore_takes_memflags: bool,
}

impl Release {
    /// `libxenctrl.so.4.N`, `libxenguest.so.4.N`: their sonames change with
    /// every release (`base` is `libxenctrl` or `libxenguest`).
    pub fn soname(&self, base: &str) -> String {
        format!("{base}.so.{}.{}", self.version.major, self.version.minor)
    }
}

const fn entry(
    minor: u32,
    sysctl_interface: u32,
    domctl_interface: u32,
    dying_claim_einval_from_patch: u32,
) -> Release {
    let createdomain = if minor >= 19 {
        CreateDomainLayout::Bytes68
    } else {
        CreateDomainLayout::Bytes64
    };
    Release {
        version: XenVersion::new(4, minor),
        sysctl_interface,
        domctl_interface,
        createdomain,
        claim_passes_enosys: minor >= 22,
        dying_claim_einval_from_patch,
        createdomain_altp2m_field: match minor {
            0..=18 => None,
            19 | 20 => Some("altp2m_opts"),
            // A struct of two 16-bit fields (opts, nr) in the same 4 bytes.
            _ => Some("altp2m"),
        },
        restore_takes_memflags: minor >= 22,
    }
}

/// Every supported release, oldest first: the upstream releases in
/// security support. A release not listed is refused by name.
pub const RELEASES: &[Release] = &[
    // 4.17 and 4.18 never had the dying-domain fix: u32::MAX says so.
    entry(17, 0x15, 0x15, u32::MAX),
    entry(18, 0x15, 0x16, u32::MAX),
    entry(19, 0x15, 0x17, 5),
    entry(20, 0x15, 0x17, 3),
    entry(21, 0x16, 0x17, 1),
    entry(22, 0x16, 0x18, 0),
];

/// The release entry for `version`, if it is supported.
pub fn release(version: XenVersion) -> Option<&'static Release> {
    RELEASES.iter().find(|r| r.version == version)
}

/// The supported versions, oldest first.
pub fn supported_versions() -> Vec<XenVersion> {
    RELEASES.iter().map(|r| r.version).collect()
}

/// A Xen release this project does not support.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    pub version: XenVersion,
    pub supported: Vec<XenVersion>,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (oldest, newest) = (self.supported[0], self.supported[self.supported.len() - 1]);
        let why = if self.version > newest {
            "is newer than the newest release this version of xen-domain-build knows"
        } else {
            "is not supported"
        };
        write!(
            f,
            "Xen {} {why} (supported: {oldest} to {newest})",
            self.version
        )
    }
}

impl std::error::Error for Unsupported {}

/// The release entry for `version`, or why it is refused.
pub fn check_supported(version: XenVersion) -> Result<&'static Release, Unsupported> {
    release(version).ok_or_else(|| Unsupported {
        version,
        supported: supported_versions(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_release_from_4_17_to_4_22_in_order() {
        let minors: Vec<u32> = RELEASES.iter().map(|r| r.version.minor).collect();
        assert_eq!(minors, vec![17, 18, 19, 20, 21, 22]);
        assert!(RELEASES.iter().all(|r| r.version.major == 4));
    }

    #[test]
    fn createdomain_grows_in_4_19_and_claims_pass_enosys_from_4_22() {
        let layout = |minor| {
            check_supported(XenVersion::new(4, minor))
                .unwrap()
                .createdomain
        };
        assert_eq!(layout(18), CreateDomainLayout::Bytes64);
        assert_eq!(layout(19), CreateDomainLayout::Bytes68);
        let enosys = |minor| {
            check_supported(XenVersion::new(4, minor))
                .unwrap()
                .claim_passes_enosys
        };
        assert!(!enosys(21));
        assert!(enosys(22));
    }

    #[test]
    fn only_4_22_s_restore_takes_memory_flags() {
        let with: Vec<u32> = RELEASES
            .iter()
            .filter(|r| r.restore_takes_memflags)
            .map(|r| r.version.minor)
            .collect();
        assert_eq!(with, vec![22]);
    }

    #[test]
    fn sonames_carry_the_release() {
        let r = release(XenVersion::new(4, 20)).unwrap();
        assert_eq!(r.soname("libxenctrl"), "libxenctrl.so.4.20");
        assert_eq!(r.soname("libxenguest"), "libxenguest.so.4.20");
    }

    #[test]
    fn other_releases_are_refused_by_name_with_the_supported_range() {
        let newer = check_supported(XenVersion::new(4, 23)).unwrap_err();
        assert_eq!(
            newer.to_string(),
            "Xen 4.23 is newer than the newest release this version of xen-domain-build knows (supported: 4.17 to 4.22)"
        );
        let older = check_supported(XenVersion::new(4, 16)).unwrap_err();
        assert_eq!(
            older.to_string(),
            "Xen 4.16 is not supported (supported: 4.17 to 4.22)"
        );
        assert_eq!(older.supported.len(), 6);
    }

    #[test]
    fn packed_versions_unpack() {
        assert_eq!(XenVersion::from_packed(0x0004_0014), XenVersion::new(4, 20));
    }
}
