//! xenguest's command line, as xenopsd (and our `xenguestArgs()`) writes it.
//! Every option takes one value except `-vgpu` and `--force`; `-cmdline`
//! after a `-module` is that module's command line.

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

pub fn parse(argv: &[String]) -> Result<Command, UsageError> {
    let mut control_out_fd: Option<i32> = None;
    let fail = |message: String, fd: Option<i32>| UsageError {
        message,
        control_out_fd: fd,
    };
    if argv.first().map(String::as_str) == Some("-supports") {
        return match argv {
            [_, feature] => Ok(Command::Supports(feature.clone())),
            _ => Err(fail("-supports takes exactly one feature".into(), None)),
        };
    }

    let mut control_in_fd = None;
    let mut mode = None;
    let mut image = None;
    let mut cmdline = None;
    let mut ramdisk = None;
    let mut features = None;
    let mut flags = None;
    let mut modules: Vec<Module> = Vec::new();
    let (mut domid, mut store_port, mut console_port) = (None, None, None);
    let (mut store_domid, mut console_domid) = (0, 0);
    let (mut mem_max_mib, mut mem_start_mib, mut mem_pnode) = (None, None, None);
    let (mut vgpu, mut force) = (false, false);

    let mut i = 0;
    while i < argv.len() {
        let option = argv[i].as_str();
        i += 1;
        match option {
            "-vgpu" => {
                vgpu = true;
                continue;
            }
            "--force" => {
                force = true;
                continue;
            }
            _ => {}
        }
        let Some(value) = argv.get(i) else {
            return Err(fail(format!("{option} needs a value"), control_out_fd));
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
                "-controloutfd" => control_out_fd = Some(number(option, value)?),
                "-controlinfd" => control_in_fd = Some(number::<i32>(option, value)?),
                "-mode" => {
                    mode = Some(match value.as_str() {
                        "linux_build" => Mode::Pv,
                        "hvm_build" => Mode::Hvm,
                        "pvh_build" => Mode::Pvh,
                        other => return Err(format!("unknown -mode {other:?}")),
                    })
                }
                "-image" => set(&mut image)?,
                // After a -module, -cmdline is that module's.
                "-cmdline" => match modules.last_mut() {
                    Some(m) if m.cmdline.is_none() => m.cmdline = Some(value.clone()),
                    Some(_) => return Err("a -module has two -cmdline".into()),
                    None => set(&mut cmdline)?,
                },
                "-ramdisk" => set(&mut ramdisk)?,
                "-features" => set(&mut features)?,
                "-flags" => flags = Some(number::<u64>(option, value)?),
                "-module" => modules.push(Module {
                    path: value.clone(),
                    cmdline: None,
                }),
                "-domid" => domid = Some(number::<u32>(option, value)?),
                "-store_port" => store_port = Some(number::<u32>(option, value)?),
                "-store_domid" => store_domid = number(option, value)?,
                "-console_port" => console_port = Some(number::<u32>(option, value)?),
                "-console_domid" => console_domid = number(option, value)?,
                "-mem_max_mib" => mem_max_mib = Some(number::<u64>(option, value)?),
                "-mem_start_mib" => mem_start_mib = Some(number::<u64>(option, value)?),
                "-mem_pnode" => mem_pnode = Some(number::<u32>(option, value)?),
                _ => return Err(format!("unknown option {option:?}")),
            }
            Ok(())
        })();
        result.map_err(|message| fail(message, control_out_fd))?;
    }

    let need = |name: &str| fail(format!("{name} is required"), control_out_fd);
    let control_out_fd = control_out_fd.ok_or_else(|| need("-controloutfd"))?;
    let mode = mode.ok_or_else(|| need("-mode"))?;
    let args = BuildArgs {
        control_out_fd,
        control_in_fd: control_in_fd.ok_or_else(|| need("-controlinfd"))?,
        mode,
        image: image
            .filter(|p| !p.is_empty())
            .ok_or_else(|| need("-image"))?,
        cmdline: cmdline.unwrap_or_default(),
        ramdisk: ramdisk.filter(|p| !p.is_empty()),
        features: features.unwrap_or_default(),
        flags: flags.unwrap_or(0),
        modules,
        domid: domid.ok_or_else(|| need("-domid"))?,
        store_port: store_port.ok_or_else(|| need("-store_port"))?,
        store_domid,
        console_port: console_port.ok_or_else(|| need("-console_port"))?,
        console_domid,
        mem_max_mib: mem_max_mib.ok_or_else(|| need("-mem_max_mib"))?,
        mem_start_mib: mem_start_mib.ok_or_else(|| need("-mem_start_mib"))?,
        mem_pnode,
        vgpu,
        force,
    };
    let wrong = |message: &str| Err(fail(message.into(), Some(control_out_fd)));
    if args.mem_start_mib == 0 || args.mem_start_mib > args.mem_max_mib {
        return wrong("-mem_start_mib must be between 1 and -mem_max_mib");
    }
    // xc_dom_mem_init takes the size in MiB as an unsigned int.
    if args.mem_max_mib > u64::from(u32::MAX) {
        return wrong("-mem_max_mib is too large");
    }
    if args.ramdisk.is_some() && mode != Mode::Pv {
        return wrong("-ramdisk is for linux_build only");
    }
    if !args.modules.is_empty() && mode != Mode::Pvh {
        return wrong("-module is for pvh_build only");
    }
    if args.vgpu && mode != Mode::Hvm {
        return wrong("-vgpu is for hvm_build only");
    }
    if args.domid == 0 || args.domid >= 0x7ff0 {
        return wrong("-domid must name a guest domain (1 to 32751)");
    }
    Ok(Command::Build(Box::new(args)))
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
}
