// SPDX-License-Identifier: GPL-2.0-only
/*
 * tracemgr.c - Linux driver for the trace-manager hypervisor's trace calls.
 *
 * The hypervisor (this repository's el2/) owns every core's trace hardware
 * and offers TRACE_ENABLE / TRACE_DISABLE / TRACE_STATUS as SMCCC fast calls
 * of its vendor hypervisor service (owner 6), issued with "hvc #0". The ABI
 * is in ../include/tracemgr.h (authoritative: ../ABI.md and the codecs in ../src/).
 *
 * Conduit: the calls go through Linux's SMCCC conduit (arm_smccc_1_2_smc or
 * arm_smccc_1_2_hvc, which return x0..x17, so TRACE_STATUS's x4/x5 too).
 * Under this hypervisor the guest's PSCI method is "smc" and the hypervisor
 * traps SMC and serves its service from SMC exactly as from HVC. use_hvc=1
 * forces "hvc #0" (the ABI's own instruction); with no EL2 that would be
 * UNDEFINED, which is why it is not the default with an SMC conduit.
 *
 * Probing: SMCCC >= 1.1 with a conduit; CALL_UID must return the
 * trace manager's UID; ABI_VERSION's major must be 1. Otherwise the module
 * refuses to load with -ENODEV.
 *
 * sysfs, /sys/kernel/tracemgr/:
 *   abi_version            "1.2" (major.minor of ABI_VERSION)
 *   requests, errors       hypervisor calls made / calls that returned an error
 *   id_aa64dfr0            ID_AA64DFR0_EL1 as read on the reading CPU: the
 *                          trace fields are 0 (the hypervisor hides its units)
 *   cpuN/enable            read: 1 if the core's trace mode is ENABLED, else 0
 *                          (TRACE_STATUS); write 1: TRACE_ENABLE with the
 *                          core's config; write 0: TRACE_DISABLE
 *   cpuN/config            read: "0x<config> [0x<start> 0x<end>]", the config
 *                          the next enable uses; write: a config word (hex or
 *                          decimal, TRACEMGR_CONFIG_* bits), with "start end"
 *                          after it when it has TRACEMGR_CONFIG_ADDR_FILTER.
 *                          If the core is enabled, the new config is applied
 *                          at once (TRACE_ENABLE reconfigures).
 *   cpuN/status            read: one line from TRACE_STATUS, e.g.
 *                          "mode=enabled hw=tracing powered=1 gen=3
 *                          config=0x3 filter=0x0-0x0 backend=model"
 *   cpuN/generation        read: the generation the last enable/disable
 *                          returned (0 before any)
 *   cpuN/mpidr             read: the MPIDR this driver targets for cpuN
 *   cpuN/stats             read: TRACE_STATS, e.g. "written=102 wraps=0
 *                          lost=0 flags=0x0 available=102"
 *   cpuN/data              binary, read: the core's trace data (raw ETE
 *                          packets, oldest byte first) through TRACE_READ,
 *                          one page at a time into a bounce page whose
 *                          physical address is the IPA the hypervisor
 *                          checks and writes (its stage 2 maps guest RAM
 *                          1:1). Kept until the next enable.
 *
 * The target MPIDR: arm64's cpu_logical_map() is not exported to modules
 * in 6.1, so a CPU-hotplug callback (CPUHP_AP_ONLINE_DYN), which runs on
 * the CPU itself, records read_cpuid_mpidr() & MPIDR_HWID_BITMASK for every
 * CPU when it is (or comes) online. A CPU that has never been online since
 * the module was loaded has no known MPIDR: its files answer -ENODEV.
 *
 * Hypervisor errors map to errno: NOT_SUPPORTED -> -EOPNOTSUPP,
 * INVALID_PARAMETER -> -EINVAL, DENIED -> -EPERM, TARGET_OFF (core powered
 * off) -> -ENODEV, HARDWARE_FAULT -> -EIO, anything else -> -EPROTO.
 */
#define pr_fmt(fmt) "tracemgr: " fmt

#include <linux/arm-smccc.h>
#include <linux/atomic.h>
#include <linux/cpu.h>
#include <linux/cpuhotplug.h>
#include <linux/kernel.h>
#include <linux/kobject.h>
#include <linux/gfp.h>
#include <linux/io.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/sysfs.h>
#include <asm/cputype.h>
#include <asm/sysreg.h>

#include "tracemgr.h"

#define TRACEMGR_MPIDR_UNKNOWN (~0UL)

struct tracemgr_cpu {
	struct kobject kobj;
	unsigned int cpu;
	struct mutex lock;	/* config, start, end, generation */
	u64 config;
	u64 start;
	u64 end;
	u64 generation;
};

static struct kobject *tracemgr_kobj;
static struct tracemgr_cpu **tracemgr_cpus;
static unsigned long tracemgr_mpidr[NR_CPUS];
static enum cpuhp_state tracemgr_hp_state;
static atomic64_t tracemgr_requests = ATOMIC64_INIT(0);
static atomic64_t tracemgr_errors = ATOMIC64_INIT(0);
static u64 tracemgr_abi;

/*
 * The instruction: Linux's SMCCC conduit (the PSCI node's method), or "hvc"
 * when use_hvc is set. The hypervisor serves its calls alike from a trapped
 * SMC (HCR_EL2.TSC) and from HVC; its guest tree says method = "smc".
 */
static bool use_hvc;
module_param(use_hvc, bool, 0444);
MODULE_PARM_DESC(use_hvc, "issue calls with hvc #0 whatever the SMCCC conduit (only safe when EL2 is there)");

static void (*tracemgr_invoke)(const struct arm_smccc_1_2_regs *args,
			       struct arm_smccc_1_2_regs *res);

/* One call; res gets x0..x17. */
static void tracemgr_smccc(unsigned long fid, unsigned long a1, unsigned long a2,
			 unsigned long a3, unsigned long a4,
			 struct arm_smccc_1_2_regs *res)
{
	struct arm_smccc_1_2_regs args = {
		.a0 = fid, .a1 = a1, .a2 = a2, .a3 = a3, .a4 = a4,
	};

	tracemgr_invoke(&args, res);
}

static int tracemgr_errno(long err)
{
	switch (err) {
	case TRACEMGR_SUCCESS:
		return 0;
	case TRACEMGR_NOT_SUPPORTED:
		return -EOPNOTSUPP;
	case TRACEMGR_INVALID_PARAMETER:
		return -EINVAL;
	case TRACEMGR_DENIED:
		return -EPERM;
	case TRACEMGR_TARGET_OFF:
		return -ENODEV;
	case TRACEMGR_HARDWARE_FAULT:
		return -EIO;
	default:
		return -EPROTO;
	}
}

/* A trace call: counts it, returns 0 or -errno; res holds the results. */
static int tracemgr_call(unsigned long fid, unsigned long a1, unsigned long a2,
			 unsigned long a3, unsigned long a4,
			 struct arm_smccc_1_2_regs *res)
{
	int ret;

	atomic64_inc(&tracemgr_requests);
	tracemgr_smccc(fid, a1, a2, a3, a4, res);
	ret = tracemgr_errno((long)res->a0);
	if (ret) {
		atomic64_inc(&tracemgr_errors);
		pr_debug("call %#lx mpidr %#lx: error %ld\n", fid, a1, (long)res->a0);
	}
	return ret;
}

static int tracemgr_target(struct tracemgr_cpu *tc, unsigned long *mpidr)
{
	unsigned long m = READ_ONCE(tracemgr_mpidr[tc->cpu]);

	if (m == TRACEMGR_MPIDR_UNKNOWN)
		return -ENODEV;
	*mpidr = m;
	return 0;
}

static int tracemgr_status(struct tracemgr_cpu *tc, struct arm_smccc_1_2_regs *res)
{
	unsigned long mpidr;
	int ret = tracemgr_target(tc, &mpidr);

	if (ret)
		return ret;
	ret = tracemgr_call(TRACEMGR_TRACE_STATUS, mpidr, 0, 0, 0, res);
	if (ret)
		return ret;
	if (!tracemgr_state_valid(res->a1)) {
		pr_warn_ratelimited("cpu%u: invalid state word %#lx\n", tc->cpu, res->a1);
		return -EPROTO;
	}
	return 0;
}

/* With tc->lock held. */
static int tracemgr_enable_locked(struct tracemgr_cpu *tc)
{
	struct arm_smccc_1_2_regs res;
	unsigned long mpidr;
	int ret = tracemgr_target(tc, &mpidr);

	if (ret)
		return ret;
	ret = tracemgr_call(TRACEMGR_TRACE_ENABLE, mpidr, tc->config,
			    tc->start, tc->end, &res);
	if (!ret)
		tc->generation = res.a1;
	return ret;
}

static int tracemgr_disable_locked(struct tracemgr_cpu *tc)
{
	struct arm_smccc_1_2_regs res;
	unsigned long mpidr;
	int ret = tracemgr_target(tc, &mpidr);

	if (ret)
		return ret;
	ret = tracemgr_call(TRACEMGR_TRACE_DISABLE, mpidr, 0, 0, 0, &res);
	if (!ret)
		tc->generation = res.a1;
	return ret;
}

/* Per-CPU attributes. */

#define to_tc(k) container_of(k, struct tracemgr_cpu, kobj)

static ssize_t enable_show(struct kobject *kobj, struct kobj_attribute *attr,
			   char *buf)
{
	struct arm_smccc_1_2_regs res;
	int ret = tracemgr_status(to_tc(kobj), &res);

	if (ret)
		return ret;
	return sysfs_emit(buf, "%u\n",
			  tracemgr_state_mode(res.a1) == TRACEMGR_MODE_ENABLED);
}

static ssize_t enable_store(struct kobject *kobj, struct kobj_attribute *attr,
			    const char *buf, size_t count)
{
	struct tracemgr_cpu *tc = to_tc(kobj);
	bool on;
	int ret = kstrtobool(buf, &on);

	if (ret)
		return ret;
	mutex_lock(&tc->lock);
	ret = on ? tracemgr_enable_locked(tc) : tracemgr_disable_locked(tc);
	mutex_unlock(&tc->lock);
	return ret ? ret : count;
}

static ssize_t config_show(struct kobject *kobj, struct kobj_attribute *attr,
			   char *buf)
{
	struct tracemgr_cpu *tc = to_tc(kobj);
	ssize_t n;

	mutex_lock(&tc->lock);
	if (tc->config & TRACEMGR_CONFIG_ADDR_FILTER)
		n = sysfs_emit(buf, "%#llx %#llx %#llx\n", tc->config, tc->start, tc->end);
	else
		n = sysfs_emit(buf, "%#llx\n", tc->config);
	mutex_unlock(&tc->lock);
	return n;
}

static ssize_t config_store(struct kobject *kobj, struct kobj_attribute *attr,
			    const char *buf, size_t count)
{
	struct tracemgr_cpu *tc = to_tc(kobj);
	struct arm_smccc_1_2_regs res;
	unsigned long long config, start = 0, end = 0;
	u64 old_config, old_start, old_end;
	int n, ret;

	n = sscanf(buf, "%llx %llx %llx", &config, &start, &end);
	if (n != 1 && n != 3)
		return -EINVAL;
	if (config & ~TRACEMGR_CONFIG_ALL)
		return -EINVAL;
	if (!!(config & TRACEMGR_CONFIG_ADDR_FILTER) != (n == 3))
		return -EINVAL;

	mutex_lock(&tc->lock);
	old_config = tc->config;
	old_start = tc->start;
	old_end = tc->end;
	tc->config = config;
	tc->start = start;
	tc->end = end;
	/* An enabled core takes the new config at once; the hypervisor checks it. */
	ret = tracemgr_status(tc, &res);
	if (ret == -ENODEV)
		ret = 0;	/* off or unknown: used at the next enable */
	else if (!ret && tracemgr_state_mode(res.a1) == TRACEMGR_MODE_ENABLED)
		ret = tracemgr_enable_locked(tc);
	if (ret) {
		tc->config = old_config;
		tc->start = old_start;
		tc->end = old_end;
	}
	mutex_unlock(&tc->lock);
	return ret ? ret : count;
}

static const char *const tracemgr_backends[] = { "model", "ete-trbe" };

static ssize_t status_show(struct kobject *kobj, struct kobj_attribute *attr,
			   char *buf)
{
	struct arm_smccc_1_2_regs res;
	unsigned int backend;
	int ret = tracemgr_status(to_tc(kobj), &res);

	if (ret)
		return ret;
	backend = tracemgr_state_backend(res.a1);
	return sysfs_emit(buf,
			  "mode=%s hw=%s powered=%d gen=%lu config=%#lx filter=%#lx-%#lx backend=%s\n",
			  tracemgr_state_mode(res.a1) == TRACEMGR_MODE_ENABLED ?
				  "enabled" : "disabled",
			  tracemgr_state_hw(res.a1) == TRACEMGR_HW_TRACING ?
				  "tracing" : "stopped",
			  tracemgr_state_powered(res.a1), res.a2, res.a3,
			  res.a4, res.a5,
			  backend < ARRAY_SIZE(tracemgr_backends) ?
				  tracemgr_backends[backend] : "unknown");
}

static ssize_t generation_show(struct kobject *kobj, struct kobj_attribute *attr,
			       char *buf)
{
	struct tracemgr_cpu *tc = to_tc(kobj);
	u64 gen;

	mutex_lock(&tc->lock);
	gen = tc->generation;
	mutex_unlock(&tc->lock);
	return sysfs_emit(buf, "%llu\n", gen);
}

static ssize_t mpidr_show(struct kobject *kobj, struct kobj_attribute *attr,
			  char *buf)
{
	unsigned long mpidr;
	int ret = tracemgr_target(to_tc(kobj), &mpidr);

	return ret ? ret : sysfs_emit(buf, "%#lx\n", mpidr);
}

static struct kobj_attribute enable_attr = __ATTR_RW_MODE(enable, 0644);
static struct kobj_attribute config_attr = __ATTR_RW_MODE(config, 0644);
static struct kobj_attribute status_attr = __ATTR_RO(status);
static struct kobj_attribute generation_attr = __ATTR_RO(generation);
static struct kobj_attribute mpidr_attr = __ATTR_RO(mpidr);

static ssize_t stats_show(struct kobject *kobj, struct kobj_attribute *attr,
			  char *buf)
{
	struct arm_smccc_1_2_regs res;
	unsigned long mpidr;
	int ret = tracemgr_target(to_tc(kobj), &mpidr);

	if (!ret)
		ret = tracemgr_call(TRACEMGR_TRACE_STATS, mpidr, 0, 0, 0, &res);
	if (ret)
		return ret;
	return sysfs_emit(buf, "written=%lu wraps=%lu lost=%lu flags=%#lx available=%lu\n",
			  res.a1, res.a2, res.a3, res.a4, res.a5);
}

static struct kobj_attribute stats_attr = __ATTR_RO(stats);

static ssize_t data_read(struct file *file, struct kobject *kobj,
			 struct bin_attribute *attr, char *buf, loff_t off,
			 size_t count)
{
	struct arm_smccc_1_2_regs res;
	unsigned long mpidr, page;
	size_t n = min_t(size_t, count, PAGE_SIZE);
	int ret = tracemgr_target(to_tc(kobj), &mpidr);

	if (ret)
		return ret;
	if (off < 0)
		return -EINVAL;
	if (!n)
		return 0;
	page = __get_free_page(GFP_KERNEL);
	if (!page)
		return -ENOMEM;
	ret = tracemgr_call(TRACEMGR_TRACE_READ, mpidr, off,
			    virt_to_phys((void *)page), n, &res);
	if (!ret) {
		n = min_t(size_t, res.a1, n);
		memcpy(buf, (void *)page, n);
	}
	free_page(page);
	return ret ? ret : n;
}

/* Root only: the data is kernel control flow (addresses, context IDs). */
static struct bin_attribute bin_attr_data = __BIN_ATTR(data, 0400, data_read, NULL, 0);

static struct attribute *tracemgr_cpu_attrs[] = {
	&enable_attr.attr,
	&config_attr.attr,
	&status_attr.attr,
	&generation_attr.attr,
	&mpidr_attr.attr,
	&stats_attr.attr,
	NULL,
};

static struct bin_attribute *tracemgr_cpu_bin_attrs[] = {
	&bin_attr_data,
	NULL,
};

static const struct attribute_group tracemgr_cpu_group = {
	.attrs = tracemgr_cpu_attrs,
	.bin_attrs = tracemgr_cpu_bin_attrs,
};

static const struct attribute_group *tracemgr_cpu_groups[] = {
	&tracemgr_cpu_group,
	NULL,
};

static void tracemgr_cpu_release(struct kobject *kobj)
{
	kfree(to_tc(kobj));
}

static struct kobj_type tracemgr_cpu_ktype = {
	.release = tracemgr_cpu_release,
	.sysfs_ops = &kobj_sysfs_ops,
	.default_groups = tracemgr_cpu_groups,
};

/* Top-level attributes. */

static ssize_t requests_show(struct kobject *kobj, struct kobj_attribute *attr,
			     char *buf)
{
	return sysfs_emit(buf, "%lld\n", (long long)atomic64_read(&tracemgr_requests));
}

static ssize_t errors_show(struct kobject *kobj, struct kobj_attribute *attr,
			   char *buf)
{
	return sysfs_emit(buf, "%lld\n", (long long)atomic64_read(&tracemgr_errors));
}

static ssize_t abi_version_show(struct kobject *kobj, struct kobj_attribute *attr,
				char *buf)
{
	return sysfs_emit(buf, "%llu.%llu\n", tracemgr_abi >> 16, tracemgr_abi & 0xffff);
}

/*
 * ID_AA64DFR0_EL1 as this CPU reads it (the hypervisor traps the read and
 * clears TraceVer, TraceFilt and TraceBuffer: the trace hardware is its
 * own). Read raw, not through the kernel's sanitised copy.
 */
static ssize_t id_aa64dfr0_show(struct kobject *kobj, struct kobj_attribute *attr,
				char *buf)
{
	return sysfs_emit(buf, "%#llx\n", (unsigned long long)read_sysreg_s(SYS_ID_AA64DFR0_EL1));
}

static struct kobj_attribute requests_attr = __ATTR_RO(requests);
static struct kobj_attribute id_aa64dfr0_attr = __ATTR_RO(id_aa64dfr0);
static struct kobj_attribute errors_attr = __ATTR_RO(errors);
static struct kobj_attribute abi_version_attr = __ATTR_RO(abi_version);

static struct attribute *tracemgr_attrs[] = {
	&requests_attr.attr,
	&errors_attr.attr,
	&abi_version_attr.attr,
	&id_aa64dfr0_attr.attr,
	NULL,
};

static const struct attribute_group tracemgr_group = {
	.attrs = tracemgr_attrs,
};

/* Runs on the CPU coming online. */
static int tracemgr_cpu_online(unsigned int cpu)
{
	WRITE_ONCE(tracemgr_mpidr[cpu], read_cpuid_mpidr() & MPIDR_HWID_BITMASK);
	return 0;
}

static int tracemgr_probe_hyp(void)
{
	struct arm_smccc_1_2_regs res;

	if (arm_smccc_get_version() < ARM_SMCCC_VERSION_1_1) {
		pr_info("SMCCC %#x < 1.1: no trace manager\n", arm_smccc_get_version());
		return -ENODEV;
	}
	switch (arm_smccc_1_1_get_conduit()) {
	case SMCCC_CONDUIT_HVC:
		tracemgr_invoke = arm_smccc_1_2_hvc;
		break;
	case SMCCC_CONDUIT_SMC:
		tracemgr_invoke = use_hvc ? arm_smccc_1_2_hvc : arm_smccc_1_2_smc;
		break;
	default:
		pr_info("no SMCCC conduit: no trace manager\n");
		return -ENODEV;
	}
	tracemgr_smccc(TRACEMGR_CALL_UID, 0, 0, 0, 0, &res);
	if ((u32)res.a0 != TRACEMGR_UID_0 || (u32)res.a1 != TRACEMGR_UID_1 ||
	    (u32)res.a2 != TRACEMGR_UID_2 || (u32)res.a3 != TRACEMGR_UID_3) {
		pr_info("hypervisor UID %08x %08x %08x %08x is not the trace manager's\n",
			(u32)res.a0, (u32)res.a1, (u32)res.a2, (u32)res.a3);
		return -ENODEV;
	}
	tracemgr_smccc(TRACEMGR_ABI_VERSION, 0, 0, 0, 0, &res);
	if ((long)res.a0 < 0 || (res.a0 >> 16) != TRACEMGR_ABI_MAJOR) {
		pr_info("ABI_VERSION %#lx: major %llu needed\n", res.a0, TRACEMGR_ABI_MAJOR);
		return -ENODEV;
	}
	tracemgr_abi = res.a0;
	return 0;
}

static void tracemgr_remove_cpus(void)
{
	unsigned int cpu;

	if (!tracemgr_cpus)
		return;
	for_each_possible_cpu(cpu)
		if (tracemgr_cpus[cpu])
			kobject_put(&tracemgr_cpus[cpu]->kobj);
	kfree(tracemgr_cpus);
	tracemgr_cpus = NULL;
}

static int __init tracemgr_init(void)
{
	unsigned int cpu, known = 0;
	int ret;

	ret = tracemgr_probe_hyp();
	if (ret)
		return ret;

	for (cpu = 0; cpu < NR_CPUS; cpu++)
		tracemgr_mpidr[cpu] = TRACEMGR_MPIDR_UNKNOWN;
	ret = cpuhp_setup_state(CPUHP_AP_ONLINE_DYN, "tracemgr:online",
				tracemgr_cpu_online, NULL);
	if (ret < 0)
		return ret;
	tracemgr_hp_state = ret;

	tracemgr_kobj = kobject_create_and_add("tracemgr", kernel_kobj);
	if (!tracemgr_kobj) {
		ret = -ENOMEM;
		goto err_hp;
	}
	ret = sysfs_create_group(tracemgr_kobj, &tracemgr_group);
	if (ret)
		goto err_kobj;

	tracemgr_cpus = kcalloc(nr_cpu_ids, sizeof(*tracemgr_cpus), GFP_KERNEL);
	if (!tracemgr_cpus) {
		ret = -ENOMEM;
		goto err_kobj;
	}
	for_each_possible_cpu(cpu) {
		struct tracemgr_cpu *tc = kzalloc(sizeof(*tc), GFP_KERNEL);

		if (!tc) {
			ret = -ENOMEM;
			goto err_cpus;
		}
		tc->cpu = cpu;
		tc->config = TRACEMGR_CONFIG_EL0 | TRACEMGR_CONFIG_EL1;
		mutex_init(&tc->lock);
		ret = kobject_init_and_add(&tc->kobj, &tracemgr_cpu_ktype,
					   tracemgr_kobj, "cpu%u", cpu);
		tracemgr_cpus[cpu] = tc;	/* kobject_put frees it even on failure */
		if (ret)
			goto err_cpus;
		if (tracemgr_mpidr[cpu] != TRACEMGR_MPIDR_UNKNOWN)
			known++;
	}
	pr_info("trace manager ABI %llu.%llu found (SMCCC %#x, calls with %s); %u of %u CPUs online\n",
		tracemgr_abi >> 16, tracemgr_abi & 0xffff, arm_smccc_get_version(),
		tracemgr_invoke == arm_smccc_1_2_hvc ? "hvc" : "smc",
		known, num_possible_cpus());
	return 0;

err_cpus:
	tracemgr_remove_cpus();
err_kobj:
	kobject_put(tracemgr_kobj);
err_hp:
	cpuhp_remove_state_nocalls(tracemgr_hp_state);
	return ret;
}

static void __exit tracemgr_exit(void)
{
	/* Trace is left as it is: the hypervisor owns it, not this module. */
	tracemgr_remove_cpus();
	kobject_put(tracemgr_kobj);
	cpuhp_remove_state_nocalls(tracemgr_hp_state);
}

module_init(tracemgr_init);
module_exit(tracemgr_exit);

MODULE_DESCRIPTION("Per-CPU trace control through the trace-manager hypervisor");
MODULE_LICENSE("GPL");
