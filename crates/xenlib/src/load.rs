//! Finding and loading Xen's libraries. libxenctrl and libxenguest have one
//! soname per release and must be the release the hypervisor runs (Xen
//! refuses another release's sysctls and domctls with EACCES, and struct
//! layouts differ), so their candidates are the running release first (from
//! sysfs), then every supported one, and [`Loaded::release`] says which
//! release was loaded for [`check_matches`] to compare once the hypervisor
//! has answered. libxenstore's soname is stable (`libxenstore.so.4`).

use crate::releases::{XenVersion, RELEASES};
use libloading::Library;
use std::path::Path;

/// A loaded library, and the release its file name says it is.
pub struct Loaded {
    pub name: String,
    /// From the soname (`libxenctrl.so.4.20`) or, for a path given by the
    /// caller, from the file it resolves to; `None` where the name carries
    /// no release (libxenstore, a renamed file).
    pub release: Option<XenVersion>,
    library: Library,
}

impl Loaded {
    /// The function or object `name` (without its NUL) as a `T`.
    ///
    /// # Safety
    /// `T` must be the C type of that symbol in this library (for a
    /// function, an `unsafe extern "C" fn` with its exact signature).
    pub unsafe fn symbol<T: Copy>(&self, name: &str) -> Result<T, libloading::Error> {
        let mut c_name = name.as_bytes().to_vec();
        c_name.push(0);
        // SAFETY: the caller vouches for T; the symbol is copied out (a
        // function pointer), and stays valid while `self` keeps the library.
        let symbol = unsafe { self.library.get::<T>(&c_name) }?;
        Ok(*symbol)
    }
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("name", &self.name)
            .field("release", &self.release)
            .finish()
    }
}

/// No candidate could be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotFound {
    pub tried: Vec<String>,
    /// The dynamic loader's message for the last one tried.
    pub reason: String,
}

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tried {}: {}", self.tried.join(", "), self.reason)
    }
}

/// The release the running hypervisor reports in sysfs, if it is readable.
pub fn running_version() -> Option<XenVersion> {
    let read = |part: &str| {
        std::fs::read_to_string(format!("/sys/hypervisor/version/{part}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    Some(XenVersion::new(read("major")?, read("minor")?))
}

/// The sonames of a per-release library (`base` is `libxenctrl` or
/// `libxenguest`) in the order they are tried: `running`'s first, then the
/// supported releases newest first.
pub fn candidates(base: &str, running: Option<XenVersion>) -> Vec<(String, XenVersion)> {
    let mut list: Vec<(String, XenVersion)> = Vec::new();
    let soname = |v: XenVersion| format!("{base}.so.{}.{}", v.major, v.minor);
    if let Some(v) = running {
        list.push((soname(v), v));
    }
    for r in RELEASES.iter().rev() {
        if Some(r.version) != running {
            list.push((soname(r.version), r.version));
        }
    }
    list
}

/// The release in a library's file name: `libxenctrl.so.4.20` or
/// `libxenctrl.so.4.20.0` is 4.20 (the path is resolved first, so a symlink
/// named otherwise counts as the file it points to).
pub fn release_of_path(path: &Path) -> Option<XenVersion> {
    let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let name = resolved.file_name()?.to_str()?;
    let (_, version) = name.split_once(".so.")?;
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some(XenVersion::new(major, minor))
}

fn dlopen(name: &str) -> Result<Library, libloading::Error> {
    // SAFETY: loading one of Xen's tool libraries runs its initialisers,
    // which only set up the library's own state.
    unsafe { Library::new(name) }
}

/// Loads a per-release library: `path` when the caller gives one, else the
/// first of [`candidates`] that loads.
pub fn load_versioned(base: &str, path: Option<&Path>) -> Result<Loaded, NotFound> {
    let list: Vec<(String, Option<XenVersion>)> = match path {
        Some(p) => vec![(p.display().to_string(), release_of_path(p))],
        None => candidates(base, running_version())
            .into_iter()
            .map(|(name, v)| (name, Some(v)))
            .collect(),
    };
    load_first(list)
}

/// Loads `base`'s soname for exactly `version` (libxenguest beside the
/// libxenctrl already checked against the hypervisor).
pub fn load_release(base: &str, version: XenVersion) -> Result<Loaded, NotFound> {
    load_first(vec![(
        format!("{base}.so.{}.{}", version.major, version.minor),
        Some(version),
    )])
}

/// Loads a library whose soname does not change between releases: `path`
/// when given, else the first of `names`.
pub fn load_stable(names: &[&str], path: Option<&Path>) -> Result<Loaded, NotFound> {
    let list = match path {
        Some(p) => vec![(p.display().to_string(), None)],
        None => names.iter().map(|n| (n.to_string(), None)).collect(),
    };
    load_first(list)
}

fn load_first(list: Vec<(String, Option<XenVersion>)>) -> Result<Loaded, NotFound> {
    let mut reason = String::new();
    for (name, release) in &list {
        match dlopen(name) {
            Ok(library) => {
                return Ok(Loaded {
                    name: name.clone(),
                    release: *release,
                    library,
                })
            }
            Err(e) => reason = e.to_string(),
        }
    }
    Err(NotFound {
        tried: list.into_iter().map(|(n, _)| n).collect(),
        reason,
    })
}

/// A library of one release beside a hypervisor of another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibraryMismatch {
    pub library: String,
    pub library_release: XenVersion,
    pub running: XenVersion,
}

impl std::fmt::Display for LibraryMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is Xen {}'s library but the hypervisor runs Xen {}: Xen refuses another release's \
             hypercalls (EACCES); install Xen {}'s libraries (Debian: libxenmisc{})",
            self.library, self.library_release, self.running, self.running, self.running
        )
    }
}

impl std::error::Error for LibraryMismatch {}

/// Whether a loaded library is the release the hypervisor runs; a library
/// whose name carries no release is taken at its word.
pub fn check_matches(loaded: &Loaded, running: XenVersion) -> Result<(), LibraryMismatch> {
    match loaded.release {
        Some(release) if release != running => Err(LibraryMismatch {
            library: loaded.name.clone(),
            library_release: release,
            running,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_release_is_tried_first_then_newest_first() {
        let names: Vec<String> = candidates("libxenctrl", Some(XenVersion::new(4, 19)))
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            [
                "libxenctrl.so.4.19",
                "libxenctrl.so.4.22",
                "libxenctrl.so.4.21",
                "libxenctrl.so.4.20",
                "libxenctrl.so.4.18",
                "libxenctrl.so.4.17"
            ]
        );
        // An unsupported running release is still tried first: the version
        // check then names it.
        assert_eq!(
            candidates("libxenguest", Some(XenVersion::new(4, 23)))[0].0,
            "libxenguest.so.4.23"
        );
        assert_eq!(candidates("libxenctrl", None).len(), RELEASES.len());
    }

    #[test]
    fn a_path_names_its_release() {
        let v = |p: &str| release_of_path(Path::new(p));
        assert_eq!(
            v("/nonexistent/libxenctrl.so.4.20"),
            Some(XenVersion::new(4, 20))
        );
        assert_eq!(
            v("/nonexistent/libxenctrl.so.4.21.0"),
            Some(XenVersion::new(4, 21))
        );
        assert_eq!(v("/nonexistent/libxenctrl.so"), None);
        assert_eq!(v("/nonexistent/libxenstore.so.4"), None);
    }

    #[test]
    fn a_missing_library_says_what_was_tried() {
        let e = load_stable(&["libxen-nonexistent.so.1"], None).unwrap_err();
        assert_eq!(e.tried, ["libxen-nonexistent.so.1"]);
        assert!(e.reason.contains("libxen-nonexistent.so.1"), "{}", e.reason);
    }

    #[test]
    fn another_release_s_library_is_a_mismatch() {
        // The installed 4.17 libxenctrl (libxen-dev), as if 4.20 ran.
        let library = "/usr/lib/x86_64-linux-gnu/libxenctrl.so.4.17";
        if !c_probe::system_package(library, "libxen-dev") {
            return;
        }
        let loaded = load_versioned("libxenctrl", Some(Path::new(library))).unwrap();
        assert_eq!(loaded.release, Some(XenVersion::new(4, 17)));
        assert_eq!(check_matches(&loaded, XenVersion::new(4, 17)), Ok(()));
        let e = check_matches(&loaded, XenVersion::new(4, 20)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/usr/lib/x86_64-linux-gnu/libxenctrl.so.4.17 is Xen 4.17's library but the hypervisor \
             runs Xen 4.20: Xen refuses another release's hypercalls (EACCES); install Xen 4.20's \
             libraries (Debian: libxenmisc4.20)"
        );
    }
}
