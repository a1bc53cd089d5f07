/*
 * Prints every layout fact xen-domain-build relies on, for the Xen headers
 * it is compiled against: struct sizes, field offsets and sizes, constants.
 * One line each: "size STRUCT BYTES", "field STRUCT.FIELD OFFSET BYTES",
 * "const NAME VALUE". facts/xen-4.N.txt holds its output for each release;
 * the crates' layout tests compare their Rust definitions with those files,
 * and tests/installed.rs compiles this against real headers and compares.
 */
#define __XEN_TOOLS__ 1
#include <stddef.h>
#include <stdio.h>
#include <xenctrl.h>
#include <xenguest.h>
#include <xenstore_lib.h>
#include <xen/hvm/hvm_info_table.h>
#include <xen/sched.h>

#define SIZE(s) printf("size %s %zu\n", #s, sizeof(struct s))
#define TYPE_SIZE(t) printf("size %s %zu\n", #t, sizeof(t))
#define FIELD(s, f) \
    printf("field %s.%s %zu %zu\n", #s, #f, offsetof(struct s, f), sizeof(((struct s *)0)->f))
#define TYPE_FIELD(t, f) printf("field %s.%s %zu %zu\n", #t, #f, offsetof(t, f), sizeof(((t *)0)->f))
#define CONST(c) printf("const %s %lld\n", #c, (long long)(c))

int main(void)
{
    CONST(XEN_SYSCTL_INTERFACE_VERSION);
    CONST(XEN_DOMCTL_INTERFACE_VERSION);

    /* libxenctrl (crates/xenctrl) */
    SIZE(xen_sysctl_physinfo);
    FIELD(xen_sysctl_physinfo, threads_per_core);
    FIELD(xen_sysctl_physinfo, cores_per_socket);
    FIELD(xen_sysctl_physinfo, nr_cpus);
    FIELD(xen_sysctl_physinfo, max_cpu_id);
    FIELD(xen_sysctl_physinfo, nr_nodes);
    FIELD(xen_sysctl_physinfo, max_node_id);
    FIELD(xen_sysctl_physinfo, cpu_khz);
    FIELD(xen_sysctl_physinfo, capabilities);
    FIELD(xen_sysctl_physinfo, arch_capabilities);
    FIELD(xen_sysctl_physinfo, pad);
    FIELD(xen_sysctl_physinfo, total_pages);
    FIELD(xen_sysctl_physinfo, free_pages);
    FIELD(xen_sysctl_physinfo, scrub_pages);
    FIELD(xen_sysctl_physinfo, outstanding_pages);
    FIELD(xen_sysctl_physinfo, max_mfn);
    FIELD(xen_sysctl_physinfo, hw_cap);
    SIZE(xen_sysctl_meminfo);
    FIELD(xen_sysctl_meminfo, memsize);
    FIELD(xen_sysctl_meminfo, memfree);
    SIZE(xen_sysctl_cputopo);
    FIELD(xen_sysctl_cputopo, core);
    FIELD(xen_sysctl_cputopo, socket);
    FIELD(xen_sysctl_cputopo, node);
    SIZE(xen_arch_domainconfig);
    FIELD(xen_arch_domainconfig, emulation_flags);
    FIELD(xen_arch_domainconfig, misc_flags);
    SIZE(xen_domctl_getdomaininfo);
    FIELD(xen_domctl_getdomaininfo, domain);
    FIELD(xen_domctl_getdomaininfo, pad1);
    FIELD(xen_domctl_getdomaininfo, flags);
    FIELD(xen_domctl_getdomaininfo, tot_pages);
    FIELD(xen_domctl_getdomaininfo, max_pages);
    FIELD(xen_domctl_getdomaininfo, outstanding_pages);
    FIELD(xen_domctl_getdomaininfo, shr_pages);
    FIELD(xen_domctl_getdomaininfo, paged_pages);
    FIELD(xen_domctl_getdomaininfo, shared_info_frame);
    FIELD(xen_domctl_getdomaininfo, cpu_time);
    FIELD(xen_domctl_getdomaininfo, nr_online_vcpus);
    FIELD(xen_domctl_getdomaininfo, max_vcpu_id);
    FIELD(xen_domctl_getdomaininfo, ssidref);
    FIELD(xen_domctl_getdomaininfo, handle);
    FIELD(xen_domctl_getdomaininfo, cpupool);
    FIELD(xen_domctl_getdomaininfo, gpaddr_bits);
    FIELD(xen_domctl_getdomaininfo, pad2);
    FIELD(xen_domctl_getdomaininfo, arch_config);
    CONST(XEN_DOMINF_dying);
    CONST(XEN_DOMINF_hvm_guest);
    CONST(XEN_DOMINF_shutdown);
    CONST(XEN_DOMINF_paused);
    CONST(XEN_DOMINF_hap);
    CONST(XEN_DOMINF_shutdownmask);
    CONST(XEN_DOMINF_shutdownshift);
    CONST(SHUTDOWN_poweroff);
    CONST(SHUTDOWN_reboot);
    CONST(SHUTDOWN_suspend);
    CONST(SHUTDOWN_crash);
    CONST(SHUTDOWN_watchdog);
    CONST(SHUTDOWN_soft_reset);
    CONST(SHUTDOWN_MAX);
    SIZE(xen_domctl_createdomain);
    FIELD(xen_domctl_createdomain, ssidref);
    FIELD(xen_domctl_createdomain, handle);
    FIELD(xen_domctl_createdomain, flags);
    FIELD(xen_domctl_createdomain, iommu_opts);
    FIELD(xen_domctl_createdomain, max_vcpus);
    FIELD(xen_domctl_createdomain, max_evtchn_port);
    FIELD(xen_domctl_createdomain, max_grant_frames);
    FIELD(xen_domctl_createdomain, max_maptrack_frames);
    FIELD(xen_domctl_createdomain, grant_opts);
    /* 4.19 added a 32-bit altp2m_opts here; 4.21 (whose sysctl interface is
     * 0x16, its domctl one unchanged) made it a struct of two 16-bit fields. */
#if XEN_SYSCTL_INTERFACE_VERSION >= 0x16
    FIELD(xen_domctl_createdomain, altp2m);
#elif XEN_DOMCTL_INTERFACE_VERSION >= 0x17
    FIELD(xen_domctl_createdomain, altp2m_opts);
#endif
    FIELD(xen_domctl_createdomain, vmtrace_size);
    FIELD(xen_domctl_createdomain, cpupool_id);
    FIELD(xen_domctl_createdomain, arch);

    /* libxenguest (crates/builder) */
    FIELD(xc_dom_image, console_pfn);
    FIELD(xc_dom_image, xenstore_pfn);
    FIELD(xc_dom_image, pv_p2m);
    FIELD(xc_dom_image, total_pages);
    FIELD(xc_dom_image, flags);
    FIELD(xc_dom_image, console_evtchn);
    FIELD(xc_dom_image, xenstore_evtchn);
    FIELD(xc_dom_image, console_domid);
    FIELD(xc_dom_image, xenstore_domid);
    FIELD(xc_dom_image, claim_enabled);
    FIELD(xc_dom_image, vmemranges);
    FIELD(xc_dom_image, nr_vmemranges);
    FIELD(xc_dom_image, vnode_to_pnode);
    FIELD(xc_dom_image, nr_vnodes);
    FIELD(xc_dom_image, container_type);
    FIELD(xc_dom_image, max_vcpus);
    FIELD(xc_dom_image, target_pages);
    FIELD(xc_dom_image, mmio_start);
    FIELD(xc_dom_image, mmio_size);
    FIELD(xc_dom_image, lowmem_end);
    FIELD(xc_dom_image, highmem_end);
    FIELD(xc_dom_image, vga_hole_size);
    FIELD(xc_dom_image, device_model);
    FIELD(xc_dom_image, e820);
    FIELD(xc_dom_image, e820_entries);
    FIELD(xc_dom_image, acpi_modules);
    SIZE(hvm_info_table);
    FIELD(hvm_info_table, signature);
    FIELD(hvm_info_table, length);
    FIELD(hvm_info_table, checksum);
    FIELD(hvm_info_table, apic_mode);
    FIELD(hvm_info_table, nr_vcpus);
    FIELD(hvm_info_table, low_mem_pgend);
    FIELD(hvm_info_table, reserved_mem_pgstart);
    FIELD(hvm_info_table, high_mem_pgend);
    FIELD(hvm_info_table, vcpu_online);
    TYPE_SIZE(xen_vmemrange_t);
    TYPE_FIELD(xen_vmemrange_t, nid);
    TYPE_SIZE(xc_error);
    TYPE_FIELD(xc_error, message);
    SIZE(e820entry);
    SIZE(xc_hvm_firmware_module);
    FIELD(xc_hvm_firmware_module, guest_addr_out);
    CONST(XC_DOM_PV_CONTAINER);
    CONST(XC_DOM_HVM_CONTAINER);
    CONST(HVM_INFO_PFN);
    CONST(HVM_INFO_OFFSET);
    CONST(HVM_MAX_VCPUS);
    CONST(MAX_ACPI_MODULES);

    /* libxenguest's save, restore and resume (crates/builder) */
    SIZE(precopy_stats);
    FIELD(precopy_stats, iteration);
    FIELD(precopy_stats, total_written);
    FIELD(precopy_stats, dirty_count);
    SIZE(save_callbacks);
    FIELD(save_callbacks, suspend);
    FIELD(save_callbacks, precopy_policy);
    FIELD(save_callbacks, postcopy);
    FIELD(save_callbacks, checkpoint);
    FIELD(save_callbacks, wait_checkpoint);
    FIELD(save_callbacks, switch_qemu_logdirty);
    FIELD(save_callbacks, data);
    SIZE(restore_callbacks);
    FIELD(restore_callbacks, static_data_done);
    FIELD(restore_callbacks, suspend);
    FIELD(restore_callbacks, postcopy);
    FIELD(restore_callbacks, checkpoint);
    FIELD(restore_callbacks, wait_checkpoint);
    FIELD(restore_callbacks, restore_results);
    FIELD(restore_callbacks, data);
    CONST(XCFLAGS_LIVE);
    CONST(XCFLAGS_DEBUG);
    CONST(XC_STREAM_PLAIN);
    CONST(XGS_POLICY_ABORT);
    CONST(XGS_POLICY_CONTINUE_PRECOPY);
    CONST(XGS_POLICY_STOP_AND_COPY);
    CONST(XGR_SDD_MISSING_CPUID);
    CONST(XGR_SDD_MISSING_MSR);
    CONST(XENMEMF_exact_node(0));
    CONST(XENMEMF_exact_node(3));

    /* libxenstore (crates/xenstore) */
    SIZE(xs_permissions);
    FIELD(xs_permissions, id);
    FIELD(xs_permissions, perms);
    CONST(XS_PERM_NONE);
    CONST(XS_PERM_READ);
    CONST(XS_PERM_WRITE);
    return 0;
}
