//! QEMU runner.
