//! xenguest's control protocol: one `prefix:payload` line per message on the
//! control-out fd. `info:` logs, `error:xenguest: FUNCTION: [ERRNO] MESSAGE`
//! (XCP-ng's form) on failure, `result:STORE_MFN CONSOLE_MFN` on success
//! (`result:0 0` after a save or a resume, as xenopsd's save helper ends).
//! A save asks the toolstack to suspend the guest with `suspend:` and reads
//! its answer, one line on the control-in fd: `done`, or `abort`.

use std::io::Write;

/// A failed step: the libxenguest/libxenctrl function, the errno, and what
/// the library said (or errno's description).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub function: &'static str,
    pub errno: i32,
    pub message: String,
}

impl Failure {
    pub fn new(function: &'static str, errno: i32, message: impl Into<String>) -> Failure {
        Failure {
            function,
            errno,
            message: message.into(),
        }
    }
}

/// The frames the toolstack needs to connect xenstore and the console:
/// machine frames for PV, guest frames for HVM and PVH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Built {
    pub store_mfn: u64,
    pub console_mfn: u64,
}

/// Keeps a line on one line: the protocol is line-based.
fn one_line(text: &str) -> String {
    text.trim_end()
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect()
}

pub fn info_line(message: &str) -> String {
    format!("info:{}\n", one_line(message))
}

pub fn error_line(failure: &Failure) -> String {
    format!(
        "error:xenguest: {}: [{}] {}\n",
        failure.function,
        failure.errno,
        one_line(&failure.message)
    )
}

pub fn result_line(built: &Built) -> String {
    format!("result:{} {}\n", built.store_mfn, built.console_mfn)
}

/// What a save or a resume answers on success: xenopsd's save helper ends
/// a save with `result:0 0` (no frames to report).
pub const NO_FRAMES: Built = Built {
    store_mfn: 0,
    console_mfn: 0,
};

/// The request to suspend the guest; the toolstack answers [`DONE`] once
/// the domain has shut down for suspend.
pub const SUSPEND_LINE: &str = "suspend:\n";
/// The toolstack's acknowledgement, a line of its own.
pub const DONE: &str = "done";
/// The toolstack's request to give up (xenopsd sends it on cancellation).
pub const ABORT: &str = "abort";

/// Where control lines go. A write that fails (the toolstack closed the
/// pipe) is not retried: nobody is listening any more.
pub struct Control<W: Write> {
    out: W,
}

impl<W: Write> Control<W> {
    pub fn new(out: W) -> Self {
        Control { out }
    }

    fn send(&mut self, line: &str) {
        let _ = self.out.write_all(line.as_bytes());
        let _ = self.out.flush();
    }

    pub fn info(&mut self, message: &str) {
        self.send(&info_line(message));
    }

    pub fn error(&mut self, failure: &Failure) {
        self.send(&error_line(failure));
    }

    pub fn result(&mut self, built: &Built) {
        self.send(&result_line(built));
    }

    pub fn suspend(&mut self) {
        self.send(SUSPEND_LINE);
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_xenguests_forms() {
        assert_eq!(
            info_line("xc_dom_boot_mem_init: 12 ms"),
            "info:xc_dom_boot_mem_init: 12 ms\n"
        );
        assert_eq!(
            error_line(&Failure::new("xc_dom_kernel_file", 2, "failed to open file 'k': No such file\nor directory\n")),
            "error:xenguest: xc_dom_kernel_file: [2] failed to open file 'k': No such file or directory\n"
        );
        assert_eq!(
            result_line(&Built {
                store_mfn: 1044480,
                console_mfn: 1044479
            }),
            "result:1044480 1044479\n"
        );
    }

    #[test]
    fn control_writes_each_line_whole() {
        let mut c = Control::new(Vec::new());
        c.info("a");
        c.error(&Failure::new("f", 22, "m"));
        assert_eq!(
            String::from_utf8(c.into_inner()).unwrap(),
            "info:a\nerror:xenguest: f: [22] m\n"
        );
    }
}
