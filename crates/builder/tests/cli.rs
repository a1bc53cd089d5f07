//! The program as a toolstack runs it, on a machine without Xen: xenguest's
//! command line, `-supports`, usage errors, and a clean failure (an `error:`
//! line naming the function and errno, a non-zero exit) when Xen is absent.

use std::process::{Command, Output};

fn builder(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xen-domain-builder"))
        .args(args)
        .output()
        .expect("the builder runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// xenguestArgs() for a 256 MiB PV guest, with the control pipe on stdout.
fn pv(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "-controloutfd",
        "1",
        "-controlinfd",
        "0",
        "-mode",
        "linux_build",
        "-image",
        "/boot/vmlinuz",
        "-cmdline",
        "console=hvc0",
        "-ramdisk",
        "",
        "-features",
        "",
        "-flags",
        "0",
        "-domid",
        "5",
        "-store_port",
        "3",
        "-store_domid",
        "0",
        "-console_port",
        "4",
        "-console_domid",
        "0",
        "-mem_max_mib",
        "256",
        "-mem_start_mib",
        "256",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn run(args: &[String]) -> Output {
    builder(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn supports_answers_true_or_false_and_exits_0() {
    let o = builder(&["-supports", "mem_pnode"]);
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "true\n"));
    let o = builder(&["-supports", "teleport"]);
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "false\n"));
}

#[test]
fn unknown_arguments_are_an_error_line_on_the_control_pipe_and_exit_2() {
    let o = run(&pv(&["-bogus", "1"]));
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stdout(&o),
        "error:xenguest: arguments: [22] unknown option \"-bogus\"\n"
    );
}

#[test]
fn without_a_control_pipe_the_error_goes_to_stderr() {
    let o = builder(&["-mode", "linux_build"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "error:xenguest: arguments: [22] -controloutfd is required\n"
    );
    let mut args = pv(&[]);
    args[1] = "57".into();
    let o = run(&args);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("[9] -controloutfd 57 is not an open file descriptor"));
}

#[test]
fn off_xen_a_pv_build_fails_cleanly_naming_the_step() {
    let o = run(&pv(&[]));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("info:xen-domain-builder "), "{out}");
    let last = lines.last().unwrap();
    // No libxenguest on a machine without Xen's runtime, or no privcmd.
    assert!(
        last.starts_with("error:xenguest: dlopen: [2] no libxenctrl could be loaded")
            || last.starts_with("error:xenguest: dlopen: [2] no libxenguest could be loaded")
            || last.starts_with("error:xenguest: xc_interface_open: ["),
        "{out}"
    );
}

#[test]
fn vgpu_is_refused_with_enosys() {
    let mut args = pv(&["-vgpu"]);
    args[5] = "hvm_build".into();
    args.drain(10..12); // no -ramdisk for HVM
    let o = run(&args);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).ends_with(
            "error:xenguest: hvm_build: [38] -vgpu is XenServer's NVIDIA vGPU support: not on upstream Xen\n"
        ),
        "{}",
        stdout(&o)
    );
}

#[test]
fn supports_answers_true_for_the_save_restore_and_resume_modes() {
    for mode in ["save", "hvm_save", "restore", "hvm_restore", "resume"] {
        let o = builder(&["-supports", mode]);
        assert_eq!(stdout(&o), "true\n", "{mode}");
    }
}

/// A save of domain 5 with the control pipe on stdout, reading stdin, the
/// stream on stderr (open, in these tests), then `extra`.
fn save(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "-controloutfd",
        "1",
        "-controlinfd",
        "0",
        "-fd",
        "2",
        "-mode",
        "save",
        "-domid",
        "5",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

#[test]
fn a_stream_or_control_fd_that_is_not_open_is_a_usage_error() {
    let mut args = save(&[]);
    args[5] = "57".into();
    let o = run(&args);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stdout(&o),
        "error:xenguest: arguments: [9] -fd 57 is not an open file descriptor\n"
    );
    let mut args = save(&[]);
    args[3] = "58".into();
    let o = run(&args);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stdout(&o),
        "error:xenguest: arguments: [9] -controlinfd 58 is not an open file descriptor\n"
    );
    let o = builder(&[
        "-controloutfd",
        "1",
        "-controlinfd",
        "0",
        "-mode",
        "restore",
        "-domid",
        "5",
        "-fd",
        "59",
        "-store_port",
        "3",
        "-console_port",
        "4",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).contains("[9] -fd 59 is not an open file descriptor"));
}

#[test]
fn a_save_s_bad_argument_is_refused_on_the_control_pipe() {
    let o = run(&save(&["-live", "yes"]));
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stdout(&o),
        "error:xenguest: arguments: [22] -live takes true or false, not \"yes\"\n"
    );
}

#[test]
fn off_xen_a_save_and_a_resume_fail_cleanly() {
    let o = run(&save(&["-live", "true"]));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("info:xen-domain-builder ")
            && lines[0].ends_with(": save of domain 5, live"),
        "{out}"
    );
    let last = lines.last().unwrap();
    assert!(
        last.starts_with("error:xenguest: dlopen: [2]")
            || last.starts_with("error:xenguest: xc_interface_open: ["),
        "{out}"
    );
    let o = builder(&[
        "-controloutfd",
        "1",
        "-controlinfd",
        "0",
        "-mode",
        "resume",
        "-domid",
        "5",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).starts_with("info:xen-domain-builder "));
    assert!(stdout(&o).contains(": resume of domain 5\n"));
}
