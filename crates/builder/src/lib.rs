//! xen-domain-builder: a domain builder for upstream Xen that speaks
//! xenguest's command line and control protocol (so a xenopsd-style
//! toolstack can run it in xenguest's place) and builds with the host's
//! libxenguest, in the sequence libxl uses. It also saves, restores and
//! resumes PV and PVH domains, with the modes and lines of xenopsd's save
//! helper, over libxenguest's `xc_domain_save`, `xc_domain_restore` and
//! `xc_domain_resume`.
//!
//! [`args`] and [`protocol`] are xenguest's interface, [`build`] the
//! sequence, [`save_restore`] the other modes, `ffi` the libraries; only
//! `ffi` has `unsafe` code.
#![deny(unsafe_code)]

pub mod acpi;
pub mod args;
pub mod build;
pub mod ffi;
pub mod protocol;
pub mod save_restore;

use args::{BuildArgs, Command, Mode};
use protocol::{Built, Control, Failure};
use std::fs::File;
use std::io::Write;

/// Exit statuses: a build that failed, and a command line that cannot be obeyed.
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// What `-supports FEATURE` answers `true` to: every `-mode`, and `-mem_pnode`.
pub const FEATURES: &[&str] = &[
    "linux_build",
    "hvm_build",
    "pvh_build",
    "mem_pnode",
    "save",
    "hvm_save",
    "restore",
    "hvm_restore",
    "resume",
];

/// A descriptor named on the command line that is not open: `arguments`,
/// EBADF, exit 2.
fn not_open(option: &str, fd: i32) -> Failure {
    Failure::new(
        "arguments",
        libc::EBADF,
        format!("{option} {fd} is not an open file descriptor"),
    )
}

/// Runs the program; returns its exit status.
pub fn main_with(argv: &[String], stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let command = match args::parse(argv) {
        Ok(Command::Supports(feature)) => {
            let _ = writeln!(stdout, "{}", FEATURES.contains(&feature.as_str()));
            return 0;
        }
        Ok(command) => command,
        Err(usage) => {
            let line =
                protocol::error_line(&Failure::new("arguments", libc::EINVAL, usage.message));
            // To the control pipe when it was named, else to stderr.
            match usage.control_out_fd.and_then(ffi::control_file) {
                Some(mut file) => {
                    let _ = file.write_all(line.as_bytes());
                }
                None => {
                    let _ = stderr.write_all(line.as_bytes());
                }
            }
            return EXIT_USAGE;
        }
    };
    let control_out_fd = command.control_out_fd().unwrap_or(-1);
    let Some(file) = ffi::control_file(control_out_fd) else {
        let line = protocol::error_line(&not_open("-controloutfd", control_out_fd));
        let _ = stderr.write_all(line.as_bytes());
        return EXIT_USAGE;
    };
    let mut control = Control::new(file);
    // A save reads the toolstack's answers; the stream must be open.
    let mut control_in = None;
    let unusable = match &command {
        Command::Save(a) => match ffi::control_file(a.control_in_fd) {
            Some(file) => {
                control_in = Some(file);
                (!ffi::is_open(a.fd)).then(|| not_open("-fd", a.fd))
            }
            None => Some(not_open("-controlinfd", a.control_in_fd)),
        },
        Command::Restore(a) => (!ffi::is_open(a.fd)).then(|| not_open("-fd", a.fd)),
        _ => None,
    };
    if let Some(failure) = unusable {
        control.error(&failure);
        return EXIT_USAGE;
    }
    match run(&command, &mut control, control_in) {
        Ok(built) => {
            control.result(&built);
            0
        }
        Err(failure) => {
            control.error(&failure);
            EXIT_FAILED
        }
    }
}

/// What the first line says the builder does.
fn intro(command: &Command) -> String {
    let what = match command {
        Command::Build(a) => format!(
            "{} of domain {}, {} MiB",
            a.mode.name(),
            a.domid,
            a.mem_start_mib
        ),
        Command::Save(a) => format!(
            "{} of domain {}{}",
            a.guest.save_mode(),
            a.domid,
            if a.live { ", live" } else { "" }
        ),
        Command::Restore(a) => format!("{} into domain {}", a.guest.restore_mode(), a.domid),
        Command::Resume(a) => format!("resume of domain {}", a.domid),
        Command::Supports(_) => String::new(),
    };
    format!("xen-domain-builder {}: {what}", env!("CARGO_PKG_VERSION"))
}

fn run<W: Write>(
    command: &Command,
    control: &mut Control<W>,
    control_in: Option<File>,
) -> Result<Built, Failure> {
    control.info(&intro(command));
    if let Command::Build(args) = command {
        if args.vgpu {
            return Err(Failure::new(
                args.mode.name(),
                libc::ENOSYS,
                "-vgpu is XenServer's NVIDIA vGPU support: not on upstream Xen",
            ));
        }
    }
    let xenguest = ffi::Xenguest::open()?;
    let (major, minor) = xenguest.version();
    control.info(&format!("Xen {major}.{minor}"));
    match command {
        Command::Build(args) => run_build(&xenguest, args, control),
        Command::Save(args) => {
            let input = control_in.ok_or_else(|| not_open("-controlinfd", args.control_in_fd))?;
            save_restore::save(&xenguest, args, control, input)
        }
        Command::Restore(args) => save_restore::restore(&xenguest, args, control),
        Command::Resume(args) => save_restore::resume(&xenguest, args),
        Command::Supports(_) => unreachable!("answered before any library is opened"),
    }
}

fn run_build<W: Write>(
    xenguest: &ffi::Xenguest,
    args: &BuildArgs,
    control: &mut Control<W>,
) -> Result<Built, Failure> {
    let mut log = |line: &str| control.info(line);
    let built = match args.mode {
        Mode::Pv => build::build_pv(&xenguest, args, &mut log)?,
        Mode::Hvm => build::build_hvm(&xenguest, args, &mut log)?,
        Mode::Pvh => build::build_pvh(&xenguest, args, &mut log)?,
    };
    Ok(built)
}
