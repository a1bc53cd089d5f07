//! xenguest's command line, as xenopsd (and our `xenguestArgs()`) writes it.
//! Every option takes one value except `-vgpu` and `--force`; `-cmdline`
//! after a `-module` is that module's command line. Besides the builds,
//! xenopsd's save helper's modes (`save`, `hvm_save`, `restore`,
//! `hvm_restore`) and `resume`: each mode takes its own options only.

use std::fmt;

/// What the builder was asked to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `linux_build`: a PV guest.
    Pv,
    /// `hvm_build`: an HVM guest booting hvmloader.
    Hvm,
    /// `pvh_build`: a PVH guest.
    Pvh,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Pv => "linux_build",
            Mode::Hvm => "hvm_build",
            Mode::Pvh => "pvh_build",
        }
    }
}

/// The kind of stream a save or restore mode names: xenopsd says `save` and
/// `restore` for a PV guest, `hvm_save` and `hvm_restore` for HVM and PVH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guest {
    Pv,
    Hvm,
}

impl Guest {
    pub fn save_mode(self) -> &'static str {
        match self {
            Guest::Pv => "save",
            Guest::Hvm => "hvm_save",
        }
    }

    pub fn restore_mode(self) -> &'static str {
        match self {
            Guest::Pv => "restore",
            Guest::Hvm => "hvm_restore",
        }
    }
}

/// `-mode save|hvm_save`: write the domain's memory and state to `fd`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaveArgs {
    pub control_out_fd: i32,
    pub control_in_fd: i32,
    pub guest: Guest,
    pub domid: u32,
    /// The stream, a file descriptor this process inherited.
    pub fd: i32,
    /// Copy memory while the guest runs, then suspend it (`XCFLAGS_LIVE`).
    pub live: bool,
    /// libxenguest's `XCFLAGS_DEBUG`: after a live save, send every page
    /// again for the far end to verify.
    pub debug: bool,
}

/// `-mode restore|hvm_restore`: read a saved domain from `fd` into the
/// empty domain the toolstack prepared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreArgs {
    pub control_out_fd: i32,
    pub control_in_fd: i32,
    pub guest: Guest,
    pub domid: u32,
    pub fd: i32,
    pub store_port: u32,
    pub store_domid: u32,
    pub console_port: u32,
    pub console_domid: u32,
    /// The physical node all of the guest's memory must come from.
    pub mem_pnode: Option<u32>,
}

/// `-mode resume`: a guest whose save failed or was cancelled, after it
/// suspended, runs on (a cooperative resume).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeArgs {
    pub control_out_fd: i32,
    pub control_in_fd: i32,
    pub domid: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub path: String,
    pub cmdline: Option<String>,
}

/// A build request, every value checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildArgs {
    pub control_out_fd: i32,
    pub control_in_fd: i32,
    pub mode: Mode,
    pub image: String,
    pub cmdline: String,
    /// PV only; `None` for `-ramdisk ''`.
    pub ramdisk: Option<String>,
    pub features: String,
    /// start_info's SIF_* flags.
    pub flags: u64,
    /// PVH boot modules.
    pub modules: Vec<Module>,
    pub domid: u32,
    pub store_port: u32,
    pub store_domid: u32,
    pub console_port: u32,
    pub console_domid: u32,
    pub mem_max_mib: u64,
    pub mem_start_mib: u64,
    /// The physical node all of the guest's memory must come from.
    pub mem_pnode: Option<u32>,
    pub vgpu: bool,
    pub force: bool,
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `-supports FEATURE`: print `true` or `false`.
    Supports(String),
    Build(Box<BuildArgs>),
    Save(SaveArgs),
    Restore(RestoreArgs),
    Resume(ResumeArgs),
}

impl Command {
    /// The control pipe the mode writes its lines to (none for `-supports`).
    pub fn control_out_fd(&self) -> Option<i32> {
        match self {
            Command::Supports(_) => None,
            Command::Build(b) => Some(b.control_out_fd),
            Command::Save(s) => Some(s.control_out_fd),
            Command::Restore(r) => Some(r.control_out_fd),
            Command::Resume(r) => Some(r.control_out_fd),
        }
    }
}

/// What `-mode` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Build(Mode),
    Save(Guest),
    Restore(Guest),
    Resume,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Build(m) => m.name(),
            Operation::Save(g) => g.save_mode(),
            Operation::Restore(g) => g.restore_mode(),
            Operation::Resume => "resume",
        }
    }

    /// The options this mode takes, besides `-controloutfd`,
    /// `-controlinfd`, `-mode` and `-domid` (which every mode takes).
    fn options(self) -> &'static [&'static str] {
        match self {
            Operation::Build(_) => &[
                "-image",
                "-cmdline",
                "-ramdisk",
                "-features",
                "-flags",
                "-module",
                "-store_port",
                "-store_domid",
                "-console_port",
                "-console_domid",
                "-mem_max_mib",
                "-mem_start_mib",
                "-mem_pnode",
                "-vgpu",
                "--force",
            ],
            Operation::Save(_) => &["-fd", "-live", "-debug"],
            Operation::Restore(_) => &[
                "-fd",
                "-store_port",
                "-store_domid",
                "-console_port",
                "-console_domid",
                "-mem_pnode",
            ],
            Operation::Resume => &[],
        }
    }
}

/// A command line that cannot be obeyed. `control_out_fd` is set when the
/// control pipe was named before the mistake, so the error can go there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError {
    pub message: String,
    pub control_out_fd: Option<i32>,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn number<T: std::str::FromStr>(option: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{option} needs a number, not {value:?}"))
}

/// `true` or `false`, as xenopsd writes them (`-live true`).
fn boolean(option: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{option} takes true or false, not {value:?}")),
    }
}

/// Every option's value as given, before a mode's checks.
#[derive(Default)]
struct Given<'a> {
    control_out_fd: Option<i32>,
    control_in_fd: Option<i32>,
    mode: Option<Operation>,
    image: Option<String>,
    cmdline: Option<String>,
    ramdisk: Option<String>,
    features: Option<String>,
    flags: Option<u64>,
    modules: Vec<Module>,
    domid: Option<u32>,
    store_port: Option<u32>,
    store_domid: u32,
    console_port: Option<u32>,
    console_domid: u32,
    mem_max_mib: Option<u64>,
    mem_start_mib: Option<u64>,
    mem_pnode: Option<u32>,
    vgpu: bool,
    force: bool,
    fd: Option<i32>,
    live: Option<bool>,
    debug: Option<bool>,
    /// The options given, in order, for the mode's own list.
    options: Vec<&'a str>,
}

pub fn parse(argv: &[String]) -> Result<Command, UsageError> {
    if argv.first().map(String::as_str) == Some("-supports") {
        return match argv {
            [_, feature] => Ok(Command::Supports(feature.clone())),
            _ => Err(UsageError {
                message: "-supports takes exactly one feature".into(),
                control_out_fd: None,
            }),
        };
    }
    let g = read(argv)?;
    let fail = |message: String| UsageError {
        message,
        control_out_fd: g.control_out_fd,
    };
    let control_out_fd = g
        .control_out_fd
        .ok_or_else(|| fail("-controloutfd is required".into()))?;
    let operation = g.mode.ok_or_else(|| fail("-mode is required".into()))?;
    const EVERY_MODE: &[&str] = &["-controloutfd", "-controlinfd", "-mode", "-domid"];
    if let Some(other) = g
        .options
        .iter()
        .find(|o| !EVERY_MODE.contains(o) && !operation.options().contains(o))
    {
        return Err(fail(format!(
            "{other} is not an option of -mode {}",
            operation.name()
        )));
    }
    let command = match operation {
        Operation::Build(mode) => Command::Build(Box::new(build_args(&g, control_out_fd, mode)?)),
        Operation::Save(guest) => Command::Save(save_args(&g, control_out_fd, guest)?),
        Operation::Restore(guest) => Command::Restore(restore_args(&g, control_out_fd, guest)?),
        Operation::Resume => Command::Resume(ResumeArgs {
            control_out_fd,
            control_in_fd: required(&g, g.control_in_fd, "-controlinfd")?,
            domid: guest_domid(&g, required(&g, g.domid, "-domid")?)?,
        }),
    };
    Ok(command)
}

/// Reads every option and its value; a value that is not of its option's
/// kind, an option given twice that may not be, or an unknown option fails.
fn read(argv: &[String]) -> Result<Given<'_>, UsageError> {
    let mut g = Given::default();
    let mut i = 0;
    while i < argv.len() {
        let option = argv[i].as_str();
        i += 1;
        match option {
            "-vgpu" => {
                g.vgpu = true;
                g.options.push(option);
                continue;
            }
            "--force" => {
                g.force = true;
                g.options.push(option);
                continue;
            }
            _ => {}
        }
        let Some(value) = argv.get(i) else {
            return Err(UsageError {
                message: format!("{option} needs a value"),
                control_out_fd: g.control_out_fd,
            });
        };
        i += 1;
        let set = |slot: &mut Option<String>| -> Result<(), String> {
            if slot.replace(value.clone()).is_some() {
                return Err(format!("{option} given twice"));
            }
            Ok(())
        };
        let result: Result<(), String> = (|| {
            match option {
                "-controloutfd" => g.control_out_fd = Some(number(option, value)?),
                "-controlinfd" => g.control_in_fd = Some(number::<i32>(option, value)?),
                "-mode" => {
                    g.mode = Some(match value.as_str() {
                        "linux_build" => Operation::Build(Mode::Pv),
                        "hvm_build" => Operation::Build(Mode::Hvm),
                        "pvh_build" => Operation::Build(Mode::Pvh),
                        "save" => Operation::Save(Guest::Pv),
                        "hvm_save" => Operation::Save(Guest::Hvm),
                        "restore" => Operation::Restore(Guest::Pv),
                        "hvm_restore" => Operation::Restore(Guest::Hvm),
                        "resume" => Operation::Resume,
                        other => return Err(format!("unknown -mode {other:?}")),
                    })
                }
                "-image" => set(&mut g.image)?,
                // After a -module, -cmdline is that module's.
                "-cmdline" => match g.modules.last_mut() {
                    Some(m) if m.cmdline.is_none() => m.cmdline = Some(value.clone()),
                    Some(_) => return Err("a -module has two -cmdline".into()),
                    None => set(&mut g.cmdline)?,
                },
                "-ramdisk" => set(&mut g.ramdisk)?,
                "-features" => set(&mut g.features)?,
                "-flags" => g.flags = Some(number::<u64>(option, value)?),
                "-module" => g.modules.push(Module {
                    path: value.clone(),
                    cmdline: None,
                }),
                "-domid" => g.domid = Some(number::<u32>(option, value)?),
                "-store_port" => g.store_port = Some(number::<u32>(option, value)?),
                "-store_domid" => g.store_domid = number(option, value)?,
                "-console_port" => g.console_port = Some(number::<u32>(option, value)?),
                "-console_domid" => g.console_domid = number(option, value)?,
                "-mem_max_mib" => g.mem_max_mib = Some(number::<u64>(option, value)?),
                "-mem_start_mib" => g.mem_start_mib = Some(number::<u64>(option, value)?),
                "-mem_pnode" => g.mem_pnode = Some(number::<u32>(option, value)?),
                "-fd" => g.fd = Some(number::<i32>(option, value)?),
                "-live" => g.live = Some(boolean(option, value)?),
                "-debug" => g.debug = Some(boolean(option, value)?),
                _ => return Err(format!("unknown option {option:?}")),
            }
            Ok(())
        })();
        result.map_err(|message| UsageError {
            message,
            control_out_fd: g.control_out_fd,
        })?;
        g.options.push(option);
    }
    Ok(g)
}

fn required<T>(g: &Given, value: Option<T>, name: &str) -> Result<T, UsageError> {
    value.ok_or_else(|| UsageError {
        message: format!("{name} is required"),
        control_out_fd: g.control_out_fd,
    })
}

fn wrong(g: &Given, message: &str) -> UsageError {
    UsageError {
        message: message.into(),
        control_out_fd: g.control_out_fd,
    }
}

fn guest_domid(g: &Given, domid: u32) -> Result<u32, UsageError> {
    if domid == 0 || domid >= 0x7ff0 {
        return Err(wrong(g, "-domid must name a guest domain (1 to 32751)"));
    }
    Ok(domid)
}

fn build_args(g: &Given, control_out_fd: i32, mode: Mode) -> Result<BuildArgs, UsageError> {
    let args = BuildArgs {
        control_out_fd,
        control_in_fd: required(g, g.control_in_fd, "-controlinfd")?,
        mode,
        image: required(g, g.image.clone().filter(|p| !p.is_empty()), "-image")?,
        cmdline: g.cmdline.clone().unwrap_or_default(),
        ramdisk: g.ramdisk.clone().filter(|p| !p.is_empty()),
        features: g.features.clone().unwrap_or_default(),
        flags: g.flags.unwrap_or(0),
        modules: g.modules.clone(),
        domid: required(g, g.domid, "-domid")?,
        store_port: required(g, g.store_port, "-store_port")?,
        store_domid: g.store_domid,
        console_port: required(g, g.console_port, "-console_port")?,
        console_domid: g.console_domid,
        mem_max_mib: required(g, g.mem_max_mib, "-mem_max_mib")?,
        mem_start_mib: required(g, g.mem_start_mib, "-mem_start_mib")?,
        mem_pnode: g.mem_pnode,
        vgpu: g.vgpu,
        force: g.force,
    };
    if args.mem_start_mib == 0 || args.mem_start_mib > args.mem_max_mib {
        return Err(wrong(
            g,
            "-mem_start_mib must be between 1 and -mem_max_mib",
        ));
    }
    // xc_dom_mem_init takes the size in MiB as an unsigned int.
    if args.mem_max_mib > u64::from(u32::MAX) {
        return Err(wrong(g, "-mem_max_mib is too large"));
    }
    if args.ramdisk.is_some() && mode != Mode::Pv {
        return Err(wrong(g, "-ramdisk is for linux_build only"));
    }
    if !args.modules.is_empty() && mode != Mode::Pvh {
        return Err(wrong(g, "-module is for pvh_build only"));
    }
    if args.vgpu && mode != Mode::Hvm {
        return Err(wrong(g, "-vgpu is for hvm_build only"));
    }
    guest_domid(g, args.domid)?;
    Ok(args)
}

/// The stream: a descriptor this process inherited, not a control pipe.
fn stream_fd(g: &Given, control_out_fd: i32, control_in_fd: i32) -> Result<i32, UsageError> {
    let fd = required(g, g.fd, "-fd")?;
    if fd < 0 {
        return Err(wrong(g, "-fd must be a file descriptor (0 or more)"));
    }
    if fd == control_out_fd || fd == control_in_fd {
        return Err(wrong(g, "-fd must not be a control pipe"));
    }
    Ok(fd)
}

fn save_args(g: &Given, control_out_fd: i32, guest: Guest) -> Result<SaveArgs, UsageError> {
    let control_in_fd = required(g, g.control_in_fd, "-controlinfd")?;
    Ok(SaveArgs {
        control_out_fd,
        control_in_fd,
        guest,
        domid: guest_domid(g, required(g, g.domid, "-domid")?)?,
        fd: stream_fd(g, control_out_fd, control_in_fd)?,
        live: g.live.unwrap_or(false),
        debug: g.debug.unwrap_or(false),
    })
}

fn restore_args(g: &Given, control_out_fd: i32, guest: Guest) -> Result<RestoreArgs, UsageError> {
    let control_in_fd = required(g, g.control_in_fd, "-controlinfd")?;
    Ok(RestoreArgs {
        control_out_fd,
        control_in_fd,
        guest,
        domid: guest_domid(g, required(g, g.domid, "-domid")?)?,
        fd: stream_fd(g, control_out_fd, control_in_fd)?,
        store_port: required(g, g.store_port, "-store_port")?,
        store_domid: g.store_domid,
        console_port: required(g, g.console_port, "-console_port")?,
        console_domid: g.console_domid,
        mem_pnode: g.mem_pnode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits on spaces; `''` is an empty argument, `~` a space inside one.
    fn argv(s: &str) -> Vec<String> {
        s.split(' ')
            .map(|a| {
                if a == "''" {
                    String::new()
                } else {
                    a.replace('~', " ")
                }
            })
            .collect()
    }

    const TAIL: &str = "-domid 7 -store_port 3 -store_domid 0 -console_port 4 -console_domid 0 -mem_max_mib 256 -mem_start_mib 200";

    fn build(s: &str) -> BuildArgs {
        match parse(&argv(s)).unwrap() {
            Command::Build(b) => *b,
            other => panic!("{other:?}"),
        }
    }

    fn error(s: &str) -> UsageError {
        parse(&argv(s)).unwrap_err()
    }

    #[test]
    fn pv_arguments_as_xenguest_args_writes_them() {
        let b = build(&format!(
            "-controloutfd 3 -controlinfd 4 -mode linux_build -image /boot/vmlinuz \
             -cmdline console=hvc0~root=/dev/xvda -ramdisk /boot/initrd -features '' -flags 0 \
             {TAIL} -mem_pnode 1 --force"
        ));
        assert_eq!(b.mode, Mode::Pv);
        assert_eq!(b.image, "/boot/vmlinuz");
        assert_eq!(b.cmdline, "console=hvc0 root=/dev/xvda");
        assert_eq!(b.ramdisk.as_deref(), Some("/boot/initrd"));
        assert_eq!((b.control_out_fd, b.control_in_fd), (3, 4));
        assert_eq!((b.domid, b.store_port, b.console_port), (7, 3, 4));
        assert_eq!((b.mem_max_mib, b.mem_start_mib), (256, 200));
        assert_eq!(b.mem_pnode, Some(1));
        assert!(b.force && !b.vgpu);
    }

    #[test]
    fn an_empty_ramdisk_is_none() {
        let b = build(&format!(
            "-controloutfd 3 -controlinfd 4 -mode linux_build -image k -ramdisk '' {TAIL}"
        ));
        assert_eq!(b.ramdisk, None);
    }

    #[test]
    fn pvh_modules_take_the_cmdline_that_follows_them() {
        let b = build(&format!(
            "-controloutfd 3 -controlinfd 4 -mode pvh_build -image k -cmdline kc -features f -flags 0 \
             -module m1 -cmdline c1 -module m2 {TAIL}"
        ));
        assert_eq!(b.cmdline, "kc");
        assert_eq!(
            b.modules,
            vec![
                Module {
                    path: "m1".into(),
                    cmdline: Some("c1".into())
                },
                Module {
                    path: "m2".into(),
                    cmdline: None
                }
            ]
        );
    }

    #[test]
    fn supports_takes_one_feature() {
        assert_eq!(
            parse(&argv("-supports mem_pnode")).unwrap(),
            Command::Supports("mem_pnode".into())
        );
        assert!(parse(&argv("-supports")).is_err());
    }

    #[test]
    fn mistakes_are_named_and_keep_the_control_fd_when_known() {
        let e = error(&format!(
            "-controloutfd 3 -controlinfd 4 -mode linux_build -image k -bogus 1 {TAIL}"
        ));
        assert_eq!(e.message, "unknown option \"-bogus\"");
        assert_eq!(e.control_out_fd, Some(3));
        let e = error("-mode warp_build");
        assert_eq!(e.message, "unknown -mode \"warp_build\"");
        assert_eq!(e.control_out_fd, None);
        let e = error(&format!(
            "-controloutfd 3 -controlinfd 4 -mode linux_build -image k -domid x {TAIL}"
        ));
        assert_eq!(e.message, "-domid needs a number, not \"x\"");
        let e = error("-controloutfd 3 -controlinfd 4 -mode linux_build -image k -domid 7");
        assert_eq!(e.message, "-store_port is required");
        let e = error("-controloutfd 3 -controlinfd 4 -mode linux_build -image");
        assert_eq!(e.message, "-image needs a value");
        let e = error(&format!(
            "-controloutfd 3 -controlinfd 4 -mode linux_build -image k {TAIL} -mem_start_mib 300"
        ));
        assert_eq!(
            e.message,
            "-mem_start_mib must be between 1 and -mem_max_mib"
        );
        let e = error(&format!(
            "-controloutfd 3 -controlinfd 4 -mode hvm_build -image k -module m {TAIL}"
        ));
        assert_eq!(e.message, "-module is for pvh_build only");
        let e = error(&format!(
            "-controloutfd 3 -controlinfd 4 -mode linux_build -image k -image j {TAIL}"
        ));
        assert_eq!(e.message, "-image given twice");
    }

    fn save(s: &str) -> SaveArgs {
        match parse(&argv(s)).unwrap() {
            Command::Save(a) => a,
            other => panic!("{other:?}"),
        }
    }

    fn restore(s: &str) -> RestoreArgs {
        match parse(&argv(s)).unwrap() {
            Command::Restore(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn save_takes_xenopsd_s_save_helper_arguments() {
        // xenopsd: -fd FD -mode save|hvm_save -domid D, then -live true and
        // -debug true when asked (forkexecd has put the fd's number in).
        let a = save(
            "-controloutfd 3 -controlinfd 4 -fd 5 -mode hvm_save -domid 7 -live true -debug true",
        );
        assert_eq!(
            a,
            SaveArgs {
                control_out_fd: 3,
                control_in_fd: 4,
                guest: Guest::Hvm,
                domid: 7,
                fd: 5,
                live: true,
                debug: true,
            }
        );
        let a = save("-controloutfd 3 -controlinfd 4 -mode save -domid 7 -fd 5");
        assert_eq!((a.guest, a.live, a.debug), (Guest::Pv, false, false));
        let a = save("-controloutfd 3 -controlinfd 4 -mode save -domid 7 -fd 5 -live false");
        assert!(!a.live);
        // Where a mode's lines go.
        let command = parse(&argv(
            "-controloutfd 6 -controlinfd 4 -mode save -domid 7 -fd 5",
        ));
        assert_eq!(command.unwrap().control_out_fd(), Some(6));
        assert_eq!(Command::Supports("save".into()).control_out_fd(), None);
    }

    #[test]
    fn restore_takes_the_event_channels_their_domains_and_a_node() {
        let a = restore(
            "-controloutfd 3 -controlinfd 4 -mode restore -domid 7 -fd 5 -store_port 11 \
             -store_domid 1 -console_port 12 -console_domid 2 -mem_pnode 1",
        );
        assert_eq!(
            a,
            RestoreArgs {
                control_out_fd: 3,
                control_in_fd: 4,
                guest: Guest::Pv,
                domid: 7,
                fd: 5,
                store_port: 11,
                store_domid: 1,
                console_port: 12,
                console_domid: 2,
                mem_pnode: Some(1),
            }
        );
        // As xenopsd writes it: the backend domains default to 0, as in the builds.
        let a = restore(
            "-controloutfd 3 -controlinfd 4 -mode hvm_restore -domid 7 -fd 5 -store_port 11 -console_port 12",
        );
        assert_eq!(
            (a.guest, a.store_domid, a.console_domid, a.mem_pnode),
            (Guest::Hvm, 0, 0, None)
        );
    }

    #[test]
    fn resume_takes_a_domain() {
        assert_eq!(
            parse(&argv(
                "-controloutfd 3 -controlinfd 4 -mode resume -domid 9"
            ))
            .unwrap(),
            Command::Resume(ResumeArgs {
                control_out_fd: 3,
                control_in_fd: 4,
                domid: 9
            })
        );
    }

    #[test]
    fn each_new_mode_refuses_what_it_does_not_take_and_needs_what_it_does() {
        const S: &str = "-controloutfd 3 -controlinfd 4 -mode save -domid 7";
        const R: &str = "-controloutfd 3 -controlinfd 4 -mode restore -domid 7 -fd 5";
        let cases = [
            (S.to_string(), "-fd is required"),
            (format!("{S} -fd 5 -image k"), "-image is not an option of -mode save"),
            (format!("{S} -fd 5 -mem_pnode 0"), "-mem_pnode is not an option of -mode save"),
            (format!("{S} -fd 5 --force"), "--force is not an option of -mode save"),
            (format!("{S} -fd 5 -live yes"), "-live takes true or false, not \"yes\""),
            (format!("{S} -fd 5 -debug"), "-debug needs a value"),
            (format!("{S} -fd x"), "-fd needs a number, not \"x\""),
            (format!("{S} -fd -1"), "-fd must be a file descriptor (0 or more)"),
            (format!("{S} -fd 4"), "-fd must not be a control pipe"),
            (format!("{S} -fd 3"), "-fd must not be a control pipe"),
            (format!("{S} -fd 5 -compress true"), "unknown option \"-compress\""),
            ("-controloutfd 3 -controlinfd 4 -mode save -fd 5".into(), "-domid is required"),
            ("-controloutfd 3 -controlinfd 4 -mode hvm_save -fd 5 -domid 0".into(), "-domid must name a guest domain (1 to 32751)"),
            ("-controloutfd 3 -mode save -fd 5 -domid 7".into(), "-controlinfd is required"),
            (R.to_string(), "-store_port is required"),
            (format!("{R} -store_port 1"), "-console_port is required"),
            (format!("{R} -store_port 1 -console_port 2 -live true"), "-live is not an option of -mode restore"),
            (format!("{R} -store_port 1 -console_port 2 -mem_max_mib 256"), "-mem_max_mib is not an option of -mode restore"),
            ("-controloutfd 3 -controlinfd 4 -mode hvm_restore -domid 32752 -fd 5 -store_port 1 -console_port 2".into(), "-domid must name a guest domain (1 to 32751)"),
            ("-controloutfd 3 -controlinfd 4 -mode resume -domid 7 -fd 5".into(), "-fd is not an option of -mode resume"),
            ("-controloutfd 3 -controlinfd 4 -mode resume".into(), "-domid is required"),
            // The builds refuse the new options.
            (format!("-controloutfd 3 -controlinfd 4 -mode linux_build -image k {TAIL} -fd 5"), "-fd is not an option of -mode linux_build"),
            (format!("-controloutfd 3 -controlinfd 4 -mode pvh_build -image k {TAIL} -live true"), "-live is not an option of -mode pvh_build"),
        ];
        for (line, message) in cases {
            let e = error(&line);
            assert_eq!(e.message, message, "{line}");
            assert_eq!(e.control_out_fd, Some(3), "{line}");
        }
    }
}
