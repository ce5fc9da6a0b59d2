//! The first stage: the header, the memory reservation block, the
//! structure block and the strings block are checked against every bound
//! and every structural rule the `fdt` crate relies on, and the blob is
//! rebuilt without `FDT_NOP` tokens into the caller's scratch buffer.

use super::{be32, be64, total_size, DtbError, Range, MAX_DEPTH};

pub(super) const FDT_MAGIC: u32 = 0xd00d_feed;
pub(super) const FDT_BEGIN_NODE: u32 = 0x1;
pub(super) const FDT_END_NODE: u32 = 0x2;
pub(super) const FDT_PROP: u32 = 0x3;
pub(super) const FDT_NOP: u32 = 0x4;
pub(super) const FDT_END: u32 = 0x9;

/// Header length up to and including `size_dt_strings` (version 16).
pub(super) const HEADER_V16_LEN: usize = 36;
/// Header length including `size_dt_struct` (version 17).
const HEADER_V17_LEN: usize = 40;
/// One memory reservation entry: a 64-bit address and a 64-bit size.
const RSV_ENTRY_LEN: usize = 16;
/// Longest property name accepted. The spec allows 31 characters; the
/// bound is generous, and it keeps the search for each name's NUL from
/// making validation quadratic in the size of a hostile strings block.
const MAX_PROPERTY_NAME: usize = 255;

/// Rounds up to the next multiple of 4: tokens, node names and property
/// values are all padded to 32-bit alignment in the structure block.
fn align4(n: usize) -> Option<usize> {
    Some(n.checked_add(3)? & !3)
}

/// The output side of [`sanitize`]: appends to the scratch buffer and keeps
/// counting past its end, so a too-small buffer can report the size needed.
struct Out<'s> {
    buf: &'s mut [u8],
    len: usize,
    fits: bool,
}

impl Out<'_> {
    fn push(&mut self, bytes: &[u8]) {
        let Some(end) = self.len.checked_add(bytes.len()) else {
            self.fits = false;
            self.len = usize::MAX;
            return;
        };
        match self.buf.get_mut(self.len..end) {
            Some(dst) => dst.copy_from_slice(bytes),
            None => self.fits = false,
        }
        self.len = end;
    }
}

/// Validates `blob` and rebuilds it into `scratch` as header (version 17),
/// memory reservation block, structure block without NOPs, strings block.
/// Returns the rebuilt length.
pub(super) fn sanitize(blob: &[u8], scratch: &mut [u8]) -> Result<usize, DtbError> {
    use DtbError::Malformed;

    let total = total_size(blob)?;
    let blob = blob.get(..total).ok_or(DtbError::Truncated {
        needed: total,
        available: blob.len(),
    })?;
    let field = |at: usize| be32(blob, at).map(|v| v as usize);

    let version = be32(blob, 20).ok_or(Malformed("header is cut short"))?;
    let last_compatible = be32(blob, 24).ok_or(Malformed("header is cut short"))?;
    // A version 17 reader can read any blob whose last_comp_version is at
    // most 17; size_dt_struct only exists from version 17 on, and older
    // layouts differ in ways not worth supporting.
    if version < 16 || last_compatible > 17 {
        return Err(DtbError::BadVersion {
            version,
            last_compatible,
        });
    }
    let header_len = if version >= 17 {
        HEADER_V17_LEN
    } else {
        HEADER_V16_LEN
    };
    if total < header_len {
        return Err(Malformed("totalsize is smaller than the header"));
    }
    let short = Malformed("header is cut short");
    let off_struct = field(8).ok_or(short)?;
    let off_strings = field(12).ok_or(short)?;
    let off_rsv = field(16).ok_or(short)?;
    let boot_cpuid = be32(blob, 28).ok_or(short)?;
    let size_strings = field(32).ok_or(short)?;
    let size_struct = if version >= 17 {
        Some(field(36).ok_or(short)?)
    } else {
        None
    };

    // Memory reservation block: 8-byte aligned, a list of (address, size)
    // pairs ended by an all-zero pair.
    if off_rsv % 8 != 0 {
        return Err(Malformed(
            "the memory reservation block is not 8-byte aligned",
        ));
    }
    if off_rsv < header_len {
        return Err(Malformed(
            "the memory reservation block overlaps the header",
        ));
    }
    let mut rsv_len = 0usize;
    loop {
        let at = off_rsv
            .checked_add(rsv_len)
            .ok_or(Malformed("reservation offset overflows"))?;
        let (Some(addr), Some(size)) = (be64(blob, at), be64(blob, at.saturating_add(8))) else {
            return Err(Malformed(
                "the memory reservation block has no terminating entry",
            ));
        };
        rsv_len += RSV_ENTRY_LEN;
        if addr == 0 && size == 0 {
            break;
        }
    }
    let rsv = blob
        .get(off_rsv..off_rsv.saturating_add(rsv_len))
        .ok_or(Malformed(
            "the memory reservation block runs past totalsize",
        ))?;

    // Structure block: tokens are 32-bit aligned.
    if off_struct % 4 != 0 {
        return Err(Malformed("the structure block is not 4-byte aligned"));
    }
    if off_struct < header_len {
        return Err(Malformed("the structure block overlaps the header"));
    }
    let struct_src = match size_struct {
        Some(size) => {
            if size % 4 != 0 {
                return Err(Malformed("the structure block size is not a multiple of 4"));
            }
            off_struct
                .checked_add(size)
                .and_then(|end| blob.get(off_struct..end))
        }
        // Version 16 has no size_dt_struct: the block ends at FDT_END.
        None => blob.get(off_struct..),
    }
    .ok_or(Malformed("the structure block runs past totalsize"))?;

    if off_strings < header_len {
        return Err(Malformed("the strings block overlaps the header"));
    }
    let strings = off_strings
        .checked_add(size_strings)
        .and_then(|end| blob.get(off_strings..end))
        .ok_or(Malformed("the strings block runs past totalsize"))?;

    let scratch_len = scratch.len();
    let mut out = Out {
        buf: scratch,
        len: 0,
        fits: true,
    };
    out.push(&[0; HEADER_V17_LEN]);
    out.push(rsv);
    let out_struct = out.len;
    let struct_used = copy_structure(struct_src, strings, &mut out)?;
    if size_struct.is_some_and(|size| size != struct_used) {
        return Err(Malformed("data follows FDT_END in the structure block"));
    }
    let out_strings = out.len;
    out.push(strings);
    let out_total = out.len;

    // The three blocks must not share bytes, or a later edit of one (by
    // libfdt, say) would corrupt another.
    let blocks = [
        (off_rsv, rsv_len),
        (off_struct, struct_used),
        (off_strings, size_strings),
    ];
    for (i, a) in blocks.iter().enumerate() {
        for b in blocks.iter().skip(i + 1) {
            if Range::new(a.0 as u64, a.1 as u64).overlaps(&Range::new(b.0 as u64, b.1 as u64)) {
                return Err(Malformed("two blocks of the blob overlap"));
            }
        }
    }

    if !out.fits {
        return Err(DtbError::TooLarge {
            size: out_total,
            scratch: scratch_len,
        });
    }
    let header_fields = [
        FDT_MAGIC as usize,
        out_total,
        out_struct,
        out_strings,
        HEADER_V17_LEN,
        17,
        16,
        boot_cpuid as usize,
        size_strings,
        out_strings.saturating_sub(out_struct),
    ];
    let header = out
        .buf
        .get_mut(..HEADER_V17_LEN)
        .ok_or(Malformed("scratch is too small"))?;
    for (slot, value) in header.chunks_exact_mut(4).zip(header_fields) {
        let value = u32::try_from(value).map_err(|_| Malformed("rebuilt blob is too large"))?;
        slot.copy_from_slice(&value.to_be_bytes());
    }
    Ok(out_total)
}

/// Walks the structure block token by token, enforcing what the format
/// requires and what the `fdt` crate assumes (it panics otherwise), and
/// copies every token except `FDT_NOP` to `out`. Returns the number of
/// source bytes up to and including `FDT_END`.
fn copy_structure(src: &[u8], strings: &[u8], out: &mut Out<'_>) -> Result<usize, DtbError> {
    use DtbError::Malformed;

    let mut pos = 0usize;
    let mut depth = 0usize;
    let mut root_closed = false;
    // Within a node all properties precede the first child node.
    let mut props_allowed = false;
    loop {
        let token = be32(src, pos).ok_or(Malformed("the structure block ends without FDT_END"))?;
        let end = match token {
            FDT_NOP => {
                pos += 4;
                continue;
            }
            FDT_BEGIN_NODE => {
                if root_closed {
                    return Err(Malformed("there is more than one root node"));
                }
                let name_at = pos + 4;
                let rest = src.get(name_at..).unwrap_or_default();
                let name_len = rest
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or(Malformed("a node name is not NUL-terminated"))?;
                let name = rest.get(..name_len).unwrap_or_default();
                if depth == 0 {
                    if !name.is_empty() {
                        return Err(Malformed("the root node has a name"));
                    }
                } else if !valid_node_name(name) {
                    return Err(Malformed("a node name is empty or has invalid characters"));
                }
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(Malformed("nodes are nested more than 16 levels deep"));
                }
                props_allowed = true;
                align4(name_at + name_len + 1)
            }
            FDT_PROP => {
                if depth == 0 {
                    return Err(Malformed("a property lies outside every node"));
                }
                if !props_allowed {
                    return Err(Malformed("a property follows a child node"));
                }
                let (Some(len), Some(name_off)) = (be32(src, pos + 4), be32(src, pos + 8)) else {
                    return Err(Malformed("a property header runs past the structure block"));
                };
                check_property_name(strings, name_off as usize)?;
                (pos + 12).checked_add(len as usize).and_then(align4)
            }
            FDT_END_NODE => {
                if depth == 0 {
                    return Err(Malformed("FDT_END_NODE has no matching FDT_BEGIN_NODE"));
                }
                depth -= 1;
                props_allowed = false;
                root_closed = depth == 0;
                Some(pos + 4)
            }
            FDT_END => {
                if !root_closed {
                    return Err(Malformed("FDT_END comes before the root node is closed"));
                }
                out.push(&FDT_END.to_be_bytes());
                return Ok(pos + 4);
            }
            _ => return Err(Malformed("the structure block holds an unknown token")),
        };
        let chunk = end.and_then(|end| src.get(pos..end)).ok_or(Malformed(
            "a node name or property value runs past the structure block",
        ))?;
        out.push(chunk);
        pos += chunk.len();
    }
}

/// Node names are `name[@unit-address]` from a small printable set
/// (devicetree spec 2.2.1); `/` would break path lookups.
fn valid_node_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| b.is_ascii_graphic() && b != b'/')
}

fn check_property_name(strings: &[u8], offset: usize) -> Result<(), DtbError> {
    use DtbError::Malformed;
    if offset >= strings.len() {
        return Err(Malformed(
            "a property name offset lies outside the strings block",
        ));
    }
    let rest = strings.get(offset..).unwrap_or_default();
    let len = rest
        .iter()
        .take(MAX_PROPERTY_NAME + 1)
        .position(|&b| b == 0)
        .ok_or(Malformed(
            "a property name is not NUL-terminated within 255 bytes",
        ))?;
    let name = rest.get(..len).unwrap_or_default();
    // Property names are printable (devicetree spec 2.2.4); the `fdt`
    // crate panics on names that are not UTF-8.
    if name.is_empty() || !name.iter().all(u8::is_ascii_graphic) {
        return Err(Malformed(
            "a property name is empty or has invalid characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use fdt::Fdt;

    use super::super::testutil::*;
    use super::super::{parse, DtbError, PsciMethod, Range, MAX_DEPTH};
    use super::*;

    // ---------------------------------------------------------------- QEMU

    #[test]
    fn qemu_smp8_fixture_with_nops_parses() {
        let nops = tokens(SMP8_NOP).iter().filter(|t| t.1 == FDT_NOP).count();
        assert_eq!(nops, 54, "the fixture should still hold QEMU's NOPs");
        // Why NOPs are stripped first: the fdt crate alone loses nodes.
        let raw = Fdt::new(SMP8_NOP).unwrap();
        assert!(raw.find_node("/cpus").is_none());

        let p = parse_blob(SMP8_NOP).unwrap();
        assert_eq!(p.memory(), &[Range::new(0x4000_0000, GIB)]);
        assert_eq!(p.cpus(), &[0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(p.gicd, Range::new(0x0800_0000, 0x1_0000));
        assert_eq!(p.gicr, Range::new(0x080a_0000, 0xf6_0000));
        assert_eq!(p.psci, PsciMethod::Smc);
        assert_eq!(p.uart, Range::new(0x0900_0000, 0x1000));
        assert_eq!(p.uart_intid, Some(33));
        assert_eq!(p.bootargs(), "console=ttyAMA0");
        assert_eq!(p.initrd, None);
        assert_eq!(p.cpu_index(0x8000_0005), Some(5));
    }

    #[test]
    fn qemu_totalsize_with_free_space_and_longer_blob() {
        // QEMU declares totalsize = 1 MiB, mostly free space; the scratch
        // only needs the used part.
        let mut padded = SMP4.to_vec();
        padded.resize(1 << 20, 0);
        set_be32(&mut padded, 4, 1 << 20);
        let mut scratch = [0u8; 12 * 1024];
        assert_eq!(parse(&padded, &mut scratch), parse_blob(SMP4));
        // Bytes past totalsize are not looked at.
        let mut longer = SMP4.to_vec();
        longer.extend_from_slice(&[0xff; 100]);
        assert_eq!(parse_blob(&longer), parse_blob(SMP4));
        // And the rebuilt copy parses the same as the original.
        let mut copy = vec![0u8; SCRATCH];
        let len = sanitize(SMP8_NOP, &mut copy).unwrap();
        assert!(len < SMP8_NOP.len());
        assert!(tokens(&copy[..len]).iter().all(|t| t.1 != FDT_NOP));
        assert_eq!(parse_blob(&copy[..len]), parse_blob(SMP8_NOP));
    }

    #[test]
    fn scratch_too_small() {
        let mut scratch = [0u8; 1024];
        match parse(SMP4, &mut scratch) {
            Err(DtbError::TooLarge {
                size,
                scratch: 1024,
                // QEMU leaves 8 bytes between its 40-byte header and the
                // reservation block at 0x30; the rebuilt copy does not.
            }) => assert_eq!(size, SMP4.len() - 8),
            other => panic!("{other:?}"),
        }
        let mut exact = vec![0u8; SMP4.len() - 8];
        assert!(parse(SMP4, &mut exact).is_ok());
        let mut short = vec![0u8; SMP4.len() - 9];
        assert!(matches!(
            parse(SMP4, &mut short),
            Err(DtbError::TooLarge { .. })
        ));
    }

    // ------------------------------------------------------------- header

    #[test]
    fn zero_length_and_bad_magic() {
        assert_eq!(parse_blob(&[]), Err(DtbError::NotFound));
        let mut blob = SMP4.to_vec();
        blob[0] = 0xfe;
        assert_eq!(parse_blob(&blob), Err(DtbError::BadMagic(0xfe0d_feed)));
        let zeros = [0u8; 64];
        assert_eq!(parse_blob(&zeros), Err(DtbError::BadMagic(0)));
    }

    #[test]
    fn truncated_blobs() {
        assert_eq!(
            parse_blob(&SMP4[..SMP4.len() - 1]),
            Err(DtbError::Truncated {
                needed: SMP4.len(),
                available: SMP4.len() - 1
            })
        );
        for len in (1..SMP4.len()).step_by(7) {
            let err = parse_blob(&SMP4[..len]).unwrap_err();
            assert!(matches!(err, DtbError::Truncated { .. }), "{len}: {err:?}");
        }
        // totalsize larger than the blob.
        let mut blob = SMP4.to_vec();
        set_be32(&mut blob, 4, SMP4.len() as u32 + 4);
        assert_eq!(
            parse_blob(&blob),
            Err(DtbError::Truncated {
                needed: SMP4.len() + 4,
                available: SMP4.len()
            })
        );
    }

    #[test]
    fn versions() {
        let good = build(&Spec::default());
        for (version, last) in [(15, 15), (1, 1), (17, 18), (0xffff_ffff, 0xffff_ffff)] {
            let mut blob = good.clone();
            set_be32(&mut blob, 20, version);
            set_be32(&mut blob, 24, last);
            assert_eq!(
                parse_blob(&blob),
                Err(DtbError::BadVersion {
                    version,
                    last_compatible: last
                })
            );
        }
        // A later version readable by a version 17 reader is fine.
        let mut blob = good.clone();
        set_be32(&mut blob, 20, 18);
        assert_eq!(parse_blob(&blob), parse_blob(&good));
        // Version 16 has no size_dt_struct: garbage there is ignored and the
        // structure block ends at FDT_END.
        let mut blob = good.clone();
        set_be32(&mut blob, 20, 16);
        set_be32(&mut blob, 36, 0xdead_beef);
        assert_eq!(parse_blob(&blob), parse_blob(&good));
    }

    #[test]
    fn block_layout_errors() {
        let good = build(&Spec::default());
        let total = good.len() as u32;
        let cases: &[(usize, u32)] = &[
            (16, 44),        // reservation block misaligned
            (16, 8),         // reservation block inside the header
            (16, total - 8), // no room for its terminator
            (8, 58),         // structure block misaligned
            (8, 16),         // structure block inside the header
            (36, 6),         // size_dt_struct not a multiple of 4
            (36, total),     // structure block past totalsize
            (12, 4),         // strings block inside the header
            (32, total),     // strings block past totalsize
            (12, 56),        // strings block overlaps the structure block
            (16, 56),        // reservation block overlaps the structure block
        ];
        for &(field, value) in cases {
            let mut blob = good.clone();
            set_be32(&mut blob, field, value);
            let err = parse_blob(&blob).unwrap_err();
            assert!(
                matches!(err, DtbError::Malformed(_)),
                "field {field} = {value}: {err:?}"
            );
        }
        // A reservation entry is allowed and skipped.
        let mut b = Builder::new();
        b.begin("").end();
        let mut blob = b.finish();
        let mut with_rsv = blob[..40].to_vec();
        with_rsv.extend_from_slice(&[0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0]);
        with_rsv.extend_from_slice(&blob[40..]);
        for field in [4, 8, 12] {
            let v = get_be32(&with_rsv, field);
            set_be32(&mut with_rsv, field, v + 16);
        }
        assert_eq!(parse_blob(&with_rsv), Err(DtbError::NoMemory));
        set_be32(&mut blob, 16, 41);
        assert!(matches!(parse_blob(&blob), Err(DtbError::Malformed(_))));
    }

    // ---------------------------------------------------------- structure

    fn malformed(blob: &[u8]) -> &'static str {
        match parse_blob(blob) {
            Err(DtbError::Malformed(why)) => why,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn nops_anywhere_parse_identically() {
        let plain = parse_spec(&Spec::default()).unwrap();
        let blob = build(&Spec {
            nops: true,
            ..Spec::default()
        });
        assert!(tokens(&blob).iter().filter(|t| t.1 == FDT_NOP).count() > 50);
        assert_eq!(parse_blob(&blob), Ok(plain));
        // NOPs before the root and right before FDT_END, too.
        let mut b = Builder::new();
        b.word(FDT_NOP).word(FDT_NOP);
        let inner = build(&Spec::default());
        let off = get_be32(&inner, 8) as usize;
        let size = get_be32(&inner, 36) as usize;
        b.raw(&inner[off..off + size - 4]).word(FDT_NOP);
        b.strings = inner[get_be32(&inner, 12) as usize..].to_vec();
        assert_eq!(parse_blob(&b.finish()), parse_spec(&Spec::default()));
    }

    #[test]
    fn unterminated_node_name() {
        let mut b = Builder::new();
        b.begin("").word(FDT_BEGIN_NODE).raw(b"abcd");
        assert_eq!(
            malformed(&b.finish_raw(&b.structure.clone())),
            "a node name is not NUL-terminated"
        );
    }

    #[test]
    fn bad_node_names() {
        let mut b = Builder::new();
        b.begin("root");
        b.end();
        assert_eq!(malformed(&b.finish()), "the root node has a name");
        for name in ["", "a/b", "sp ace", "\u{e9}"] {
            let mut b = Builder::new();
            b.begin("").begin(name).end().end();
            assert_eq!(
                malformed(&b.finish()),
                "a node name is empty or has invalid characters"
            );
        }
    }

    #[test]
    fn property_names_in_the_strings_block() {
        let mut b = Builder::new();
        b.begin("").prop("x", b"1").prop_at(2, b"").end();
        assert_eq!(
            malformed(&b.finish()),
            "a property name offset lies outside the strings block"
        );
        let mut b = Builder::new();
        b.begin("").prop_at(0xffff_fff0, b"").end();
        assert_eq!(
            malformed(&b.finish()),
            "a property name offset lies outside the strings block"
        );
        let mut b = Builder::new();
        b.begin("").prop("x", b"1").end();
        b.strings = b"xy".to_vec();
        assert_eq!(
            malformed(&b.finish()),
            "a property name is not NUL-terminated within 255 bytes"
        );
        let long = |n: usize| {
            let mut b = Builder::new();
            b.begin("").prop_at(0, b"").end();
            b.strings = vec![b'a'; n];
            b.strings.push(0);
            parse_blob(&b.finish())
        };
        assert_eq!(long(255), Err(DtbError::NoMemory));
        assert_eq!(
            long(256),
            Err(DtbError::Malformed(
                "a property name is not NUL-terminated within 255 bytes"
            ))
        );
        for bad in [&b"\0"[..], b"a b\0", b"\xff\0"] {
            let mut b = Builder::new();
            b.begin("").prop_at(0, b"").end();
            b.strings = bad.to_vec();
            assert_eq!(
                malformed(&b.finish()),
                "a property name is empty or has invalid characters"
            );
        }
    }

    #[test]
    fn property_values_stay_inside_the_block() {
        let mut b = Builder::new();
        b.begin("").prop("x", b"abcd").end();
        let mut blob = b.finish();
        let (at, _) = tokens(&blob).into_iter().find(|t| t.1 == FDT_PROP).unwrap();
        for len in [0x1000, 0xffff_fff0, u32::MAX] {
            set_be32(&mut blob, at + 4, len);
            assert_eq!(
                malformed(&blob),
                "a node name or property value runs past the structure block"
            );
        }
        // A property header cut by the end of the block.
        let mut b = Builder::new();
        b.begin("").word(FDT_PROP).word(0);
        assert_eq!(
            malformed(&b.finish_raw(&b.structure.clone())),
            "a property header runs past the structure block"
        );
    }

    #[test]
    fn token_stream_rules() {
        let mut b = Builder::new();
        b.begin("").begin("a").end().prop_str("late", "x").end();
        assert_eq!(malformed(&b.finish()), "a property follows a child node");

        let mut b = Builder::new();
        b.prop_str("early", "x").begin("").end();
        assert_eq!(malformed(&b.finish()), "a property lies outside every node");

        let mut b = Builder::new();
        b.begin("").end().begin("").end();
        assert_eq!(malformed(&b.finish()), "there is more than one root node");

        let mut b = Builder::new();
        b.begin("").end().end();
        assert_eq!(
            malformed(&b.finish()),
            "FDT_END_NODE has no matching FDT_BEGIN_NODE"
        );

        let mut b = Builder::new();
        b.begin("").begin("a").end();
        assert_eq!(
            malformed(&b.finish()),
            "FDT_END comes before the root node is closed"
        );

        let b = Builder::new();
        assert_eq!(
            malformed(&b.finish()),
            "FDT_END comes before the root node is closed"
        );

        let mut b = Builder::new();
        b.begin("").end();
        assert_eq!(
            malformed(&b.finish_raw(&b.structure.clone())),
            "the structure block ends without FDT_END"
        );

        let mut b = Builder::new();
        b.begin("").end().word(FDT_END).word(FDT_NOP);
        assert_eq!(
            malformed(&b.finish_raw(&b.structure.clone())),
            "data follows FDT_END in the structure block"
        );

        for token in [0, 5, 6, 7, 8, 10, 0xffff_ffff] {
            let mut b = Builder::new();
            b.begin("").word(token).end();
            assert_eq!(
                malformed(&b.finish()),
                "the structure block holds an unknown token"
            );
        }
    }

    #[test]
    fn depth_bomb() {
        let nested = |levels: usize| {
            let mut b = Builder::new();
            b.begin("");
            for _ in 1..levels {
                b.begin("n");
            }
            for _ in 0..levels {
                b.end();
            }
            b.finish()
        };
        // MAX_DEPTH levels are fine (no memory, but structurally valid).
        assert_eq!(parse_blob(&nested(MAX_DEPTH)), Err(DtbError::NoMemory));
        assert_eq!(
            malformed(&nested(MAX_DEPTH + 1)),
            "nodes are nested more than 16 levels deep"
        );
        assert_eq!(
            malformed(&nested(10_000)),
            "nodes are nested more than 16 levels deep"
        );
    }
}
