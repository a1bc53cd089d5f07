//! Saving, restoring and resuming a domain: xenopsd's save helper's modes
//! (`save`, `hvm_save`, `restore`, `hvm_restore`) and `resume`, over
//! libxenguest's `xc_domain_save`, `xc_domain_restore` and
//! `xc_domain_resume` ([`Streams`]: the real one is in `ffi`, tests use
//! fakes). What libxenguest calls back during a save or a restore is here
//! too, in safe code: the suspend exchange with the toolstack, the precopy
//! policy and its progress lines ([`SaveSession`]), the static-data check of
//! a restore ([`RestoreSession`]).

use crate::args::{Guest, RestoreArgs, ResumeArgs, SaveArgs};
use crate::protocol::{Built, Control, Failure, ABORT, DONE, NO_FRAMES};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use xenlib::XenVersion;

/// `xc_domain_save`'s flags (`XCFLAGS_LIVE`, `XCFLAGS_DEBUG`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SaveFlags {
    pub live: bool,
    pub debug: bool,
}

/// What `xc_domain_restore` is given besides the stream's fd and callbacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestoreRequest {
    pub domid: u32,
    pub fd: i32,
    pub store_port: u32,
    pub store_domid: u32,
    pub console_port: u32,
    pub console_domid: u32,
    /// The last argument of 4.22's `xc_domain_restore`; `None` for a
    /// release whose `xc_domain_restore` takes none.
    pub memflags: Option<u32>,
}

/// The host's libxenguest, for these modes.
pub trait Streams {
    /// The release that runs.
    fn xen_version(&self) -> XenVersion;
    /// Whether the domain runs in an HVM container (HVM or PVH).
    fn domain_is_hvm(&self, domid: u32) -> Result<bool, Failure>;
    /// `xc_domain_save` of a plain stream (no checkpoints) to `fd`.
    fn domain_save(
        &self,
        domid: u32,
        fd: i32,
        flags: SaveFlags,
        callbacks: &mut dyn SaveCallbacks,
    ) -> Result<(), Failure>;
    /// `xc_domain_restore` of a plain stream; the store and console frames.
    fn domain_restore(
        &self,
        request: &RestoreRequest,
        callbacks: &mut dyn RestoreCallbacks,
    ) -> Result<Built, Failure>;
    /// `xc_domain_resume(xch, domid, 1)`: a cooperative (fast) resume.
    fn domain_resume(&self, domid: u32) -> Result<(), Failure>;
}

/// `struct precopy_stats`, as libxenguest gives it to the precopy policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrecopyStats {
    /// The rounds of pages sent so far.
    pub iteration: u32,
    /// The pages sent so far.
    pub sent_pages: u64,
    /// The pages to send in the coming round (all of them before the
    /// first); `None` (libxenguest's -1) right after a round, before Xen
    /// has been asked which pages the guest dirtied meanwhile.
    pub dirty_pages: Option<u64>,
}

/// What a precopy policy answers (`XGS_POLICY_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send another round while the guest runs.
    Continue,
    /// Suspend the guest and send what is left.
    StopAndCopy,
    /// Give the save up; libxenguest tidies up (log-dirty mode off).
    Abort,
}

impl Decision {
    pub fn name(self) -> &'static str {
        match self {
            Decision::Continue => "continue",
            Decision::StopAndCopy => "stop_and_copy",
            Decision::Abort => "abort",
        }
    }
}

/// libxenguest's default policy (`simple_precopy_policy`, xg_sr_save.c, the
/// same in 4.17 to 4.22) stops when fewer than `SPP_TARGET_DIRTY_COUNT`
/// pages are dirty, or after `SPP_MAX_ITERATIONS` rounds.
pub const PRECOPY_MAX_ITERATIONS: u32 = 5;
pub const PRECOPY_TARGET_DIRTY_PAGES: u64 = 50;

/// The decision libxenguest's default policy makes.
pub fn precopy_decision(stats: PrecopyStats) -> Decision {
    let few_dirty = stats
        .dirty_pages
        .is_some_and(|d| d < PRECOPY_TARGET_DIRTY_PAGES);
    if few_dirty || stats.iteration >= PRECOPY_MAX_ITERATIONS {
        Decision::StopAndCopy
    } else {
        Decision::Continue
    }
}

/// The progress line's message (after `info:`): `precopy`, then
/// `iteration=I sent_pages=S dirty_pages=D decision=X`, every key always
/// there, in that order; `dirty_pages=-1` when not yet counted.
pub fn progress_message(stats: PrecopyStats, decision: Decision) -> String {
    let dirty = stats
        .dirty_pages
        .map_or_else(|| "-1".to_string(), |d| d.to_string());
    format!(
        "precopy iteration={} sent_pages={} dirty_pages={dirty} decision={}",
        stats.iteration,
        stats.sent_pages,
        decision.name()
    )
}

/// libxenguest asks the policy twice a round: before it (the dirty count
/// known) and right after it (not yet counted). The first is reported,
/// and the one that ends the live copy: one line per round.
fn reported(stats: PrecopyStats, decision: Decision) -> bool {
    stats.dirty_pages.is_some() || decision != Decision::Continue
}

/// What libxenguest calls during `xc_domain_save`.
pub trait SaveCallbacks {
    /// Have the toolstack suspend the guest: true once it is suspended.
    fn suspend(&mut self) -> bool;
    /// Whether to go on copying while the guest runs (live saves only).
    fn precopy_policy(&mut self, stats: PrecopyStats) -> Decision;
    /// Tell the device model to track (or stop tracking) the pages it
    /// dirties (HVM container only): false fails the save.
    fn switch_qemu_logdirty(&mut self, domid: u32, enable: bool) -> bool;
    /// Record why a callback failed (the first reason is kept).
    fn failed(&mut self, failure: Failure);
}

/// Which restore records a stream lacks (a stream from before Xen 4.14).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StaticDataMissing {
    pub cpuid: bool,
    pub msr: bool,
}

/// What libxenguest calls during `xc_domain_restore`.
pub trait RestoreCallbacks {
    /// The stream's static data (the CPU policy) is in: false fails it.
    fn static_data_done(&mut self, missing: StaticDataMissing) -> bool;
    fn failed(&mut self, failure: Failure);
}

/// The longest line read from the toolstack; a longer one is taken whole as
/// one (wrong) answer.
const MAX_LINE_BYTES: usize = 4096;

/// A line from the control-in fd, or its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A whole line, without its newline.
    Line(String),
    /// What came before the end of the input (or [`MAX_LINE_BYTES`] of it)
    /// without a newline: never an answer.
    Unfinished(String),
    Eof,
}

/// The control-in fd, read a line at a time: waiting for the answer to
/// `suspend:`, or taking only what is already there (during the live copy).
pub struct ControlIn<R> {
    input: R,
    buffer: Vec<u8>,
    eof: bool,
}

impl<R: Read + AsFd> ControlIn<R> {
    pub fn new(input: R) -> Self {
        ControlIn {
            input,
            buffer: Vec::new(),
            eof: false,
        }
    }

    fn take_line(&mut self) -> Option<Answer> {
        if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            return Some(Answer::Line(
                String::from_utf8_lossy(&line[..end]).into_owned(),
            ));
        }
        // An unfinished line is an answer of its own when no more can come.
        if self.eof || self.buffer.len() >= MAX_LINE_BYTES {
            if self.buffer.is_empty() {
                return Some(Answer::Eof);
            }
            let rest = std::mem::take(&mut self.buffer);
            return Some(Answer::Unfinished(
                String::from_utf8_lossy(&rest).into_owned(),
            ));
        }
        None
    }

    /// One read: what is there, or the end.
    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 512];
        loop {
            match self.input.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.buffer.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next line, waiting for it.
    pub fn read_line(&mut self) -> io::Result<Answer> {
        loop {
            if let Some(answer) = self.take_line() {
                return Ok(answer);
            }
            self.fill()?;
        }
    }

    /// The next line if the toolstack has written it, without waiting.
    pub fn poll_line(&mut self) -> io::Result<Option<Answer>> {
        if let Some(answer) = self.take_line() {
            return Ok(Some(answer));
        }
        if !crate::ffi::readable(self.input.as_fd())? {
            return Ok(None);
        }
        self.fill()?;
        Ok(self.take_line())
    }
}

/// A save's callbacks: the control pipes, and why a callback failed.
pub struct SaveSession<'a, W: Write, R> {
    control: &'a mut Control<W>,
    input: ControlIn<R>,
    failure: Option<Failure>,
}

impl<'a, W: Write, R: Read + AsFd> SaveSession<'a, W, R> {
    pub fn new(control: &'a mut Control<W>, input: R) -> Self {
        SaveSession {
            control,
            input: ControlIn::new(input),
            failure: None,
        }
    }

    /// Why a callback failed, if one did.
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    fn fail(&mut self, function: &'static str, errno: i32, message: String) {
        self.failed(Failure::new(function, errno, message));
    }

    fn read_failed(&mut self, function: &'static str, e: &io::Error) {
        let errno = e.raw_os_error().unwrap_or(libc::EIO);
        self.fail(function, errno, format!("reading the control pipe: {e}"));
    }
}

impl<W: Write, R: Read + AsFd> SaveCallbacks for SaveSession<'_, W, R> {
    fn suspend(&mut self) -> bool {
        self.control.suspend();
        match self.input.read_line() {
            Ok(Answer::Line(line)) if line == DONE => true,
            Ok(Answer::Line(line)) if line == ABORT => {
                self.fail(
                    "suspend",
                    libc::ECANCELED,
                    "the toolstack answered abort to suspend:".into(),
                );
                false
            }
            Ok(Answer::Line(line)) => {
                self.fail(
                    "suspend",
                    libc::EPROTO,
                    format!("the toolstack answered {line:?} to suspend:, not \"done\""),
                );
                false
            }
            Ok(Answer::Unfinished(text)) => {
                self.fail(
                    "suspend",
                    libc::EPROTO,
                    format!("the toolstack answered {text:?} to suspend: without ending the line"),
                );
                false
            }
            Ok(Answer::Eof) => {
                self.fail(
                    "suspend",
                    libc::EPIPE,
                    "the toolstack closed the control pipe instead of answering suspend:".into(),
                );
                false
            }
            Err(e) => {
                self.read_failed("suspend", &e);
                false
            }
        }
    }

    fn precopy_policy(&mut self, stats: PrecopyStats) -> Decision {
        // Before suspend: only `abort` may come, between two rounds.
        let decision = match self.input.poll_line() {
            Ok(None) => precopy_decision(stats),
            Ok(Some(Answer::Line(line))) if line == ABORT => {
                self.fail(
                    "precopy_policy",
                    libc::ECANCELED,
                    "the toolstack aborted the save".into(),
                );
                Decision::Abort
            }
            Ok(Some(Answer::Line(line) | Answer::Unfinished(line))) => {
                self.fail(
                    "precopy_policy",
                    libc::EPROTO,
                    format!("the toolstack wrote {line:?} before suspend:; only abort may come"),
                );
                Decision::Abort
            }
            Ok(Some(Answer::Eof)) => {
                self.fail(
                    "precopy_policy",
                    libc::EPIPE,
                    "the toolstack closed the control pipe during the live copy".into(),
                );
                Decision::Abort
            }
            Err(e) => {
                self.read_failed("precopy_policy", &e);
                Decision::Abort
            }
        };
        if reported(stats, decision) {
            self.control.info(&progress_message(stats, decision));
        }
        decision
    }

    fn switch_qemu_logdirty(&mut self, domid: u32, enable: bool) -> bool {
        let state = if enable { "on" } else { "off" };
        self.control.info(&format!(
            "log-dirty {state} for domain {domid}: no device model told (a PVH guest has none; \
             an HVM guest's is the toolstack's)"
        ));
        true
    }

    fn failed(&mut self, failure: Failure) {
        self.failure.get_or_insert(failure);
    }
}

/// A restore's callbacks.
pub struct RestoreSession<'a, W: Write> {
    control: &'a mut Control<W>,
    failure: Option<Failure>,
}

impl<'a, W: Write> RestoreSession<'a, W> {
    pub fn new(control: &'a mut Control<W>) -> Self {
        RestoreSession {
            control,
            failure: None,
        }
    }

    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }
}

impl<W: Write> RestoreCallbacks for RestoreSession<'_, W> {
    fn static_data_done(&mut self, missing: StaticDataMissing) -> bool {
        // Streams from Xen 4.14 on carry the guest's CPUID and MSR policy,
        // which libxenguest has just applied. libxl regenerates a missing
        // CPUID policy (libxl__cpuid_legacy); this builder does not.
        if missing.cpuid {
            self.failed(Failure::new(
                "static_data_done",
                libc::EOPNOTSUPP,
                "the stream has no CPUID policy (saved by a Xen before 4.14): not restored",
            ));
            return false;
        }
        if missing.msr {
            self.control
                .info("the stream has no MSR policy: the domain keeps the one it was created with");
        }
        true
    }

    fn failed(&mut self, failure: Failure) {
        self.failure.get_or_insert(failure);
    }
}

/// `XENMEMF_exact_node(node)` (xen/include/public/memory.h): the node, plus
/// one, in bits 8 to 15, and `XENMEMF_exact_node_request`. `None` for a
/// node the 8 bits cannot hold (255 and up).
pub fn exact_node_memflags(node: u32) -> Option<u32> {
    const XENMEMF_EXACT_NODE_REQUEST: u32 = 1 << 17;
    if node >= 0xff {
        return None;
    }
    Some(((node + 1) << 8) | XENMEMF_EXACT_NODE_REQUEST)
}

/// What a restore passes as `memflags` on `version`: on a release whose
/// `xc_domain_restore` takes them (4.22), every page from exactly
/// `mem_pnode`, or 0 (no constraint); `None` on the others.
pub fn restore_memflags(
    version: XenVersion,
    mem_pnode: Option<u32>,
) -> Result<Option<u32>, Failure> {
    let takes_flags = xenlib::release(version).is_some_and(|r| r.restore_takes_memflags);
    if !takes_flags {
        return Ok(None);
    }
    match mem_pnode {
        None => Ok(Some(0)),
        Some(node) => exact_node_memflags(node).map(Some).ok_or_else(|| {
            Failure::new(
                "xc_domain_restore",
                libc::EINVAL,
                format!("-mem_pnode {node}: Xen's memory flags hold nodes 0 to 254"),
            )
        }),
    }
}

/// A mode must name the domain's kind: xenopsd says `save`/`restore` for PV,
/// `hvm_save`/`hvm_restore` for HVM and PVH. libxenguest itself goes by the
/// domain (and a restore by the stream's header), so a mismatch means the
/// toolstack has the wrong domain or the wrong image.
fn check_kind(
    xg: &impl Streams,
    domid: u32,
    guest: Guest,
    mode: &'static str,
) -> Result<(), Failure> {
    let hvm = xg.domain_is_hvm(domid)?;
    let wanted = match (guest, hvm) {
        (Guest::Pv, true) => "an HVM container (HVM or PVH): use the hvm_ mode",
        (Guest::Hvm, false) => "a PV domain: use the mode without hvm_",
        _ => return Ok(()),
    };
    Err(Failure::new(
        mode,
        libc::EINVAL,
        format!("domain {domid} is {wanted}"),
    ))
}

/// Saves the domain to `args.fd`, asking the toolstack (on `control` and
/// `input`) to suspend it; `result:0 0` follows.
pub fn save<W: Write, R: Read + AsFd>(
    xg: &impl Streams,
    args: &SaveArgs,
    control: &mut Control<W>,
    input: R,
) -> Result<Built, Failure> {
    check_kind(xg, args.domid, args.guest, args.guest.save_mode())?;
    let flags = SaveFlags {
        live: args.live,
        debug: args.debug,
    };
    let mut session = SaveSession::new(control, input);
    let outcome = xg.domain_save(args.domid, args.fd, flags, &mut session);
    // A callback's own reason says more than libxenguest's "save callback
    // suspend() failed".
    match (outcome, session.failure) {
        (Ok(()), _) => Ok(NO_FRAMES),
        (Err(_), Some(why)) => Err(why),
        (Err(e), None) => Err(e),
    }
}

/// Restores the stream on `args.fd` into the domain the toolstack made.
pub fn restore<W: Write>(
    xg: &impl Streams,
    args: &RestoreArgs,
    control: &mut Control<W>,
) -> Result<Built, Failure> {
    check_kind(xg, args.domid, args.guest, args.guest.restore_mode())?;
    let version = xg.xen_version();
    let memflags = restore_memflags(version, args.mem_pnode)?;
    if let (None, Some(node)) = (memflags, args.mem_pnode) {
        control.info(&format!(
            "-mem_pnode {node}: Xen {version}'s xc_domain_restore takes no memory flags; the \
             pages follow the domain's node affinity (the toolstack's soft affinity)"
        ));
    }
    let request = RestoreRequest {
        domid: args.domid,
        fd: args.fd,
        store_port: args.store_port,
        store_domid: args.store_domid,
        console_port: args.console_port,
        console_domid: args.console_domid,
        memflags,
    };
    let mut session = RestoreSession::new(control);
    let outcome = xg.domain_restore(&request, &mut session);
    match (outcome, session.failure) {
        (Ok(built), _) => Ok(built),
        (Err(_), Some(why)) => Err(why),
        (Err(e), None) => Err(e),
    }
}

/// Resumes a guest that suspended for a save that then failed or was
/// cancelled: it sees its suspend hypercall return 1 ("cancelled") and runs
/// on in the same domain.
pub fn resume(xg: &impl Streams, args: &ResumeArgs) -> Result<Built, Failure> {
    xg.domain_resume(args.domid)?;
    Ok(NO_FRAMES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{RestoreArgs, ResumeArgs, SaveArgs};
    use std::cell::RefCell;
    use std::io::{pipe, BufRead, BufReader, PipeReader, PipeWriter};
    use std::thread;

    fn stats(iteration: u32, sent_pages: u64, dirty_pages: Option<u64>) -> PrecopyStats {
        PrecopyStats {
            iteration,
            sent_pages,
            dirty_pages,
        }
    }

    /// The builder's ends (control-out to write, control-in to read) and the
    /// toolstack's.
    fn pipes() -> ((PipeWriter, PipeReader), (PipeReader, PipeWriter)) {
        let (toolstack_reads, builder_writes) = pipe().unwrap();
        let (builder_reads, toolstack_writes) = pipe().unwrap();
        (
            (builder_writes, builder_reads),
            (toolstack_reads, toolstack_writes),
        )
    }

    /// A toolstack that answers `answer` (if any) to each `suspend:`, then
    /// reads on to the end; returns every line it read.
    fn toolstack(
        reads: PipeReader,
        mut writes: PipeWriter,
        answer: Option<&'static str>,
    ) -> thread::JoinHandle<Vec<String>> {
        thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(reads).lines() {
                let line = line.unwrap();
                if line == "suspend:" {
                    match answer {
                        Some(a) => writes.write_all(a.as_bytes()).unwrap(),
                        None => return lines_with(lines, line),
                    }
                }
                lines.push(line);
            }
            lines
        })
    }

    fn lines_with(mut lines: Vec<String>, line: String) -> Vec<String> {
        lines.push(line);
        lines
    }

    #[test]
    fn suspend_writes_the_request_then_waits_for_done() {
        let ((out, input), (reads, writes)) = pipes();
        // The answer is written only once the request has been read.
        let ts = toolstack(reads, writes, Some("done\n"));
        let mut control = Control::new(out);
        let mut session = SaveSession::new(&mut control, input);
        assert!(session.suspend());
        assert_eq!(session.failure(), None);
        drop(session);
        drop(control);
        assert_eq!(ts.join().unwrap(), ["suspend:"]);
    }

    #[test]
    fn an_answer_in_pieces_is_one_line() {
        let ((out, input), (_reads, mut writes)) = pipes();
        let mut control = Control::new(out);
        let mut session = SaveSession::new(&mut control, input);
        let writer = thread::spawn(move || {
            writes.write_all(b"do").unwrap();
            thread::sleep(std::time::Duration::from_millis(20));
            writes.write_all(b"ne\n").unwrap();
        });
        assert!(session.suspend());
        writer.join().unwrap();
    }

    /// The failure `suspend` records when the toolstack sends `answer`
    /// (then closes its end).
    fn refused_suspend(answer: &[u8]) -> Failure {
        let ((out, input), (reads, mut writes)) = pipes();
        writes.write_all(answer).unwrap();
        drop(writes);
        let mut control = Control::new(out);
        let mut session = SaveSession::new(&mut control, input);
        assert!(!session.suspend());
        let failure = session.failure().cloned().unwrap();
        drop(session);
        drop(control);
        let written: Vec<String> = BufReader::new(reads).lines().map(Result::unwrap).collect();
        assert_eq!(written, ["suspend:"]);
        failure
    }

    #[test]
    fn anything_but_done_fails_the_suspend_and_says_why() {
        let f = refused_suspend(b"");
        assert_eq!((f.function, f.errno), ("suspend", libc::EPIPE));
        assert!(
            f.message.contains("closed the control pipe"),
            "{}",
            f.message
        );
        let f = refused_suspend(b"abort\n");
        assert_eq!((f.function, f.errno), ("suspend", libc::ECANCELED));
        let f = refused_suspend(b"ok\n");
        assert_eq!(
            (f.function, f.errno, f.message.as_str()),
            (
                "suspend",
                libc::EPROTO,
                "the toolstack answered \"ok\" to suspend:, not \"done\""
            )
        );
        // Not a whole line before the end: not an acknowledgement.
        let f = refused_suspend(b"done");
        assert_eq!(f.errno, libc::EPROTO);
        let f = refused_suspend(b"done \n");
        assert_eq!(f.errno, libc::EPROTO);
    }

    #[test]
    fn libxenguest_s_default_policy_decides() {
        use Decision::{Continue, StopAndCopy};
        let cases = [
            // Before the first round: every page dirty.
            (stats(0, 0, Some(262_144)), Continue),
            // Right after a round, not yet counted.
            (stats(1, 262_144, None), Continue),
            (stats(1, 262_144, Some(50)), Continue),
            (stats(1, 262_144, Some(49)), StopAndCopy),
            (stats(3, 262_144, Some(0)), StopAndCopy),
            (stats(4, 300_000, Some(10_000)), Continue),
            // Five rounds sent: stop, counted or not.
            (stats(5, 300_000, None), StopAndCopy),
            (stats(5, 300_000, Some(10_000)), StopAndCopy),
        ];
        for (s, decision) in cases {
            assert_eq!(precopy_decision(s), decision, "{s:?}");
        }
    }

    #[test]
    fn the_progress_line_has_every_key_in_order() {
        let mut control = Control::new(Vec::new());
        control.info(&progress_message(
            stats(2, 263_000, Some(812)),
            Decision::Continue,
        ));
        control.info(&progress_message(
            stats(5, 270_000, None),
            Decision::StopAndCopy,
        ));
        assert_eq!(
            String::from_utf8(control.into_inner()).unwrap(),
            "info:precopy iteration=2 sent_pages=263000 dirty_pages=812 decision=continue\n\
             info:precopy iteration=5 sent_pages=270000 dirty_pages=-1 decision=stop_and_copy\n"
        );
    }

    /// A fake libxenguest: a live save calls the policy as
    /// `send_memory_live` does (xg_sr_save.c), with `dirty` the pages the
    /// guest dirties during each round, then suspends; a restore records
    /// its request and reports `missing` static data.
    struct FakeXen {
        version: XenVersion,
        hvm: bool,
        p2m_pages: u64,
        dirty: u64,
        missing: StaticDataMissing,
        restored: RefCell<Option<RestoreRequest>>,
        resumed: RefCell<Vec<u32>>,
    }

    impl FakeXen {
        fn new(minor: u32) -> FakeXen {
            FakeXen {
                version: XenVersion::new(4, minor),
                hvm: false,
                p2m_pages: 1000,
                dirty: 300,
                missing: StaticDataMissing::default(),
                restored: RefCell::new(None),
                resumed: RefCell::new(Vec::new()),
            }
        }
    }

    fn libxenguest_failed(function: &'static str) -> Failure {
        Failure::new(function, libc::EIO, "libxenguest's own message")
    }

    impl Streams for FakeXen {
        fn xen_version(&self) -> XenVersion {
            self.version
        }

        fn domain_is_hvm(&self, _domid: u32) -> Result<bool, Failure> {
            Ok(self.hvm)
        }

        fn domain_save(
            &self,
            domid: u32,
            _fd: i32,
            flags: SaveFlags,
            cb: &mut dyn SaveCallbacks,
        ) -> Result<(), Failure> {
            if self.hvm && !cb.switch_qemu_logdirty(domid, true) {
                return Err(libxenguest_failed("xc_domain_save"));
            }
            if flags.live {
                let mut s = stats(0, 0, Some(self.p2m_pages));
                let mut rounds = 0;
                let decision = loop {
                    let d = cb.precopy_policy(s);
                    rounds += 1;
                    if d != Decision::Continue {
                        break d;
                    }
                    s.iteration = rounds;
                    s.sent_pages += s.dirty_pages.unwrap();
                    s.dirty_pages = None;
                    let d = cb.precopy_policy(s);
                    if d != Decision::Continue {
                        break d;
                    }
                    // The guest dirties fewer pages each round.
                    s.dirty_pages = Some(self.dirty >> (rounds - 1));
                };
                if decision == Decision::Abort {
                    return Err(libxenguest_failed("xc_domain_save"));
                }
            }
            if !cb.suspend() {
                return Err(libxenguest_failed("xc_domain_save"));
            }
            Ok(())
        }

        fn domain_restore(
            &self,
            request: &RestoreRequest,
            cb: &mut dyn RestoreCallbacks,
        ) -> Result<Built, Failure> {
            *self.restored.borrow_mut() = Some(*request);
            if !cb.static_data_done(self.missing) {
                return Err(libxenguest_failed("xc_domain_restore"));
            }
            Ok(Built {
                store_mfn: 0xfeffc,
                console_mfn: 0xfeffb,
            })
        }

        fn domain_resume(&self, domid: u32) -> Result<(), Failure> {
            self.resumed.borrow_mut().push(domid);
            Ok(())
        }
    }

    fn save_args(live: bool) -> SaveArgs {
        SaveArgs {
            control_out_fd: 3,
            control_in_fd: 4,
            guest: Guest::Pv,
            domid: 7,
            fd: 5,
            live,
            debug: false,
        }
    }

    /// Runs a save against `xen` with a toolstack that answers `answer`;
    /// its outcome, and the lines the toolstack read.
    fn run_save(
        xen: &FakeXen,
        args: &SaveArgs,
        answer: Option<&'static str>,
    ) -> (Result<Built, Failure>, Vec<String>) {
        let ((out, input), (reads, writes)) = pipes();
        let ts = toolstack(reads, writes, answer);
        let mut control = Control::new(out);
        let outcome = save(xen, args, &mut control, input);
        drop(control);
        (outcome, ts.join().unwrap())
    }

    #[test]
    fn a_live_save_reports_each_round_then_suspends() {
        let (outcome, lines) = run_save(&FakeXen::new(17), &save_args(true), Some("done\n"));
        assert_eq!(outcome, Ok(NO_FRAMES));
        // 1000 pages, then 300, 150, 75 and 37 dirty: under 50, stop.
        assert_eq!(
            lines,
            [
                "info:precopy iteration=0 sent_pages=0 dirty_pages=1000 decision=continue",
                "info:precopy iteration=1 sent_pages=1000 dirty_pages=300 decision=continue",
                "info:precopy iteration=2 sent_pages=1300 dirty_pages=150 decision=continue",
                "info:precopy iteration=3 sent_pages=1450 dirty_pages=75 decision=continue",
                "info:precopy iteration=4 sent_pages=1525 dirty_pages=37 decision=stop_and_copy",
                "suspend:",
            ]
        );
    }

    #[test]
    fn a_guest_that_keeps_dirtying_is_stopped_after_five_rounds() {
        let mut xen = FakeXen::new(22);
        xen.dirty = 100_000; // halves each round, never under 50 in time
        let (outcome, lines) = run_save(&xen, &save_args(true), Some("done\n"));
        assert_eq!(outcome, Ok(NO_FRAMES));
        let rounds: Vec<&str> = lines.iter().map(String::as_str).collect();
        assert_eq!(rounds.len(), 7, "{rounds:?}");
        assert_eq!(
            rounds[5],
            "info:precopy iteration=5 sent_pages=188500 dirty_pages=-1 decision=stop_and_copy"
        );
        assert_eq!(rounds[6], "suspend:");
    }

    #[test]
    fn a_save_that_is_not_live_suspends_at_once() {
        let (outcome, lines) = run_save(&FakeXen::new(17), &save_args(false), Some("done\n"));
        assert_eq!(outcome, Ok(NO_FRAMES));
        assert_eq!(lines, ["suspend:"]);
    }

    #[test]
    fn a_refused_suspend_is_the_save_s_failure_not_libxenguest_s() {
        let (outcome, _) = run_save(&FakeXen::new(17), &save_args(false), Some("no\n"));
        let f = outcome.unwrap_err();
        assert_eq!((f.function, f.errno), ("suspend", libc::EPROTO));
    }

    #[test]
    fn abort_during_the_live_copy_stops_it() {
        let ((out, input), (reads, mut writes)) = pipes();
        writes.write_all(b"abort\n").unwrap();
        let mut control = Control::new(out);
        let outcome = save(&FakeXen::new(20), &save_args(true), &mut control, input);
        drop(control);
        let f = outcome.unwrap_err();
        assert_eq!((f.function, f.errno), ("precopy_policy", libc::ECANCELED));
        let lines: Vec<String> = BufReader::new(reads).lines().map(Result::unwrap).collect();
        // The first call already sees it; no suspend: is asked for.
        assert_eq!(
            lines,
            ["info:precopy iteration=0 sent_pages=0 dirty_pages=1000 decision=abort"]
        );
        drop(writes);
    }

    #[test]
    fn a_closed_control_pipe_during_the_live_copy_aborts_it() {
        let ((out, input), (_reads, writes)) = pipes();
        drop(writes);
        let mut control = Control::new(out);
        let f = save(&FakeXen::new(20), &save_args(true), &mut control, input).unwrap_err();
        assert_eq!((f.function, f.errno), ("precopy_policy", libc::EPIPE));
    }

    #[test]
    fn the_mode_must_match_the_domain() {
        let mut xen = FakeXen::new(17);
        xen.hvm = true;
        let (outcome, lines) = run_save(&xen, &save_args(false), Some("done\n"));
        let f = outcome.unwrap_err();
        assert_eq!((f.function, f.errno), ("save", libc::EINVAL));
        assert!(
            f.message.contains("domain 7 is an HVM container"),
            "{}",
            f.message
        );
        assert!(lines.is_empty());
        let mut args = save_args(false);
        args.guest = Guest::Hvm;
        let (outcome, lines) = run_save(&xen, &args, Some("done\n"));
        assert_eq!(outcome, Ok(NO_FRAMES));
        // An HVM container's device model is told nothing: libxenguest
        // asks, the builder answers yes.
        assert!(
            lines[0].starts_with("info:log-dirty on for domain 7"),
            "{lines:?}"
        );
        xen.hvm = false;
        let f = run_save(&xen, &args, Some("done\n")).0.unwrap_err();
        assert_eq!((f.function, f.errno), ("hvm_save", libc::EINVAL));
    }

    #[test]
    fn restore_memflags_ask_for_exactly_the_node_on_4_22_only() {
        for release in xenlib::RELEASES {
            let v = release.version;
            let flags = restore_memflags(v, Some(3)).unwrap();
            let none = restore_memflags(v, None).unwrap();
            if v.minor >= 22 {
                let f = flags.unwrap();
                // XENMEMF_get_node, and XENMEMF_exact_node_request.
                assert_eq!(((f >> 8) - 1) & 0xff, 3);
                assert_ne!(f & (1 << 17), 0);
                assert_eq!(none, Some(0), "{v}: no node, no constraint");
            } else {
                assert_eq!((flags, none), (None, None), "{v}");
            }
        }
        let v = XenVersion::new(4, 22);
        let node0 = restore_memflags(v, Some(0)).unwrap().unwrap();
        assert_eq!((node0 >> 8) & 0xff, 1, "node 0 is 1 in XENMEMF_node");
        assert!(restore_memflags(v, Some(254)).is_ok());
        let f = restore_memflags(v, Some(255)).unwrap_err();
        assert_eq!((f.function, f.errno), ("xc_domain_restore", libc::EINVAL));
    }

    fn restore_args(mem_pnode: Option<u32>) -> RestoreArgs {
        RestoreArgs {
            control_out_fd: 3,
            control_in_fd: 4,
            guest: Guest::Hvm,
            domid: 7,
            fd: 5,
            store_port: 11,
            store_domid: 0,
            console_port: 12,
            console_domid: 1,
            mem_pnode,
        }
    }

    #[test]
    fn a_restore_passes_its_ports_domains_and_node_and_answers_the_frames() {
        let mut xen = FakeXen::new(22);
        xen.hvm = true;
        let mut control = Control::new(Vec::new());
        let built = restore(&xen, &restore_args(Some(1)), &mut control).unwrap();
        assert_eq!(
            crate::protocol::result_line(&built),
            "result:1044476 1044475\n"
        );
        let request = xen.restored.borrow().unwrap();
        assert_eq!(
            request,
            RestoreRequest {
                domid: 7,
                fd: 5,
                store_port: 11,
                store_domid: 0,
                console_port: 12,
                console_domid: 1,
                memflags: exact_node_memflags(1),
            }
        );
        assert!(control.into_inner().is_empty());
    }

    #[test]
    fn before_4_22_a_node_is_only_the_affinity_s_and_the_builder_says_so() {
        let mut xen = FakeXen::new(21);
        xen.hvm = true;
        let mut control = Control::new(Vec::new());
        restore(&xen, &restore_args(Some(1)), &mut control).unwrap();
        assert_eq!(xen.restored.borrow().unwrap().memflags, None);
        let said = String::from_utf8(control.into_inner()).unwrap();
        assert!(
            said.starts_with(
                "info:-mem_pnode 1: Xen 4.21's xc_domain_restore takes no memory flags"
            ),
            "{said}"
        );
    }

    #[test]
    fn a_stream_without_a_cpuid_policy_is_refused_one_without_msrs_noted() {
        let mut xen = FakeXen::new(17);
        xen.hvm = true;
        xen.missing.cpuid = true;
        let f = restore(&xen, &restore_args(None), &mut Control::new(Vec::new())).unwrap_err();
        assert_eq!(
            (f.function, f.errno),
            ("static_data_done", libc::EOPNOTSUPP)
        );
        xen.missing = StaticDataMissing {
            cpuid: false,
            msr: true,
        };
        let mut control = Control::new(Vec::new());
        assert!(restore(&xen, &restore_args(None), &mut control).is_ok());
        let said = String::from_utf8(control.into_inner()).unwrap();
        assert!(
            said.starts_with("info:the stream has no MSR policy"),
            "{said}"
        );
    }

    #[test]
    fn resume_resumes_the_domain_and_answers_no_frames() {
        let xen = FakeXen::new(19);
        let args = ResumeArgs {
            control_out_fd: 3,
            control_in_fd: 4,
            domid: 12,
        };
        assert_eq!(resume(&xen, &args), Ok(NO_FRAMES));
        assert_eq!(*xen.resumed.borrow(), [12]);
    }
}
