//! The ETE packet encoder the QEMU model uses (`el2::trace::packet`),
//! written as a CoreSight snapshot of a raw TRBE buffer and decoded by
//! OpenCSD's `trc_pkt_lister`: what the encoder writes is what the standard
//! decoder reads, packet by packet, address by address.

use el2::trace::packet::{self, Context, ExceptionType};
use runner::snapshot::{self, Capture, EteRegs, Packet};

fn regs(configr: u64) -> EteRegs {
    EteRegs::model(configr, el2::trace::trace_id(3).into())
}

fn decode(data: Vec<u8>, full: bool) -> (String, Vec<Packet>) {
    assert!(
        snapshot::have_decoder(),
        "trc_pkt_lister missing: make deps installs libopencsd-bin"
    );
    let dir = runner::tempdir().unwrap();
    snapshot::write(
        &dir,
        &[Capture {
            cpu: 1,
            regs: regs(0x8c1),
            data,
        }],
    )
    .unwrap();
    let out = snapshot::list(&dir, 1, full).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let p = snapshot::packets(&out);
    (out, p)
}

const TRAPS: [(ExceptionType, u64, &str); 4] = [
    (ExceptionType::Call, 0x4420_1234, "Call"),
    (ExceptionType::Trap, 0x4420_5678, "Trap"),
    (ExceptionType::Irq, 0x4420_5680, "IRQ"),
    (
        ExceptionType::DataFault,
        0xffff_0000_dead_bee0,
        "Data Fault",
    ),
];

/// el2 is `no_std`: a host byte vector as its packet sink.
struct V(Vec<u8>);

impl packet::Sink for V {
    fn put(&mut self, b: u8) {
        self.0.push(b)
    }
}

fn stream() -> Vec<u8> {
    let mut v = V(Vec::new());
    packet::a_sync(&mut v);
    packet::trace_info(&mut v);
    packet::trace_on(&mut v);
    packet::context(
        &mut v,
        &Context {
            el: 1,
            aarch64: true,
            non_secure: true,
            vmid: Some(1),
            context_id: Some(0x42),
        },
    );
    for (i, (t, addr, _)) in TRAPS.iter().enumerate() {
        packet::timestamp(&mut v, 0x1_0000_0000 + 0x80 * i as u64);
        packet::exception(&mut v, *t);
        packet::address(&mut v, *addr);
    }
    // A second sync point, as the model inserts periodically.
    packet::a_sync(&mut v);
    packet::trace_info(&mut v);
    packet::timestamp(&mut v, u64::MAX >> 1);
    v.0
}

#[test]
fn decode_encoder_round_trips_through_trc_pkt_lister() {
    let (out, p) = decode(stream(), false);
    let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
    let mut want = vec!["I_ASYNC", "I_TRACE_INFO", "I_TRACE_ON", "I_CTXT"];
    for _ in TRAPS {
        want.extend(["I_TIMESTAMP", "I_EXCEPT", "I_ADDR_L_64IS0"]);
    }
    want.extend(["I_ASYNC", "I_TRACE_INFO", "I_TIMESTAMP"]);
    assert_eq!(names, want, "{out}");
    assert!(p[3].text.contains("EL1"), "{out}");
    assert!(p[3].text.contains("CID=0x00000042"), "{out}");
    assert!(p[3].text.contains("VMID=0x0001"), "{out}");
    for (i, (_, addr, kind)) in TRAPS.iter().enumerate() {
        let ts = &p[4 + 3 * i];
        let exc = &p[5 + 3 * i];
        let a = &p[6 + 3 * i];
        assert_eq!(
            ts.hex_after("Updated val = "),
            Some(0x1_0000_0000 + 0x80 * i as u64),
            "{out}"
        );
        assert!(exc.text.contains(kind), "{kind}: {out}");
        assert!(exc.text.contains("Ret Addr Follows"), "{out}");
        assert_eq!(a.hex_after("Addr="), Some(*addr), "{out}");
    }
    assert_eq!(
        p.last().unwrap().hex_after("Updated val = "),
        Some(u64::MAX >> 1)
    );
    assert!(snapshot::errors(&out).is_empty(), "{out}");
}

#[test]
fn decode_full_decode_reports_each_exception_with_its_return_address() {
    let (out, _) = decode(stream(), true);
    for (_, addr, _) in TRAPS {
        assert!(
            out.contains(&format!(
                "OCSD_GEN_TRC_ELEM_EXCEPTION(pref ret addr:{addr:#x};"
            )),
            "{addr:#x}: {out}"
        );
    }
}

#[test]
fn decode_a_corrupted_stream_is_noticed() {
    // The check can fail: a wrong exception header byte decodes differently.
    let mut v = stream();
    let at = v.iter().position(|&b| b == 0x06).unwrap();
    v[at] = 0x07;
    let (out, p) = decode(v, false);
    let exceptions = p.iter().filter(|p| p.name == "I_EXCEPT").count();
    assert!(exceptions < TRAPS.len(), "{out}");
}
