//! The host's real libxenctrl, loaded at run time (by `xenlib`) so that the
//! addon loads on machines without Xen. The library must match the running
//! hypervisor (Xen refuses sysctls and domctls from another release's
//! library with EACCES), and struct layouts differ between releases: the
//! version is learnt first, only releases in `xenlib`'s table are used, and
//! each call passes the layout of the release that runs ([`layouts`]).
//!
//! This is the safe layer: it opens the library, checks the version, and
//! turns Xen's structs into this crate's types. Everything `unsafe` (loading,
//! the function table, the handle) is in [`ffi`].
// Only `ffi` may use `unsafe` (it allows it for itself).
#![deny(unsafe_code)]

mod ffi;
pub mod layouts;

use crate::error::{Result, Unavailable, XenError};
use crate::types::*;
use crate::Hypervisor;
use ffi::{CpumapBytes, Interface, OpenError};
use layouts::{dominf, ArchDomainConfig, Createdomain, CreatedomainFields};
use std::collections::HashMap;
use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use xenlib::Release;

const XEN_DOMCTL_CDF_HVM: u32 = 1 << 0;
const XEN_DOMCTL_CDF_HAP: u32 = 1 << 1;
const XEN_DOMCTL_CDF_NESTED_VIRT: u32 = 1 << 6;
const XEN_DOMCTL_CDF_VPMU: u32 = 1 << 7;
const XEN_X86_MSR_RELAXED: u32 = 1 << 0;
const XEN_X86_EMU_LAPIC: u32 = 1 << 0;
/// Everything but vPCI, as libxl gives an HVM guest.
const XEN_X86_EMU_HVM: u32 = 0x3ff;
const XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION: u32 = 30;
const XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION: u32 = 31;
const XEN_VCPUAFFINITY_HARD: u32 = 1 << 0;
const XEN_VCPUAFFINITY_SOFT: u32 = 1 << 1;
const XEN_INVALID_ID: u32 = !0;
const XEN_INVALID_MEM_SZ: u64 = 0xFFFF_FFFF;

/// What libxenctrl's own logging does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LibraryLog {
    /// Nothing: every failure reaches the caller as an error with its errno.
    #[default]
    Quiet,
    /// libxenctrl's default: its messages (`xc: error: ...`) on stderr.
    Stderr,
}

/// Where to find the library and the privcmd device.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// A libxenctrl to load instead of the running Xen's versioned soname.
    pub library_path: Option<PathBuf>,
    pub privcmd_path: PathBuf,
    pub library_log: LibraryLog,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            library_path: None,
            privcmd_path: PathBuf::from("/dev/xen/privcmd"),
            library_log: LibraryLog::Quiet,
        }
    }
}

/// The host's libxenctrl, opened.
pub struct XenCtrl {
    xc: Interface,
    release: &'static Release,
    cpumap: CpumapBytes,
    library_name: String,
    /// The vCPUs of each domain this handle created: Xen does not say
    /// before `max_vcpus`, which takes only that count.
    created_vcpus: Mutex<HashMap<DomId, u32>>,
}

/// Whether this process may make hypercalls, given what was found.
pub(crate) fn check_access(privcmd: &Path, euid: u32) -> std::result::Result<(), Unavailable> {
    if !privcmd.exists() {
        return Err(Unavailable::NoPrivcmd {
            path: privcmd.display().to_string(),
        });
    }
    if euid != 0 {
        return Err(Unavailable::NotRoot { euid });
    }
    Ok(())
}

fn to_cpumap(cpus: &[u32], bytes: usize, operation: &'static str) -> Result<Vec<u8>> {
    let mut map = vec![0u8; bytes];
    for &cpu in cpus {
        let byte = map
            .get_mut(cpu as usize / 8)
            .ok_or_else(|| XenError::InvalidArgument {
                operation,
                message: format!("CPU {cpu} is beyond the host's cpumap ({} CPUs)", bytes * 8),
            })?;
        *byte |= 1 << (cpu % 8);
    }
    Ok(map)
}

fn from_cpumap(map: &[u8]) -> Vec<u32> {
    (0..map.len() * 8)
        .filter(|&cpu| map[cpu / 8] & (1 << (cpu % 8)) != 0)
        .map(|c| c as u32)
        .collect()
}

fn vcpu_index(vcpu: u32, operation: &'static str) -> Result<c_int> {
    c_int::try_from(vcpu).map_err(|_| XenError::InvalidArgument {
        operation,
        message: format!("vCPU {vcpu} is out of range"),
    })
}

impl XenCtrl {
    pub fn open(options: &OpenOptions) -> Result<XenCtrl> {
        let loaded = xenlib::load::load_versioned("libxenctrl", options.library_path.as_deref())
            .map_err(|e| {
                XenError::Unavailable(Unavailable::NoLibrary {
                    tried: e.tried,
                    reason: e.reason,
                })
            })?;
        let library_name = loaded.name.clone();
        check_access(&options.privcmd_path, ffi::euid()).map_err(XenError::Unavailable)?;
        let xc = Interface::open(loaded, options.library_log).map_err(|e| match e {
            OpenError::Symbols(e) => XenError::Unavailable(Unavailable::NoLibrary {
                tried: vec![library_name.clone()],
                reason: e.to_string(),
            }),
            OpenError::Open(errno) => XenError::Unavailable(Unavailable::OpenFailed { errno }),
        })?;
        // A failure below drops `xc`, closing the handle after the error
        // (and its errno) is taken. XENVER_version is not versioned: any
        // release's library may ask it.
        let version = XenVersion::from_packed(xc.version()?);
        let release =
            xenlib::check_supported(version).map_err(|e| XenError::VersionUnsupported {
                version: e.version,
                supported: e.supported,
            })?;
        // Before any sysctl: another release's library would get EACCES.
        xenlib::load::check_matches(xc.loaded(), version)
            .map_err(|m| XenError::Unavailable(Unavailable::LibraryMismatch(m)))?;
        let cpumap = xc.cpumap_bytes()?;
        Ok(XenCtrl {
            xc,
            release,
            cpumap,
            library_name,
            created_vcpus: Mutex::default(),
        })
    }

    fn created_vcpus(&self) -> std::sync::MutexGuard<'_, HashMap<DomId, u32>> {
        self.created_vcpus.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The running release, with what differs in it.
    pub fn release(&self) -> &'static Release {
        self.release
    }

    /// The library that was loaded.
    pub fn library_name(&self) -> &str {
        &self.library_name
    }
}

impl Hypervisor for XenCtrl {
    fn version(&self) -> XenVersion {
        self.release.version
    }

    fn physinfo(&self) -> Result<PhysInfo> {
        let raw = self.xc.physinfo()?;
        Ok(PhysInfo {
            threads_per_core: raw.threads_per_core,
            cores_per_socket: raw.cores_per_socket,
            nr_cpus: raw.nr_cpus,
            max_cpu_id: raw.max_cpu_id,
            nr_nodes: raw.nr_nodes,
            max_node_id: raw.max_node_id,
            cpu_khz: raw.cpu_khz,
            capabilities: Capabilities::from_bits(raw.capabilities),
            total_pages: raw.total_pages,
            free_pages: raw.free_pages,
            scrub_pages: raw.scrub_pages,
            outstanding_pages: raw.outstanding_pages,
            max_mfn: raw.max_mfn,
        })
    }

    fn numa_info(&self) -> Result<NumaInfo> {
        let (memory, distances, stride) = self.xc.numainfo()?;
        let n = memory.len();
        Ok(NumaInfo {
            nodes: memory
                .iter()
                .map(|m| {
                    (m.memsize != XEN_INVALID_MEM_SZ).then_some(NodeMemory {
                        size_bytes: m.memsize,
                        free_bytes: m.memfree,
                    })
                })
                .collect(),
            distances: (0..n)
                .map(|i| distances[i * stride..i * stride + n].to_vec())
                .collect(),
        })
    }

    fn cpu_topology(&self) -> Result<CpuTopology> {
        Ok(CpuTopology {
            cpus: self
                .xc
                .cputopoinfo()?
                .iter()
                .map(|c| {
                    (c.node != XEN_INVALID_ID).then_some(CpuLocation {
                        core: c.core,
                        socket: c.socket,
                        node: c.node,
                    })
                })
                .collect(),
        })
    }

    fn domain_info(&self, domid: DomId) -> Result<DomainInfo> {
        // getinfolist returns the next domain at or after `domid`.
        let raw = self
            .xc
            .domain_getinfo(domid)?
            .filter(|raw| u32::from(raw.domain) == domid)
            .ok_or_else(|| XenError::hypercall("xc_domain_getinfolist", libc::ESRCH))?;
        Ok(DomainInfo {
            domid,
            handle: raw.handle,
            ssidref: raw.ssidref,
            hvm: raw.flags & dominf::HVM_GUEST != 0,
            hap: raw.flags & dominf::HAP != 0,
            dying: raw.flags & dominf::DYING != 0,
            paused: raw.flags & dominf::PAUSED != 0,
            shutdown: shutdown_of_flags(raw.flags),
            tot_pages: raw.tot_pages,
            max_pages: raw.max_pages,
            outstanding_pages: raw.outstanding_pages,
            max_vcpu_id: (raw.max_vcpu_id != XEN_INVALID_ID).then_some(raw.max_vcpu_id),
            online_vcpus: raw.nr_online_vcpus,
            cpupool: raw.cpupool,
            created_vcpus: self.created_vcpus().get(&domid).copied(),
        })
    }

    fn set_hvm_param(&self, domid: DomId, param: u32, value: u64) -> Result<()> {
        self.xc.hvm_param_set(domid, param, value)
    }

    fn set_max_vcpus(&self, domid: DomId, max_vcpus: u32) -> Result<()> {
        self.xc.domain_max_vcpus(domid, max_vcpus)
    }

    fn set_memmap_limit(&self, domid: DomId, limit_kib: u64) -> Result<()> {
        self.xc.domain_set_memmap_limit(domid, limit_kib)
    }

    fn shadow_allocation_mib(&self, domid: DomId) -> Result<u32> {
        let mut mib = 0;
        self.xc
            .shadow_control(domid, XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION, &mut mib)?;
        Ok(mib)
    }

    fn set_shadow_allocation_mib(&self, domid: DomId, mib: u32) -> Result<()> {
        let mut mib = mib;
        self.xc
            .shadow_control(domid, XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION, &mut mib)
    }

    fn set_vcpu_affinity(
        &self,
        domid: DomId,
        vcpu: u32,
        hard: Option<&[u32]>,
        soft: Option<&[u32]>,
    ) -> Result<VcpuAffinity> {
        const OP: &str = "xc_vcpu_setaffinity";
        let flags =
            hard.map_or(0, |_| XEN_VCPUAFFINITY_HARD) | soft.map_or(0, |_| XEN_VCPUAFFINITY_SOFT);
        let bytes = self.cpumap.get();
        let mut hard_map = to_cpumap(hard.unwrap_or(&[]), bytes, OP)?;
        let mut soft_map = to_cpumap(soft.unwrap_or(&[]), bytes, OP)?;
        let vcpu = vcpu_index(vcpu, OP)?;
        self.xc.vcpu_setaffinity(
            domid,
            vcpu,
            &mut hard_map,
            &mut soft_map,
            flags,
            self.cpumap,
        )?;
        // The maps come back as Xen's effective masks.
        Ok(VcpuAffinity {
            hard: if hard.is_some() {
                from_cpumap(&hard_map)
            } else {
                Vec::new()
            },
            soft: if soft.is_some() {
                from_cpumap(&soft_map)
            } else {
                Vec::new()
            },
        })
    }

    fn vcpu_affinity(&self, domid: DomId, vcpu: u32) -> Result<VcpuAffinity> {
        const OP: &str = "xc_vcpu_getaffinity";
        let mut hard = vec![0u8; self.cpumap.get()];
        let mut soft = vec![0u8; self.cpumap.get()];
        let vcpu = vcpu_index(vcpu, OP)?;
        self.xc.vcpu_getaffinity(
            domid,
            vcpu,
            &mut hard,
            &mut soft,
            XEN_VCPUAFFINITY_HARD | XEN_VCPUAFFINITY_SOFT,
            self.cpumap,
        )?;
        Ok(VcpuAffinity {
            hard: from_cpumap(&hard),
            soft: from_cpumap(&soft),
        })
    }

    fn claim_pages(&self, domid: DomId, pages: u64) -> Result<()> {
        let result = self.xc.domain_claim_pages(domid, pages);
        let errno = result.as_ref().err().and_then(XenError::errno);
        match claim_outcome(self.release, pages, errno, || {
            self.domain_info(domid).is_ok_and(|d| d.dying)
        }) {
            ClaimOutcome::AsReturned => result,
            ClaimOutcome::Released => Ok(()),
        }
    }

    fn claim_pages_on_node(&self, _domid: DomId, _node: u32, _pages: u64) -> Result<()> {
        // No released libxenctrl has a node claim: XenServer's Xen patches it
        // in, and upstream's XEN_DOMCTL_claim_memory is still under review.
        Err(XenError::hypercall("claim_pages_on_node", libc::ENOSYS))
    }

    fn alloc_unbound_evtchn(&self, domid: DomId, remote: DomId) -> Result<u32> {
        self.xc.evtchn_alloc_unbound(domid, remote)
    }

    fn create_domain(&self, config: &DomainConfig) -> Result<DomId> {
        let (kind_flags, emulation_flags) = match config.kind {
            DomainKind::Pv => (0, 0),
            DomainKind::Hvm => (XEN_DOMCTL_CDF_HVM, XEN_X86_EMU_HVM),
            DomainKind::Pvh => (XEN_DOMCTL_CDF_HVM, XEN_X86_EMU_LAPIC),
        };
        // Passed as asked: Xen refuses what it cannot do (HAP on a PV domain,
        // nested virt without HAP, vPMU not enabled) with EINVAL.
        let flags = [
            (config.hap, XEN_DOMCTL_CDF_HAP),
            (config.nested_virt, XEN_DOMCTL_CDF_NESTED_VIRT),
            (config.vpmu, XEN_DOMCTL_CDF_VPMU),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .fold(kind_flags, |flags, (_, flag)| flags | flag);
        let mut raw = Createdomain::new(
            self.release,
            CreatedomainFields {
                ssidref: config.ssidref,
                handle: config.handle,
                flags,
                max_vcpus: config.max_vcpus,
                max_evtchn_port: config.max_evtchn_port,
                // Negative: the hypervisor's default limits.
                max_grant_frames: config
                    .max_grant_frames
                    .map_or(-1, |f| i32::try_from(f).unwrap_or(i32::MAX)),
                max_maptrack_frames: config
                    .max_maptrack_frames
                    .map_or(-1, |f| i32::try_from(f).unwrap_or(i32::MAX)),
                // XEN_DOMCTL_GRANT_version(v) is v itself; Xen refuses anything above its mask.
                grant_opts: config.max_grant_version,
                arch: ArchDomainConfig {
                    emulation_flags,
                    misc_flags: if config.msr_relaxed {
                        XEN_X86_MSR_RELAXED
                    } else {
                        0
                    },
                },
            },
        );
        let domid = self.xc.domain_create(&mut raw)?;
        self.created_vcpus().insert(domid, config.max_vcpus);
        Ok(domid)
    }

    fn destroy_domain(&self, domid: DomId) -> Result<()> {
        self.xc.domain_destroy(domid)?;
        self.created_vcpus().remove(&domid);
        Ok(())
    }

    fn set_domain_handle(&self, domid: DomId, handle: [u8; 16]) -> Result<()> {
        self.xc.domain_sethandle(domid, &handle)
    }

    fn set_max_memory_kib(&self, domid: DomId, max_kib: u64) -> Result<()> {
        self.xc.domain_setmaxmem(domid, max_kib)
    }

    fn unpause_domain(&self, domid: DomId) -> Result<()> {
        self.xc.domain_unpause(domid)
    }
}

/// What a claim's answer means, the same on every release.
#[derive(Debug, PartialEq, Eq)]
enum ClaimOutcome {
    AsReturned,
    /// Success: what the call answered is how this release says so.
    Released,
}

/// Irons out two release differences of `xc_domain_claim_pages`:
/// - up to 4.21 libxenctrl turns ENOSYS (a Xen without claims) into
///   success, and from 4.22 passes it on: success on every release, as
///   callers were written against (there is nothing to claim against).
/// - releasing a dying domain's claim (0 pages) succeeds up to 4.19.4 and
///   is EINVAL from 4.19.5, 4.20.3, 4.21.1 and 4.22 (Xen drops the claim of
///   a dying domain itself): success on every release. `dying` is asked
///   only for that case.
fn claim_outcome(
    release: &Release,
    pages: u64,
    errno: Option<i32>,
    dying: impl FnOnce() -> bool,
) -> ClaimOutcome {
    match errno {
        Some(libc::ENOSYS) if release.claim_passes_enosys => ClaimOutcome::Released,
        Some(libc::EINVAL) if pages == 0 && dying() => ClaimOutcome::Released,
        _ => ClaimOutcome::AsReturned,
    }
}

/// Why the domain shut down, from getdomaininfo's flags: only once it has
/// (`XEN_DOMINF_shutdown`). The code is in the flags before that too, while
/// it shuts down or when the guest set one in advance, and all ones when it
/// has none: neither is a shutdown.
fn shutdown_of_flags(flags: u32) -> Option<ShutdownReason> {
    (flags & dominf::SHUTDOWN != 0).then(|| {
        let code = (flags >> dominf::SHUTDOWN_SHIFT) & dominf::SHUTDOWN_MASK;
        ShutdownReason::from_code(code as u8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(minor: u32) -> &'static Release {
        xenlib::release(XenVersion::new(4, minor)).unwrap()
    }

    #[test]
    fn claims_answer_alike_on_every_release() {
        let never = || panic!("dying asked for");
        // 4.22's ENOSYS is what 4.21's library turned into success.
        assert_eq!(
            claim_outcome(release(22), 10, Some(libc::ENOSYS), never),
            ClaimOutcome::Released
        );
        assert_eq!(
            claim_outcome(release(21), 10, Some(libc::ENOSYS), never),
            ClaimOutcome::AsReturned
        );
        // A dying domain's claim is released with it.
        assert_eq!(
            claim_outcome(release(20), 0, Some(libc::EINVAL), || true),
            ClaimOutcome::Released
        );
        assert_eq!(
            claim_outcome(release(20), 0, Some(libc::EINVAL), || false),
            ClaimOutcome::AsReturned
        );
        // A refused claim of pages stays refused.
        assert_eq!(
            claim_outcome(release(19), 10, Some(libc::EINVAL), never),
            ClaimOutcome::AsReturned
        );
        assert_eq!(
            claim_outcome(release(19), 10, Some(libc::ENOMEM), never),
            ClaimOutcome::AsReturned
        );
        assert_eq!(
            claim_outcome(release(17), 10, None, never),
            ClaimOutcome::AsReturned
        );
    }

    #[test]
    fn the_shutdown_reason_is_read_only_once_the_domain_has_shut_down() {
        // As getdomaininfo builds the flags: the code (all ones without one,
        // SHUTDOWN_CODE_INVALID) shifted over the other bits.
        let flags = |code: u32, bits: u32| code << 16 | bits;
        let none = u32::MAX;
        assert_eq!(shutdown_of_flags(flags(none, dominf::PAUSED)), None);
        assert_eq!(
            shutdown_of_flags(flags(2, dominf::SHUTDOWN | dominf::PAUSED)),
            Some(ShutdownReason::Suspend)
        );
        assert_eq!(
            shutdown_of_flags(flags(5, dominf::SHUTDOWN | dominf::HVM_GUEST)),
            Some(ShutdownReason::SoftReset)
        );
        // A code but not shut down: shutting down, or a code set in advance.
        assert_eq!(shutdown_of_flags(flags(3, dominf::HVM_GUEST)), None);
        // Xen keeps any 8-bit code a guest gives.
        assert_eq!(
            shutdown_of_flags(flags(200, dominf::SHUTDOWN)),
            Some(ShutdownReason::Other(200))
        );
        assert_eq!(
            shutdown_of_flags(flags(0, dominf::SHUTDOWN | dominf::DYING)),
            Some(ShutdownReason::Poweroff)
        );
    }

    #[test]
    fn createdomain_takes_the_running_release_s_layout() {
        let fields = CreatedomainFields {
            max_vcpus: 2,
            ..Default::default()
        };
        assert_eq!(Createdomain::new(release(18), fields).size_bytes(), 64);
        match Createdomain::new(release(19), fields) {
            Createdomain::Bytes68(c) => assert_eq!(c.max_vcpus, 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(Createdomain::new(release(22), fields).size_bytes(), 68);
    }

    #[test]
    fn access_needs_privcmd_then_root() {
        let missing = Path::new("/nonexistent/privcmd");
        assert_eq!(
            check_access(missing, 0),
            Err(Unavailable::NoPrivcmd {
                path: missing.display().to_string()
            })
        );
        let present = Path::new("/");
        assert_eq!(
            check_access(present, 1000),
            Err(Unavailable::NotRoot { euid: 1000 })
        );
        assert_eq!(check_access(present, 0), Ok(()));
    }

    #[test]
    fn cpumaps_round_trip_and_refuse_cpus_beyond_them() {
        let map = to_cpumap(&[0, 3, 9], 2, "op").unwrap();
        assert_eq!(map, vec![0b0000_1001, 0b0000_0010]);
        assert_eq!(from_cpumap(&map), vec![0, 3, 9]);
        let err = to_cpumap(&[16], 2, "op").unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT");
    }
}
