// SPDX-License-Identifier: GPL-2.0-only
/*
 * tracemgr_cs.c - the trace-manager hypervisor's trace units as CoreSight
 * devices, so that perf's cs_etm PMU (perf record -e cs_etm//) records
 * through the hypervisor.
 *
 * The hypervisor (this repository's el2/) owns every core's ETE and TRBE;
 * the guest never touches them. This module stands in for the stock ETE
 * and TRBE drivers (which bind only to device-tree nodes that a guest of
 * the hypervisor does not have): for every CPU online, at load or when it
 * comes online later, it registers
 *
 *   tracemgr_eteN   a CoreSight source (SOURCE_PROC) whose enable and
 *                   disable are TRACE_ENABLE / TRACE_DISABLE of the local
 *                   core, with the config word built from the perf event;
 *                   linked into the cs_etm PMU as cs_etm/cpuN, with the
 *                   trcidr/trcidr{0,1,2,8} and mgmt/trcauthstatus,
 *                   mgmt/trcdevarch files perf reads (values from
 *                   TRACE_IDREGS, read once by the CPU itself);
 *   tracemgr_sinkN  a per-CPU system-memory sink (SINK_PERCPU_SYSMEM,
 *                   CPU N's per-CPU sink: the framework pairs it with
 *                   tracemgr_eteN without a connection) whose
 *                   update_buffer copies the core's trace data into the
 *                   perf AUX ring with TRACE_READ.
 *
 * perf's event config (see Linux's coresight-pmu.h) maps to the ABI's
 * config word: exclude_user clears EL0, exclude_kernel clears EL1,
 * ETM_OPT_TS -> TIMESTAMPS, ETM_OPT_CYCACC -> CYCLES, ETM_OPT_CTXTID ->
 * CONTEXT_ID. The hypervisor then programs TRCCONFIGR with exactly the bits
 * perf writes into its metadata for those options (TS bit 11, CCI bit 4,
 * CID bit 6) and the trace ID perf assumes for CPU N (0x10 + 2 * N).
 * One address range filter (perf's --filter 'filter ...') on user space
 * becomes the ABI's ADDR_FILTER; other filters (start/stop, several
 * ranges, kernel addresses, which the ABI's 2^48 bound excludes) keep the
 * event from starting rather than trace more than asked. Options the
 * hypervisor does not offer (return stack, branch broadcast,
 * CONTEXTIDR_EL2, a cycle threshold, configurations from configfs) are not
 * applied: the data then simply lacks them. A snapshot (overwrite) AUX
 * buffer is refused.
 *
 * The data is the raw ETE packet stream, so every AUX record carries
 * PERF_AUX_FLAG_CORESIGHT_FORMAT_RAW, as TRBE's do. Each start of the event
 * on a CPU is a TRACE_ENABLE, which starts a new capture in the core's
 * hypervisor buffer (64 KiB); the stop copies all of it, page by page
 * through a bounce page whose physical address is the IPA the hypervisor
 * writes. Data that did not fit in the AUX space, and data the hypervisor
 * lost because its buffer filled, mark the record TRUNCATED; a buffer that
 * wrapped (only in wrap mode, which this module does not ask for) COLLISION.
 *
 * Buffer full while a task runs: the policy is fill and stop, with the loss
 * measured. The hypervisor's buffer fills, it stops writing and counts the
 * bytes it drops (TRACE_STATS's bytes lost); there is no interrupt, so the
 * capture waits for the event's next stop: the task's next context switch
 * (per-thread), or the end of the session (CPU-wide). That record holds the
 * first 64 KiB of trace since the start and is marked TRUNCATED; perf
 * decodes it. Each sink's stats/ directory (records, truncated, written,
 * copied, lost: counts and bytes since load) says how much was delivered
 * and how much was lost.
 *
 * Lifetime: the devices' parents are platform devices bound to this
 * module's driver, so every path perf builds through them holds a reference
 * on this module (the CoreSight core's try_module_get on the parent's
 * driver): it cannot be removed while a session uses it, and coresight.ko
 * cannot be removed while this module is loaded. On removal the PMU links
 * go first, then the sources, then the sinks.
 *
 * The sysfs interface of tracemgr.ko (/sys/kernel/tracemgr) is separate
 * and keeps working; both drive the same per-core hardware, so a sysfs
 * enable and a perf session on the same CPU reconfigure each other.
 */
#define pr_fmt(fmt) "tracemgr_cs: " fmt

#include <linux/arm-smccc.h>
#include <linux/coresight.h>
#include <linux/coresight-pmu.h>
#include <linux/cpu.h>
#include <linux/cpuhotplug.h>
#include <linux/cpumask.h>
#include <linux/device.h>
#include <linux/err.h>
#include <linux/gfp.h>
#include <linux/io.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/perf_event.h>
#include <linux/platform_device.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <asm/cputype.h>

#include "tracemgr.h"

#define TMCS_NAME "tracemgr-cs"

/*
 * Exported (GPL) by coresight.ko in 6.1 but declared only in its private
 * headers (coresight-priv.h, coresight-etm-perf.h).
 */
void coresight_set_percpu_sink(int cpu, struct coresight_device *csdev);
int etm_perf_symlink(struct coresight_device *csdev, bool link);

/* The mode a source or sink is enabled in (6.1's enum cs_mode, private). */
#define TMCS_MODE_PERF 2

/* What TRACE_IDREGS returned for one core. */
struct tmcs_ids {
	u32 idr0, idr1, idr2, idr8, authstatus, devarch, traceid;
};

/* One CPU's source and sink; the drvdata of its platform device. */
struct tmcs_cpu {
	unsigned int cpu;
	unsigned long mpidr;
	struct tmcs_ids ids;
	int ids_err;
	struct coresight_platform_data source_pdata;
	struct coresight_platform_data sink_pdata;
	struct coresight_device *source;
	struct coresight_device *sink;
	bool linked;
	/*
	 * The current perf start enabled the core (false while an address
	 * filter's object is not mapped yet: nothing to trace, nothing to
	 * copy). Only this CPU touches it, in start, stop, update order.
	 */
	bool enabled;
	/* TRACE_READ's target: one page, used by this CPU's sink only. */
	void *bounce;
	/*
	 * What this CPU's sink delivered, for its stats/ files: captures
	 * copied (AUX records), of which truncated; bytes the hypervisor
	 * wrote, bytes copied into AUX rings, and bytes lost (the hypervisor
	 * dropped them because its buffer was full, or they did not fit the
	 * AUX space). Written by this CPU only; read by anyone.
	 */
	atomic64_t records, truncated, written, copied, lost;
};

/* A perf AUX buffer (the sink configuration of one event). */
struct tmcs_buf {
	void **pages;
	int nr_pages;
};

static void (*tmcs_invoke)(const struct arm_smccc_1_2_regs *args,
			   struct arm_smccc_1_2_regs *res);
static struct platform_device *tmcs_pdevs[NR_CPUS];
static atomic64_t tmcs_lost_records = ATOMIC64_INIT(0);

static long tmcs_call(unsigned long fid, unsigned long a1, unsigned long a2,
		      unsigned long a3, unsigned long a4,
		      struct arm_smccc_1_2_regs *res)
{
	struct arm_smccc_1_2_regs args = {
		.a0 = fid, .a1 = a1, .a2 = a2, .a3 = a3, .a4 = a4,
	};

	tmcs_invoke(&args, res);
	return (long)res->a0;
}

static struct tmcs_cpu *tmcs_of(struct coresight_device *csdev)
{
	return dev_get_drvdata(csdev->dev.parent);
}

/* The calls act on the calling core: perf runs source and sink ops there. */
static unsigned long tmcs_self(void)
{
	return read_cpuid_mpidr() & MPIDR_HWID_BITMASK;
}

/* perf's event config -> the ABI's config word; 0 if nothing is traced. */
static u64 tmcs_config(struct perf_event *event)
{
	u64 opts = event->attr.config, config = 0;

	if (!event->attr.exclude_user)
		config |= TRACEMGR_CONFIG_EL0;
	if (!event->attr.exclude_kernel)
		config |= TRACEMGR_CONFIG_EL1;
	if (!config)
		return 0;
	if (opts & BIT(ETM_OPT_TS))
		config |= TRACEMGR_CONFIG_TIMESTAMPS;
	if (opts & BIT(ETM_OPT_CYCACC))
		config |= TRACEMGR_CONFIG_CYCLES;
	if (opts & BIT(ETM_OPT_CTXTID))
		config |= TRACEMGR_CONFIG_CONTEXT_ID;
	return config;
}

/*
 * The event's address filters as the ABI's filter: 0 for none; 1 and
 * [start, end) (rounded out to whole instructions) for a single range
 * filter ("filter" in perf's --filter) that perf has resolved to an address
 * below 2^48 (user space); -EOPNOTSUPP for anything else (start/stop
 * filters, several ranges, kernel addresses), which keeps the event from
 * starting; -ENOENT for a range whose object is not mapped (yet): nothing
 * is traced until perf resolves it and restarts the event.
 */
static int tmcs_filter(struct perf_event *event, u64 *start, u64 *end)
{
	struct perf_addr_filters_head *head = perf_event_addr_filters(event);
	struct perf_addr_filter *f;
	unsigned long flags;
	int n = 0, ret = 0;

	raw_spin_lock_irqsave(&head->lock, flags);
	list_for_each_entry(f, &head->list, entry) {
		if (f->action != PERF_ADDR_FILTER_ACTION_FILTER || n++) {
			ret = -EOPNOTSUPP;
			break;
		}
	}
	if (!ret && n) {
		if (!event->addr_filter_ranges || !event->addr_filter_ranges[0].size) {
			ret = -ENOENT;
		} else {
			u64 s = event->addr_filter_ranges[0].start;
			u64 e = s + event->addr_filter_ranges[0].size;

			*start = ALIGN_DOWN(s, TRACEMGR_FILTER_ALIGN);
			*end = ALIGN(e, TRACEMGR_FILTER_ALIGN);
			ret = *end <= TRACEMGR_FILTER_END_MAX && *start < *end ? 1 : -EOPNOTSUPP;
		}
	}
	raw_spin_unlock_irqrestore(&head->lock, flags);
	return ret;
}

/* Source operations: on the traced CPU, from perf's event start/stop. */

static int tmcs_source_cpu_id(struct coresight_device *csdev)
{
	return tmcs_of(csdev)->cpu;
}

static int tmcs_source_trace_id(struct coresight_device *csdev)
{
	return tmcs_of(csdev)->ids.traceid;
}

static int tmcs_source_enable(struct coresight_device *csdev,
			      struct perf_event *event, u32 mode)
{
	struct tmcs_cpu *tc = tmcs_of(csdev);
	struct arm_smccc_1_2_regs res;
	u64 config, start = 0, end = 0;
	long err;
	int filter;

	/* The sysfs mode is tracemgr.ko's (/sys/kernel/tracemgr). */
	if (mode != TMCS_MODE_PERF || !event)
		return -EINVAL;
	if (WARN_ON_ONCE(smp_processor_id() != tc->cpu))
		return -EINVAL;
	config = tmcs_config(event);
	if (!config)
		return -EINVAL;
	tc->enabled = false;
	filter = tmcs_filter(event, &start, &end);
	if (filter == -ENOENT)
		return 0;
	if (filter < 0) {
		pr_warn_ratelimited("cpu%u: address filters not supported as given (%d): not tracing\n",
				    tc->cpu, filter);
		return filter;
	}
	if (filter)
		config |= TRACEMGR_CONFIG_ADDR_FILTER;
	err = tmcs_call(TRACEMGR_TRACE_ENABLE, tmcs_self(), config, start, end, &res);
	if (err) {
		pr_warn_ratelimited("cpu%u: TRACE_ENABLE(%#llx): error %ld\n",
				    tc->cpu, config, err);
		return -EIO;
	}
	tc->enabled = true;
	return 0;
}

static void tmcs_source_disable(struct coresight_device *csdev,
				struct perf_event *event)
{
	struct tmcs_cpu *tc = tmcs_of(csdev);
	struct arm_smccc_1_2_regs res;
	long err;

	if (!tc->enabled)
		return;
	err = tmcs_call(TRACEMGR_TRACE_DISABLE, tmcs_self(), 0, 0, 0, &res);
	if (err)
		pr_warn_ratelimited("cpu%u: TRACE_DISABLE: error %ld\n", tc->cpu, err);
}

static const struct coresight_ops_source tmcs_source_ops = {
	.cpu_id = tmcs_source_cpu_id,
	.trace_id = tmcs_source_trace_id,
	.enable = tmcs_source_enable,
	.disable = tmcs_source_disable,
};

static const struct coresight_ops tmcs_source_cs_ops = {
	.source_ops = &tmcs_source_ops,
};

/* Sink operations. */

static int tmcs_sink_enable(struct coresight_device *csdev, u32 mode, void *data)
{
	return mode == TMCS_MODE_PERF ? 0 : -EINVAL;
}

static int tmcs_sink_disable(struct coresight_device *csdev)
{
	return 0;
}

/* From perf's mmap of the AUX area, in process context. */
static void *tmcs_alloc_buffer(struct coresight_device *csdev,
			       struct perf_event *event, void **pages,
			       int nr_pages, bool overwrite)
{
	struct tmcs_buf *buf;

	if (overwrite || nr_pages <= 0)
		return NULL;
	buf = kzalloc(sizeof(*buf), GFP_KERNEL);
	if (!buf)
		return NULL;
	buf->pages = pages;
	buf->nr_pages = nr_pages;
	return buf;
}

static void tmcs_free_buffer(void *config)
{
	kfree(config);
}

/*
 * From perf's event stop on this CPU, after the source's disable (the
 * core's capture is complete): copies the capture into the AUX ring at
 * handle->head, as much as handle->size allows, and returns how much.
 */
static unsigned long tmcs_update_buffer(struct coresight_device *csdev,
					struct perf_output_handle *handle,
					void *sink_config)
{
	struct tmcs_cpu *tc = tmcs_of(csdev);
	struct tmcs_buf *buf = sink_config;
	unsigned long ring = (unsigned long)buf->nr_pages << PAGE_SHIFT;
	unsigned long mpidr = tmcs_self();
	struct arm_smccc_1_2_regs res;
	unsigned long want, done = 0;
	u64 avail, lost, wraps, flags, written;
	bool truncated;

	perf_aux_output_flag(handle, PERF_AUX_FLAG_CORESIGHT_FORMAT_RAW);
	if (!tc->enabled)
		return 0;
	tc->enabled = false;
	if (tmcs_call(TRACEMGR_TRACE_STATS, mpidr, 0, 0, 0, &res)) {
		perf_aux_output_flag(handle, PERF_AUX_FLAG_TRUNCATED);
		return 0;
	}
	written = res.a1;
	wraps = res.a2;
	lost = res.a3;
	flags = res.a4;
	avail = res.a5;
	want = min_t(u64, avail, handle->size);
	truncated = avail > handle->size || lost || (flags & TRACEMGR_STATS_FULL);

	while (done < want) {
		unsigned long at = (handle->head + done) % ring;
		unsigned long in_page = at & ~PAGE_MASK;
		unsigned long n = min(PAGE_SIZE - in_page, want - done);
		unsigned long copied;

		if (tmcs_call(TRACEMGR_TRACE_READ, mpidr, done,
			      virt_to_phys(tc->bounce), n, &res))
			break;
		copied = min_t(unsigned long, res.a1, n);
		if (!copied)
			break;
		memcpy((char *)buf->pages[at >> PAGE_SHIFT] + in_page,
		       tc->bounce, copied);
		done += copied;
	}
	if (done < want)
		truncated = true;

	atomic64_inc(&tc->records);
	atomic64_add(written, &tc->written);
	atomic64_add(done, &tc->copied);
	atomic64_add(lost + (avail - done), &tc->lost);
	if (truncated) {
		atomic64_inc(&tc->truncated);
		atomic64_inc(&tmcs_lost_records);
		perf_aux_output_flag(handle, PERF_AUX_FLAG_TRUNCATED);
	}
	if (wraps)
		perf_aux_output_flag(handle, PERF_AUX_FLAG_COLLISION);
	return done;
}

static const struct coresight_ops_sink tmcs_sink_ops = {
	.enable = tmcs_sink_enable,
	.disable = tmcs_sink_disable,
	.alloc_buffer = tmcs_alloc_buffer,
	.free_buffer = tmcs_free_buffer,
	.update_buffer = tmcs_update_buffer,
};

static const struct coresight_ops tmcs_sink_cs_ops = {
	.sink_ops = &tmcs_sink_ops,
};

/* The source's ID register files (perf reads them through cs_etm/cpuN). */

/*
 * A read-only file of a CPU's device: `fmt` of `value`, an expression in
 * `tc` (the CPU's struct tmcs_cpu).
 */
#define TMCS_ATTR(name, fmt, value)					\
static ssize_t name##_show(struct device *dev,				\
			   struct device_attribute *attr, char *buf)	\
{									\
	struct tmcs_cpu *tc = dev_get_drvdata(dev->parent);		\
									\
	return sysfs_emit(buf, fmt "\n", value);			\
}									\
static DEVICE_ATTR_RO(name)

#define TMCS_ID_ATTR(name, field) TMCS_ATTR(name, "0x%x", tc->ids.field)

TMCS_ID_ATTR(trcidr0, idr0);
TMCS_ID_ATTR(trcidr1, idr1);
TMCS_ID_ATTR(trcidr2, idr2);
TMCS_ID_ATTR(trcidr8, idr8);
TMCS_ID_ATTR(trcauthstatus, authstatus);
TMCS_ID_ATTR(trcdevarch, devarch);
TMCS_ID_ATTR(trctraceid, traceid);

static struct attribute *tmcs_trcidr_attrs[] = {
	&dev_attr_trcidr0.attr,
	&dev_attr_trcidr1.attr,
	&dev_attr_trcidr2.attr,
	&dev_attr_trcidr8.attr,
	NULL,
};

static struct attribute *tmcs_mgmt_attrs[] = {
	&dev_attr_trcauthstatus.attr,
	&dev_attr_trcdevarch.attr,
	&dev_attr_trctraceid.attr,
	NULL,
};

static const struct attribute_group tmcs_trcidr_group = {
	.name = "trcidr",
	.attrs = tmcs_trcidr_attrs,
};

static const struct attribute_group tmcs_mgmt_group = {
	.name = "mgmt",
	.attrs = tmcs_mgmt_attrs,
};

static const struct attribute_group *tmcs_source_groups[] = {
	&tmcs_trcidr_group,
	&tmcs_mgmt_group,
	NULL,
};

/* The sink's stats/ files: what update_buffer delivered so far. */

#define TMCS_STAT_ATTR(name) \
	TMCS_ATTR(name, "%lld", (long long)atomic64_read(&tc->name))

TMCS_STAT_ATTR(records);
TMCS_STAT_ATTR(truncated);
TMCS_STAT_ATTR(written);
TMCS_STAT_ATTR(copied);
TMCS_STAT_ATTR(lost);

static struct attribute *tmcs_stats_attrs[] = {
	&dev_attr_records.attr,
	&dev_attr_truncated.attr,
	&dev_attr_written.attr,
	&dev_attr_copied.attr,
	&dev_attr_lost.attr,
	NULL,
};

static const struct attribute_group tmcs_stats_group = {
	.name = "stats",
	.attrs = tmcs_stats_attrs,
};

static const struct attribute_group *tmcs_sink_groups[] = {
	&tmcs_stats_group,
	NULL,
};

/* Runs on the CPU itself (an IPI): its MPIDR and its unit's ID registers. */
static void tmcs_read_ids(void *data)
{
	struct tmcs_cpu *tc = data;
	struct arm_smccc_1_2_regs res;
	long err;

	tc->mpidr = tmcs_self();
	err = tmcs_call(TRACEMGR_TRACE_IDREGS, tc->mpidr, 0, 0, 0, &res);
	if (err) {
		tc->ids_err = err == TRACEMGR_NOT_SUPPORTED ? -EOPNOTSUPP : -EIO;
		return;
	}
	tc->ids.idr0 = tracemgr_idregs_lo(res.a1);
	tc->ids.idr1 = tracemgr_idregs_hi(res.a1);
	tc->ids.idr2 = tracemgr_idregs_lo(res.a2);
	tc->ids.idr8 = tracemgr_idregs_hi(res.a2);
	tc->ids.authstatus = tracemgr_idregs_lo(res.a3);
	tc->ids.devarch = tracemgr_idregs_hi(res.a3);
	tc->ids.traceid = tracemgr_idregs_lo(res.a4);
}

static int tmcs_probe(struct platform_device *pdev)
{
	struct device *dev = &pdev->dev;
	struct coresight_desc desc = { 0 };
	struct tmcs_cpu *tc;
	int ret;

	if (pdev->id < 0 || pdev->id >= nr_cpu_ids)
		return -EINVAL;
	tc = devm_kzalloc(dev, sizeof(*tc), GFP_KERNEL);
	if (!tc)
		return -ENOMEM;
	tc->cpu = pdev->id;
	tc->bounce = (void *)devm_get_free_pages(dev, GFP_KERNEL, 0);
	if (!tc->bounce)
		return -ENOMEM;
	ret = smp_call_function_single(tc->cpu, tmcs_read_ids, tc, 1);
	if (!ret)
		ret = tc->ids_err;
	if (ret) {
		dev_err(dev, "cpu%u: TRACE_IDREGS failed (%d)\n", tc->cpu, ret);
		return ret;
	}
	if (tc->ids.traceid != coresight_get_trace_id(tc->cpu))
		dev_warn(dev, "cpu%u: trace ID %#x, perf assumes %#x: perf cannot decode this CPU\n",
			 tc->cpu, tc->ids.traceid, coresight_get_trace_id(tc->cpu));
	platform_set_drvdata(pdev, tc);

	desc.type = CORESIGHT_DEV_TYPE_SINK;
	desc.subtype.sink_subtype = CORESIGHT_DEV_SUBTYPE_SINK_PERCPU_SYSMEM;
	desc.ops = &tmcs_sink_cs_ops;
	desc.pdata = &tc->sink_pdata;
	desc.dev = dev;
	desc.groups = tmcs_sink_groups;
	desc.name = devm_kasprintf(dev, GFP_KERNEL, "tracemgr_sink%u", tc->cpu);
	if (!desc.name)
		return -ENOMEM;
	tc->sink = coresight_register(&desc);
	if (IS_ERR(tc->sink))
		return PTR_ERR(tc->sink);
	coresight_set_percpu_sink(tc->cpu, tc->sink);

	memset(&desc, 0, sizeof(desc));
	desc.type = CORESIGHT_DEV_TYPE_SOURCE;
	desc.subtype.source_subtype = CORESIGHT_DEV_SUBTYPE_SOURCE_PROC;
	desc.ops = &tmcs_source_cs_ops;
	desc.pdata = &tc->source_pdata;
	desc.dev = dev;
	desc.groups = tmcs_source_groups;
	desc.name = devm_kasprintf(dev, GFP_KERNEL, "tracemgr_ete%u", tc->cpu);
	if (!desc.name) {
		ret = -ENOMEM;
		goto err_sink;
	}
	tc->source = coresight_register(&desc);
	if (IS_ERR(tc->source)) {
		ret = PTR_ERR(tc->source);
		goto err_sink;
	}
	ret = etm_perf_symlink(tc->source, true);
	if (ret) {
		dev_err(dev, "cpu%u: cs_etm link failed (%d)\n", tc->cpu, ret);
		goto err_source;
	}
	tc->linked = true;
	return 0;

err_source:
	coresight_unregister(tc->source);
err_sink:
	coresight_set_percpu_sink(tc->cpu, NULL);
	coresight_unregister(tc->sink);
	return ret;
}

static int tmcs_remove(struct platform_device *pdev)
{
	struct tmcs_cpu *tc = platform_get_drvdata(pdev);

	if (tc->linked)
		etm_perf_symlink(tc->source, false);
	coresight_unregister(tc->source);
	coresight_set_percpu_sink(tc->cpu, NULL);
	coresight_unregister(tc->sink);
	return 0;
}

static struct platform_driver tmcs_driver = {
	.probe = tmcs_probe,
	.remove = tmcs_remove,
	.driver = {
		.name = TMCS_NAME,
		.suppress_bind_attrs = true,
	},
};

static int tmcs_probe_hyp(void)
{
	struct arm_smccc_1_2_regs res;

	if (arm_smccc_get_version() < ARM_SMCCC_VERSION_1_1)
		return -ENODEV;
	switch (arm_smccc_1_1_get_conduit()) {
	case SMCCC_CONDUIT_HVC:
		tmcs_invoke = arm_smccc_1_2_hvc;
		break;
	case SMCCC_CONDUIT_SMC:
		tmcs_invoke = arm_smccc_1_2_smc;
		break;
	default:
		return -ENODEV;
	}
	tmcs_call(TRACEMGR_CALL_UID, 0, 0, 0, 0, &res);
	if ((u32)res.a0 != TRACEMGR_UID_0 || (u32)res.a1 != TRACEMGR_UID_1 ||
	    (u32)res.a2 != TRACEMGR_UID_2 || (u32)res.a3 != TRACEMGR_UID_3) {
		pr_info("no trace-manager hypervisor\n");
		return -ENODEV;
	}
	tmcs_call(TRACEMGR_FEATURES, TRACEMGR_TRACE_IDREGS, 0, 0, 0, &res);
	if (res.a0) {
		pr_info("the hypervisor has no TRACE_IDREGS (ABI 1.2 needed)\n");
		return -ENODEV;
	}
	return 0;
}

static void tmcs_remove_devices(void)
{
	unsigned int cpu;

	for (cpu = 0; cpu < NR_CPUS; cpu++) {
		if (tmcs_pdevs[cpu])
			platform_device_unregister(tmcs_pdevs[cpu]);
		tmcs_pdevs[cpu] = NULL;
	}
}

/*
 * Gives `cpu` its source and sink if it has none yet. From CPU hotplug's
 * online step on the CPU itself (CPUHP_AP_ONLINE_DYN, process context), for
 * every CPU online at load and every CPU onlined later. A CPU that goes
 * offline keeps its devices: perf takes its events off it as it goes, and
 * they serve it again when it comes back. A failure is logged (the probe
 * says why) and leaves the CPU without a source, which perf then skips; it
 * never keeps the CPU from coming online.
 */
static int tmcs_cpu_online(unsigned int cpu)
{
	struct platform_device *pdev;

	if (cpu >= NR_CPUS || tmcs_pdevs[cpu])
		return 0;
	pdev = platform_device_register_simple(TMCS_NAME, cpu, NULL, 0);
	if (IS_ERR(pdev)) {
		pr_err("cpu%u: no device (%ld)\n", cpu, PTR_ERR(pdev));
		return 0;
	}
	tmcs_pdevs[cpu] = pdev;
	return 0;
}

static enum cpuhp_state tmcs_hp_state;

static int __init tmcs_init(void)
{
	unsigned int cpu, bound = 0, online = 0;
	int ret;

	ret = tmcs_probe_hyp();
	if (ret)
		return ret;
	ret = platform_driver_register(&tmcs_driver);
	if (ret)
		return ret;
	ret = cpuhp_setup_state(CPUHP_AP_ONLINE_DYN, "hwtracing/tracemgr_cs:online",
				tmcs_cpu_online, NULL);
	if (ret < 0) {
		platform_driver_unregister(&tmcs_driver);
		return ret;
	}
	tmcs_hp_state = ret;
	/* Every CPU online now must have its devices. */
	cpus_read_lock();
	for_each_online_cpu(cpu) {
		online++;
		if (tmcs_pdevs[cpu] && platform_get_drvdata(tmcs_pdevs[cpu]))
			bound++;
	}
	cpus_read_unlock();
	if (bound != online) {
		cpuhp_remove_state_nocalls(tmcs_hp_state);
		tmcs_remove_devices();
		platform_driver_unregister(&tmcs_driver);
		return -ENODEV;
	}
	pr_info("%u CPUs as CoreSight sources and per-CPU sinks of cs_etm\n", bound);
	return 0;
}

static void __exit tmcs_exit(void)
{
	cpuhp_remove_state_nocalls(tmcs_hp_state);
	tmcs_remove_devices();
	platform_driver_unregister(&tmcs_driver);
	if (atomic64_read(&tmcs_lost_records))
		pr_info("%lld AUX records were truncated\n",
			(long long)atomic64_read(&tmcs_lost_records));
}

module_init(tmcs_init);
module_exit(tmcs_exit);

MODULE_DESCRIPTION("The trace-manager hypervisor's trace units for perf's cs_etm PMU");
MODULE_LICENSE("GPL");
MODULE_SOFTDEP("pre: coresight");
