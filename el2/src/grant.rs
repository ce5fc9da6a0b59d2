//! What of the machine the guest is granted: the grant policy.
//!
//! The hypervisor decides, from its own device tree and the table below,
//! which devices a guest may use and how. A device is either
//!
//! - **emulated**: EL2 traps every access and plays the device (the GIC
//!   distributor and redistributors, `gic_mmio`; the console PL011,
//!   `vuart`). Its frames are never in the guest's stage 2;
//! - **passed through**: its 4 KiB pages are mapped into the guest's stage
//!   2 as Device memory. Only devices that cannot reach memory on their own
//!   (no DMA) and that own whole pages qualify;
//! - or **not granted**: everything else. An access faults to EL2, which
//!   injects a synchronous external abort, as for RAM outside the guest.
//!
//! DMA-capable devices (fw_cfg, virtio-mmio, PCIe, the GIC ITS) are never
//! passed through: QEMU serves their DMA on physical addresses, outside any
//! stage-2 translation, so mapping one hands the guest a write primitive
//! into EL2's memory. QEMU virt's SMMUv3 option confines PCIe only, and the
//! hypervisor does not program it; without an IOMMU in front of a device,
//! there is no safe way to pass it through.
//!
//! The guest's device tree must describe only granted devices, at the
//! addresses the hypervisor's own tree gives them (`dtb::validate_guest`
//! refuses any other tree, with the device it names), so what the guest is
//! told and what stage 2 lets it touch are the same thing.
//!
//! The policy is the same on every platform; what differs is what each
//! machine has. On QEMU virt that is: GIC and PL011 emulated, the PL031
//! RTC passed through; flash, fw_cfg, the PL061 GPIO, the 32 virtio-mmio
//! transports, PCIe and the ITS never. On FVP Base: GIC (distributor and
//! redistributors only) and UART0 emulated, the PL031 RTC passed through;
//! the GICv2-compatibility frames (GICC/GICH/GICV, `reg` entries 2 to 4 of
//! the GIC node), the power controller, the system registers, the SP805
//! watchdog, the other UARTs, virtio and Ethernet never.

use core::fmt;

use crate::platform::Range;

/// How a granted device reaches the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// EL2 traps and emulates every access; nothing is mapped.
    Emulated,
    /// Its pages are mapped into stage 2 as Device memory.
    PassThrough,
}

/// The granted kinds of memory-mapped device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// GICv3 distributor and redistributors (`arm,gic-v3`).
    Gic,
    /// The console PL011 (`arm,pl011`), the one EL2 itself logs to.
    Uart,
    /// PL031 real-time clock (`arm,pl031`).
    Rtc,
}

/// One line of the policy: a `compatible` string and what it gets.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// The device tree `compatible` string that names the device.
    pub compatible: &'static str,
    /// Which device it is.
    pub device: Device,
    /// How the guest reaches it.
    pub access: Access,
    /// Why, for the documentation and the boot log.
    pub why: &'static str,
}

/// The memory-mapped devices a guest may be granted. Anything with a `reg`
/// in the CPU's address space that is not here is not granted.
pub const POLICY: [Rule; 3] = [
    Rule {
        compatible: "arm,gic-v3",
        device: Device::Gic,
        access: Access::Emulated,
        why: "distributor and redistributors emulated by EL2, which keeps its own SGI and PPIs",
    },
    Rule {
        compatible: "arm,pl011",
        device: Device::Uart,
        access: Access::Emulated,
        why: "the console EL2 logs to: emulated, guest lines forwarded whole",
    },
    Rule {
        compatible: "arm,pl031",
        device: Device::Rtc,
        access: Access::PassThrough,
        why: "no DMA, a 4 KiB page of its own",
    },
];

/// Devices that are never granted, and why: the refusal message names the
/// reason when a guest tree describes one of them.
pub const NEVER: [(&str, &str); 13] = [
    (
        "qemu,fw-cfg-mmio",
        "its DMA interface writes any physical address, EL2's included",
    ),
    (
        "virtio,mmio",
        "a DMA-capable transport, and no IOMMU confines it",
    ),
    (
        "pci-host-ecam-generic",
        "PCIe devices are DMA-capable, and no IOMMU confines them",
    ),
    (
        "arm,gic-v3-its",
        "the ITS reads its tables from memory by DMA, and the hypervisor offers no LPIs",
    ),
    ("cfi-flash", "the machine's writable firmware flash"),
    ("arm,pl061", "the machine's GPIO (QEMU virt's power button)"),
    ("arm,sp805", "the watchdog resets the machine"),
    ("arm,vexpress-sysreg", "the platform's system registers"),
    ("arm,vexpress-sysctl", "the platform's system controller"),
    ("arm,sp810", "the platform's system controller"),
    (
        "arm,embedded-trace-extension",
        "the trace unit is EL2's: guests ask for trace through the hypervisor's calls",
    ),
    (
        "arm,trbe",
        "the trace buffer is EL2's: guests ask for trace through the hypervisor's calls",
    ),
    (
        "arm,coresight-etm4x",
        "the trace unit is EL2's: guests ask for trace through the hypervisor's calls",
    ),
];

/// The rule for a node's `compatible` list (NUL-separated strings), if any
/// entry of it is granted.
pub fn rule_for(compatible: &[u8]) -> Option<&'static Rule> {
    compatible
        .split(|&b| b == 0)
        .find_map(|c| POLICY.iter().find(|r| r.compatible.as_bytes() == c))
}

/// Why a device is never granted, if its `compatible` list names one that
/// [`NEVER`] lists.
pub fn never_reason(compatible: &[u8]) -> Option<&'static str> {
    compatible.split(|&b| b == 0).find_map(|c| {
        NEVER
            .iter()
            .find(|(name, _)| name.as_bytes() == c)
            .map(|&(_, why)| why)
    })
}

/// Whether a `compatible` list names trace hardware, which is EL2's even
/// when the node has no `reg` (system-register trace units).
pub fn is_trace_hardware(compatible: &[u8]) -> bool {
    compatible.split(|&b| b == 0).any(|c| {
        c == b"arm,embedded-trace-extension" || c == b"arm,trbe" || c.starts_with(b"arm,coresight-")
    })
}

/// Most granted regions one machine has.
pub const MAX_REGIONS: usize = 8;

/// A granted region of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Which device.
    pub device: Device,
    /// How the guest reaches it.
    pub access: Access,
    /// Its registers, as the hypervisor's own tree gives them.
    pub range: Range,
}

/// A region could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// More than [`MAX_REGIONS`].
    TooMany,
    /// A passed-through region must be whole 4 KiB pages, or stage 2 would
    /// hand the guest part of a neighbour.
    NotPageAligned(Range),
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooMany => write!(f, "more than {MAX_REGIONS} granted regions"),
            Self::NotPageAligned(r) => {
                write!(f, "passed-through region {r} is not whole 4 KiB pages")
            }
        }
    }
}

/// The machine's granted regions, from the hypervisor's own device tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    regions: [Option<Region>; MAX_REGIONS],
}

impl Default for Grant {
    fn default() -> Self {
        Self::new()
    }
}

impl Grant {
    /// Nothing granted.
    pub const fn new() -> Grant {
        Grant {
            regions: [None; MAX_REGIONS],
        }
    }

    /// Adds a region.
    pub fn add(&mut self, device: Device, access: Access, range: Range) -> Result<(), GrantError> {
        if access == Access::PassThrough
            && (!range.base.is_multiple_of(4096) || !range.size.is_multiple_of(4096))
        {
            return Err(GrantError::NotPageAligned(range));
        }
        let slot = self
            .regions
            .iter_mut()
            .find(|r| r.is_none())
            .ok_or(GrantError::TooMany)?;
        *slot = Some(Region {
            device,
            access,
            range,
        });
        Ok(())
    }

    /// Every granted region.
    pub fn regions(&self) -> impl Iterator<Item = &Region> + '_ {
        self.regions.iter().flatten()
    }

    /// The regions stage 2 maps.
    pub fn passed_through(&self) -> impl Iterator<Item = &Region> + '_ {
        self.regions().filter(|r| r.access == Access::PassThrough)
    }

    /// Whether the guest may describe `device` at `r`: `r` lies inside one
    /// granted region of that device.
    pub fn allows(&self, device: Device, r: &Range) -> bool {
        self.regions()
            .any(|g| g.device == device && g.range.contains_range(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_any_entry_of_a_compatible_list() {
        assert_eq!(
            rule_for(b"arm,pl031\0arm,primecell\0").map(|r| r.device),
            Some(Device::Rtc)
        );
        assert_eq!(
            rule_for(b"arm,pl011\0arm,primecell\0").map(|r| r.access),
            Some(Access::Emulated)
        );
        assert!(rule_for(b"qemu,fw-cfg-mmio\0").is_none());
        assert!(rule_for(b"arm,pl0311\0").is_none(), "whole strings only");
        assert!(rule_for(b"").is_none());
    }

    #[test]
    fn dma_capable_devices_are_never_granted() {
        for (c, _) in NEVER {
            let mut list = c.as_bytes().to_vec();
            list.push(0);
            assert!(rule_for(&list).is_none(), "{c} must not be granted");
            assert!(never_reason(&list).is_some());
        }
        assert!(never_reason(b"virtio,mmio\0")
            .unwrap()
            .contains("DMA-capable"));
        assert!(never_reason(b"arm,pl031\0").is_none());
    }

    #[test]
    fn trace_hardware_is_recognised() {
        assert!(is_trace_hardware(b"arm,embedded-trace-extension\0"));
        assert!(is_trace_hardware(b"arm,trbe\0"));
        assert!(is_trace_hardware(b"arm,coresight-etm4x\0arm,primecell\0"));
        assert!(!is_trace_hardware(b"arm,pl011\0"));
    }

    #[test]
    fn a_grant_allows_only_inside_its_regions_and_devices() {
        let mut g = Grant::new();
        g.add(
            Device::Rtc,
            Access::PassThrough,
            Range::new(0x0901_0000, 0x1000),
        )
        .unwrap();
        g.add(
            Device::Uart,
            Access::Emulated,
            Range::new(0x0900_0000, 0x1000),
        )
        .unwrap();
        assert!(g.allows(Device::Rtc, &Range::new(0x0901_0000, 0x1000)));
        assert!(g.allows(Device::Rtc, &Range::new(0x0901_0000, 0x100)));
        assert!(!g.allows(Device::Rtc, &Range::new(0x0902_0000, 0x1000)));
        assert!(!g.allows(Device::Rtc, &Range::new(0x0900_0000, 0x1000)));
        assert!(!g.allows(Device::Uart, &Range::new(0x0900_0000, 0x2000)));
        assert_eq!(g.passed_through().count(), 1);
        assert_eq!(g.regions().count(), 2);
    }

    #[test]
    fn passed_through_regions_must_be_whole_pages() {
        let mut g = Grant::new();
        let r = Range::new(0x0901_0000, 0x100);
        assert_eq!(
            g.add(Device::Rtc, Access::PassThrough, r),
            Err(GrantError::NotPageAligned(r))
        );
        // An emulated region is never mapped, so it need not be.
        assert!(g.add(Device::Uart, Access::Emulated, r).is_ok());
        for _ in 1..MAX_REGIONS {
            g.add(Device::Uart, Access::Emulated, r).unwrap();
        }
        assert_eq!(
            g.add(Device::Uart, Access::Emulated, r),
            Err(GrantError::TooMany)
        );
    }
}
