#![doc = include_str!("../ABI.md")]
#![cfg_attr(not(test), no_std)]

pub mod hyp;
pub mod psci;
pub mod smccc;
pub mod trace;
