/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * tracemgr.h - the trace-manager hypervisor's guest ABI, for guest kernels
 * written in C.
 *
 * The hypervisor's vendor-specific hypervisor service (SMCCC owner 6). All
 * calls are SMCCC fast calls issued with "hvc #0": function ID in x0,
 * arguments in x1.., results in x0... The authoritative definition, with the
 * full semantics, is the Rust crate guest-api (its ABI.md, codecs in src/);
 * a host test checks every value below against it.
 *
 *   TRACE_ENABLE  in:  x1 = target MPIDR, x2 = config word,
 *                      x3 = filter start, x4 = filter end
 *                      (x3/x4 read only with TRACEMGR_CONFIG_ADDR_FILTER)
 *                 out: x0 = 0 or error, x1 = target's generation after
 *   TRACE_DISABLE in:  x1 = target MPIDR
 *                 out: x0 = 0 or error, x1 = target's generation after
 *   TRACE_STATUS  in:  x1 = target MPIDR
 *                 out: x0 = 0 or error, x1 = state word, x2 = generation,
 *                      x3 = active config word (0 when disabled),
 *                      x4/x5 = active filter start/end (0 when none)
 *   TRACE_READ    in:  x1 = target MPIDR, x2 = offset in the target's trace
 *                      data, x3 = guest buffer IPA (READ_ALIGN aligned),
 *                      x4 = buffer size (1..READ_MAX)
 *                 out: x0 = 0 or error, x1 = bytes copied, x2 = next offset,
 *                      x3 = bytes remaining after it (loop until 0)
 *   TRACE_STATS   in:  x1 = target MPIDR
 *                 out: x0 = 0 or error, x1 = bytes written, x2 = wraps,
 *                      x3 = bytes lost, x4 = flags (STATS_FULL, STATS_ERROR,
 *                      STATS_INSTRUCTIONS, EC in STATS_EC_MASK), x5 = bytes
 *                      TRACE_READ can return
 *   TRACE_IDREGS  in:  x1 = target MPIDR
 *                 out: x0 = 0 or error, x1 = TRCIDR0 | TRCIDR1 << 32,
 *                      x2 = TRCIDR2 | TRCIDR8 << 32,
 *                      x3 = TRCAUTHSTATUS | TRCDEVARCH << 32,
 *                      x4 = TRCTRACEIDR (the trace ID EL2 programs:
 *                      TRACE_ID_BASE + TRACE_ID_STRIDE * n for the n-th
 *                      cpu node, CoreSight's legacy per-CPU trace ID)
 *
 * Trace data is the raw ETE packet stream the core's TRBE wrote (no
 * formatter frames), oldest byte at offset 0; a TRACE_ENABLE starts a new
 * capture. TRACE_READ refuses (INVALID_PARAMETER) a buffer that is not
 * inside the guest's RAM, a misaligned IPA, a size of 0 or above READ_MAX,
 * and an offset past the end of the data.
 *
 * Invariant: mode ENABLED <=> hardware TRACING, on every core.
 * TRACE_ENABLE on an enabled core reconfigures it (one commit) and always
 * bumps the generation; TRACE_DISABLE on a disabled core succeeds without
 * bumping it. Generations start at 0 and survive CPU_OFF/CPU_ON.
 */
#ifndef TRACEMGR_H
#define TRACEMGR_H

#ifdef __KERNEL__
#include <linux/types.h>
typedef u64 tracemgr_u64;
#else
#include <stdint.h>
typedef uint64_t tracemgr_u64;
#endif

/* Service identity: CALL_UID returns these in w0..w3
 * (UUID 08f433e7-b7bf-4fc8-b7aa-ccd84170f67c). */
#define TRACEMGR_UID_0 (0xe733f408U)
#define TRACEMGR_UID_1 (0xc84fbfb7U)
#define TRACEMGR_UID_2 (0xd8ccaab7U)
#define TRACEMGR_UID_3 (0x7cf67041U)

/* Service queries (SMC32/HVC32 fast calls). */
#define TRACEMGR_CALL_COUNT (0x8600ff00U)
#define TRACEMGR_CALL_UID (0x8600ff01U)
#define TRACEMGR_REVISION (0x8600ff03U)

/* Service calls (SMC64/HVC64 fast calls). */
#define TRACEMGR_ABI_VERSION (0xc6000000U)
#define TRACEMGR_FEATURES (0xc6000001U)
#define TRACEMGR_PING (0xc6000002U)

/* Trace calls. */
#define TRACEMGR_TRACE_ENABLE (0xc6000010U)
#define TRACEMGR_TRACE_DISABLE (0xc6000011U)
#define TRACEMGR_TRACE_STATUS (0xc6000012U)
#define TRACEMGR_TRACE_READ (0xc6000013U)
#define TRACEMGR_TRACE_STATS (0xc6000014U)
#define TRACEMGR_TRACE_IDREGS (0xc6000015U)

/* Trace IDs (TRCTRACEIDR): BASE + STRIDE * n for the n-th cpu node. */
#define TRACEMGR_TRACE_ID_BASE (0x10ULL)
#define TRACEMGR_TRACE_ID_STRIDE (2ULL)

/* TRACE_READ limits and TRACE_STATS flags (x4). */
#define TRACEMGR_READ_MAX (0x100000ULL)
#define TRACEMGR_READ_ALIGN (8ULL)
#define TRACEMGR_STATS_FULL (0x1ULL)
#define TRACEMGR_STATS_ERROR (0x2ULL)
#define TRACEMGR_STATS_INSTRUCTIONS (0x4ULL)
#define TRACEMGR_STATS_EC_SHIFT (8)
#define TRACEMGR_STATS_EC_MASK (0x3f00ULL)

/* ABI revision: REVISION returns major in x0 and minor in x1;
 * ABI_VERSION returns (major << 16) | minor. */
#define TRACEMGR_ABI_MAJOR (1ULL)
#define TRACEMGR_ABI_MINOR (2ULL)
#define TRACEMGR_ABI_VERSION_VALUE (0x10002ULL)

/* Config word (x2 of TRACE_ENABLE, x3 of TRACE_STATUS). EL0 or EL1 is
 * required; EL2 is never traced. Any other bit is INVALID_PARAMETER. */
#define TRACEMGR_CONFIG_EL0 (0x1ULL)
#define TRACEMGR_CONFIG_EL1 (0x2ULL)
#define TRACEMGR_CONFIG_TIMESTAMPS (0x4ULL)
#define TRACEMGR_CONFIG_CYCLES (0x8ULL)
#define TRACEMGR_CONFIG_CONTEXT_ID (0x10ULL)
#define TRACEMGR_CONFIG_ADDR_FILTER (0x20ULL)
/* The buffer wraps, keeping the newest data (else it fills and stops). */
#define TRACEMGR_CONFIG_WRAP (0x40ULL)
#define TRACEMGR_CONFIG_ALL (0x7fULL)

/* Address filter [start, end): start < end, both multiples of FILTER_ALIGN,
 * end <= FILTER_END_MAX (2^48). */
#define TRACEMGR_FILTER_ALIGN (4ULL)
#define TRACEMGR_FILTER_END_MAX (0x1000000000000ULL)

/* State word (x1 of TRACE_STATUS): masks are in place, values are field
 * values (after the shift). Bits [23:17] and [63:32] are zero. */
#define TRACEMGR_STATE_MODE_SHIFT (0)
#define TRACEMGR_STATE_MODE_MASK (0xffULL)
#define TRACEMGR_MODE_DISABLED (0ULL)
#define TRACEMGR_MODE_ENABLED (1ULL)
#define TRACEMGR_STATE_HW_SHIFT (8)
#define TRACEMGR_STATE_HW_MASK (0xff00ULL)
#define TRACEMGR_HW_STOPPED (0ULL)
#define TRACEMGR_HW_TRACING (1ULL)
#define TRACEMGR_STATE_POWERED (0x10000ULL)
#define TRACEMGR_STATE_BACKEND_SHIFT (24)
#define TRACEMGR_STATE_BACKEND_MASK (0xff000000ULL)
#define TRACEMGR_BACKEND_MODEL (0ULL)
#define TRACEMGR_BACKEND_ETE_TRBE (1ULL)
#define TRACEMGR_STATE_RESERVED_MASK (0xffffffff00fe0000ULL)

/* Return codes in x0. DENIED is reserved (not produced yet). */
#define TRACEMGR_SUCCESS (0L)
#define TRACEMGR_NOT_SUPPORTED (-1L)
#define TRACEMGR_INVALID_PARAMETER (-3L)
#define TRACEMGR_DENIED (-4L)
#define TRACEMGR_TARGET_OFF (-5L)
#define TRACEMGR_HARDWARE_FAULT (-6L)

/* State word decoding. */
static inline unsigned int tracemgr_state_mode(tracemgr_u64 state)
{
	return (unsigned int)((state & TRACEMGR_STATE_MODE_MASK) >>
			      TRACEMGR_STATE_MODE_SHIFT);
}

static inline unsigned int tracemgr_state_hw(tracemgr_u64 state)
{
	return (unsigned int)((state & TRACEMGR_STATE_HW_MASK) >>
			      TRACEMGR_STATE_HW_SHIFT);
}

static inline int tracemgr_state_powered(tracemgr_u64 state)
{
	return (state & TRACEMGR_STATE_POWERED) != 0;
}

static inline unsigned int tracemgr_state_backend(tracemgr_u64 state)
{
	return (unsigned int)((state & TRACEMGR_STATE_BACKEND_MASK) >>
			      TRACEMGR_STATE_BACKEND_SHIFT);
}

/* 1 if no reserved bit is set and every field holds a defined value. */
static inline int tracemgr_state_valid(tracemgr_u64 state)
{
	return (state & TRACEMGR_STATE_RESERVED_MASK) == 0 &&
	       tracemgr_state_mode(state) <= TRACEMGR_MODE_ENABLED &&
	       tracemgr_state_hw(state) <= TRACEMGR_HW_TRACING &&
	       tracemgr_state_backend(state) <= TRACEMGR_BACKEND_ETE_TRBE;
}

/* TRACE_IDREGS: the register in bits [31:0] / [63:32] of a result. */
static inline unsigned int tracemgr_idregs_lo(tracemgr_u64 x)
{
	return (unsigned int)(x & 0xffffffffULL);
}

static inline unsigned int tracemgr_idregs_hi(tracemgr_u64 x)
{
	return (unsigned int)(x >> 32);
}

/* The invariant: mode ENABLED <=> hardware TRACING. */
static inline int tracemgr_state_consistent(tracemgr_u64 state)
{
	return (tracemgr_state_mode(state) == TRACEMGR_MODE_ENABLED) ==
	       (tracemgr_state_hw(state) == TRACEMGR_HW_TRACING);
}

#endif /* TRACEMGR_H */
