//! xen-domain-builder: a domain builder for upstream Xen that speaks
//! xenguest's command line and control protocol (so a xenopsd-style
//! toolstack can run it in xenguest's place) and builds with the host's
//! libxenguest, in the sequence libxl uses.
//!
//! [`args`] and [`protocol`] are xenguest's interface, [`build`] the
//! sequence, `ffi` the libraries; only `ffi` has `unsafe` code.
#![deny(unsafe_code)]

pub mod acpi;
pub mod args;
pub mod build;
pub mod ffi;
pub mod protocol;

use args::{BuildArgs, Command, Mode};
use protocol::{Control, Failure};
use std::io::Write;

/// Exit statuses: a build that failed, and a command line that cannot be obeyed.
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// What `-supports FEATURE` answers `true` to.
pub const FEATURES: &[&str] = &["linux_build", "hvm_build", "pvh_build", "mem_pnode"];

/// Runs the program; returns its exit status.
pub fn main_with(argv: &[String], stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    match args::parse(argv) {
        Ok(Command::Supports(feature)) => {
            let _ = writeln!(stdout, "{}", FEATURES.contains(&feature.as_str()));
            0
        }
        Ok(Command::Build(args)) => {
            let Some(file) = ffi::control_file(args.control_out_fd) else {
                let _ = writeln!(
                    stderr,
                    "error:xenguest: arguments: [{}] -controloutfd {} is not an open file descriptor",
                    libc::EBADF,
                    args.control_out_fd
                );
                return EXIT_USAGE;
            };
            let mut control = Control::new(file);
            match run_build(&args, &mut control) {
                Ok(()) => 0,
                Err(failure) => {
                    control.error(&failure);
                    EXIT_FAILED
                }
            }
        }
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
            EXIT_USAGE
        }
    }
}

fn run_build<W: Write>(args: &BuildArgs, control: &mut Control<W>) -> Result<(), Failure> {
    control.info(&format!(
        "xen-domain-builder {}: {} of domain {}, {} MiB",
        env!("CARGO_PKG_VERSION"),
        args.mode.name(),
        args.domid,
        args.mem_start_mib
    ));
    if args.vgpu {
        return Err(Failure::new(
            args.mode.name(),
            libc::ENOSYS,
            "-vgpu is XenServer's NVIDIA vGPU support: not on upstream Xen",
        ));
    }
    let xenguest = ffi::Xenguest::open()?;
    let (major, minor) = xenguest.version();
    control.info(&format!("Xen {major}.{minor}"));
    let mut log = |line: &str| control.info(line);
    let built = match args.mode {
        Mode::Pv => build::build_pv(&&xenguest, args, &mut log)?,
        Mode::Hvm => build::build_hvm(&&xenguest, args, &mut log)?,
        Mode::Pvh => build::build_pvh(&&xenguest, args, &mut log)?,
    };
    control.result(&built);
    Ok(())
}
