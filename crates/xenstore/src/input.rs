//! xenstored's rules for paths and values, checked before any call so that
//! bad input is INVALID_ARGUMENT rather than whatever errno a daemon picks.
//! They are the boundary of this crate's public API: every path becomes a C
//! string for libxenstore here, and Rust callers reach it with nothing in
//! front. The TypeScript client checks the same rules, with the same words,
//! in `ts/xenstore-input.ts` before a request crosses N-API.

use crate::error::{Result, XsError};

/// `XENSTORE_PAYLOAD_MAX`: the largest message body (a write carries the
/// path, a NUL and the value).
pub const PAYLOAD_MAX_BYTES: usize = 4096;
/// `XENSTORE_ABS_PATH_MAX`.
pub const ABS_PATH_MAX_BYTES: usize = 3072;
/// `XENSTORE_REL_PATH_MAX`: a path relative to the caller's home.
pub const REL_PATH_MAX_BYTES: usize = 2048;

fn valid_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'/' | b'_' | b'@')
}

fn refuse(operation: &'static str, message: String) -> XsError {
    XsError::InvalidArgument { operation, message }
}

/// A node path as xenstored accepts it: absolute (`/a/b`) or relative to the
/// caller's home (`a/b`), of `0-9a-zA-Z-/_@` only, no empty component, no
/// trailing `/` (but `/` itself), within the length limits.
pub fn check_path(operation: &'static str, path: &str) -> Result<()> {
    let shown = || {
        if path.len() > 60 {
            format!("{:?}…", &path[..path.floor_char_boundary_compat(60)])
        } else {
            format!("{path:?}")
        }
    };
    if path.is_empty() {
        return Err(refuse(operation, "path: empty".into()));
    }
    if let Some(bad) = path.bytes().find(|&c| !valid_char(c)) {
        let what = if bad == 0 {
            "a NUL byte".to_string()
        } else {
            format!("{:?}", char::from(bad))
        };
        return Err(refuse(
            operation,
            format!(
                "path {}: {what} is not allowed (xenstored takes 0-9 a-z A-Z - / _ @)",
                shown()
            ),
        ));
    }
    if path.contains("//") || (path.len() > 1 && path.ends_with('/')) {
        return Err(refuse(
            operation,
            format!("path {}: an empty component", shown()),
        ));
    }
    let absolute = path.starts_with('/');
    let length = path.len();
    let limit = if absolute {
        ABS_PATH_MAX_BYTES
    } else {
        REL_PATH_MAX_BYTES
    };
    if length > limit {
        return Err(refuse(
            operation,
            format!(
                "path {}: {length} bytes, over xenstore's {limit} for an {} path",
                shown(),
                if absolute { "absolute" } else { "relative" }
            ),
        ));
    }
    Ok(())
}

/// A write's path and value: the message (path, NUL, value) must fit
/// `XENSTORE_PAYLOAD_MAX`.
pub fn check_write(operation: &'static str, path: &str, value: &[u8]) -> Result<()> {
    check_path(operation, path)?;
    let payload = path.len() + 1 + value.len();
    if payload > PAYLOAD_MAX_BYTES {
        return Err(refuse(
            operation,
            format!(
                "value: {} bytes, and with the path {payload} bytes, over xenstore's {PAYLOAD_MAX_BYTES}-byte payload",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// `str::floor_char_boundary` is not stable on our minimum Rust.
trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, index: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, index: usize) -> usize {
        (0..=index.min(self.len()))
            .rev()
            .find(|&i| self.is_char_boundary(i))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Result<()>) -> String {
        r.map_or_else(|e| e.code(), |()| "ok".into())
    }

    #[test]
    fn paths_take_xenstoreds_characters_only() {
        for ok in [
            "/",
            "/local/domain/3/memory/target",
            "data/x",
            "/vm/a-b_c@d",
            "@x",
        ] {
            assert_eq!(code(check_path("op", ok)), "ok", "{ok}");
        }
        for bad in ["", "/a b", "/a\0b", "/a.b", "/é", "/a//b", "/a/", "a:b"] {
            assert_eq!(code(check_path("op", bad)), "INVALID_ARGUMENT", "{bad:?}");
        }
        let e = check_path("xs_read", "/a\0b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "xs_read: path \"/a\\0b\": a NUL byte is not allowed (xenstored takes 0-9 a-z A-Z - / _ @)"
        );
    }

    #[test]
    fn path_lengths_are_xenstores_limits() {
        let abs = |n: usize| format!("/{}", "a".repeat(n - 1));
        assert_eq!(code(check_path("op", &abs(ABS_PATH_MAX_BYTES))), "ok");
        let e = check_path("op", &abs(ABS_PATH_MAX_BYTES + 1)).unwrap_err();
        assert_eq!(e.code(), "INVALID_ARGUMENT");
        assert!(e
            .to_string()
            .ends_with(": 3073 bytes, over xenstore's 3072 for an absolute path"));
        assert_eq!(
            code(check_path("op", &"r".repeat(REL_PATH_MAX_BYTES))),
            "ok"
        );
        assert_eq!(
            code(check_path("op", &"r".repeat(REL_PATH_MAX_BYTES + 1))),
            "INVALID_ARGUMENT"
        );
    }

    #[test]
    fn a_write_must_fit_the_payload() {
        let path = "/a";
        let fits = vec![b'x'; PAYLOAD_MAX_BYTES - path.len() - 1];
        assert_eq!(code(check_write("op", path, &fits)), "ok");
        let over = vec![b'x'; PAYLOAD_MAX_BYTES - path.len()];
        assert_eq!(code(check_write("op", path, &over)), "INVALID_ARGUMENT");
        assert_eq!(code(check_write("op", "/a b", b"")), "INVALID_ARGUMENT");
    }
}
