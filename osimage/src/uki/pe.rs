//! Appending sections to a PE32+ image (systemd's EFI stub), keeping the headers
//! valid: NumberOfSections, SizeOfImage, SizeOfInitializedData and CheckSum.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeError {
    #[error("not a PE image: {0}")]
    NotPe(String),
    #[error("the stub's headers have no room for {0} more section headers")]
    NoRoom(usize),
    #[error("section name `{0}` is longer than 8 bytes")]
    Name(String),
    #[error("section `{0}` already exists in the stub")]
    Duplicate(String),
}

const SECTION_HEADER: usize = 40;
/// IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ
const DATA_READONLY: u32 = 0x4000_0040;

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn put_u16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

fn align(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// One section header, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub virtual_size: u32,
    pub virtual_address: u32,
    pub raw_size: u32,
    pub raw_pointer: u32,
    pub characteristics: u32,
}

/// The parsed header offsets of a PE32+ image.
#[derive(Debug, Clone)]
pub struct PeLayout {
    pub coff: usize,
    pub optional: usize,
    pub section_table: usize,
    pub sections: Vec<Section>,
    pub section_alignment: u32,
    pub file_alignment: u32,
    pub size_of_headers: u32,
}

const CHECKSUM_OFFSET: usize = 64;

impl PeLayout {
    pub fn parse(b: &[u8]) -> Result<PeLayout, PeError> {
        let bad = |why: &str| PeError::NotPe(why.to_owned());
        if b.len() < 0x40 || &b[0..2] != b"MZ" {
            return Err(bad("no MZ header"));
        }
        let pe = u32_at(b, 0x3c) as usize;
        if b.len() < pe + 24 || &b[pe..pe + 4] != b"PE\0\0" {
            return Err(bad("no PE signature"));
        }
        let coff = pe + 4;
        let count = u16_at(b, coff + 2) as usize;
        let opt_size = u16_at(b, coff + 16) as usize;
        let optional = coff + 20;
        if b.len() < optional + opt_size || opt_size < 72 {
            return Err(bad("truncated optional header"));
        }
        if u16_at(b, optional) != 0x20b {
            return Err(bad("not PE32+ (64-bit)"));
        }
        let section_table = optional + opt_size;
        if b.len() < section_table + count * SECTION_HEADER {
            return Err(bad("truncated section table"));
        }
        let sections = (0..count)
            .map(|i| {
                let h = &b[section_table + i * SECTION_HEADER..][..SECTION_HEADER];
                let end = h[..8].iter().position(|&c| c == 0).unwrap_or(8);
                Section {
                    name: String::from_utf8_lossy(&h[..end]).into_owned(),
                    virtual_size: u32_at(h, 8),
                    virtual_address: u32_at(h, 12),
                    raw_size: u32_at(h, 16),
                    raw_pointer: u32_at(h, 20),
                    characteristics: u32_at(h, 36),
                }
            })
            .collect();
        Ok(PeLayout {
            coff,
            optional,
            section_table,
            sections,
            section_alignment: u32_at(b, optional + 32),
            file_alignment: u32_at(b, optional + 36),
            size_of_headers: u32_at(b, optional + 60),
        })
    }
}

/// The PE checksum (as `CheckSumMappedFile` computes it).
pub fn checksum(b: &[u8], checksum_offset: usize) -> u32 {
    let mut sum: u64 = 0;
    let mut i = 0;
    while i < b.len() {
        if i == checksum_offset || i == checksum_offset + 2 {
            i += 2;
            continue;
        }
        let word = if i + 1 < b.len() {
            u16::from_le_bytes([b[i], b[i + 1]])
        } else {
            b[i] as u16
        };
        sum += word as u64;
        sum = (sum & 0xffff) + (sum >> 16);
        i += 2;
    }
    sum = (sum & 0xffff) + (sum >> 16);
    (sum + b.len() as u64) as u32
}

/// `stub` with at least `table_end` bytes of headers. systemd's stub leaves room for
/// only a few more section headers, fewer than a UKI with a splash and a signed PCR
/// policy needs. There is room in memory: the headers are mapped below the first
/// section's address. So, as ukify does, the headers grow by whole file-alignment
/// units and the sections' file data moves up by as much. Every file offset in the
/// headers moves with it: the sections', the debug entries' and the symbol table's.
fn grow_headers(
    stub: &[u8],
    layout: &PeLayout,
    table_end: usize,
    adding: usize,
) -> Result<Vec<u8>, PeError> {
    let first_raw = layout
        .sections
        .iter()
        .filter(|s| s.raw_size > 0)
        .map(|s| s.raw_pointer as usize)
        .min()
        .unwrap_or(layout.size_of_headers as usize);
    if table_end <= layout.size_of_headers as usize && table_end <= first_raw {
        return Ok(stub.to_vec());
    }
    let falign = (layout.file_alignment as usize).max(512);
    let new_headers = align(table_end as u64, falign as u64) as usize;
    let first_va = layout
        .sections
        .iter()
        .map(|s| s.virtual_address as usize)
        .min()
        .unwrap_or(usize::MAX);
    // A signed stub's certificate table is a file offset past the sections; growing
    // would break the signature, which appending sections does anyway, so refuse.
    let data_dir = |i: usize| {
        let count = u32_at(stub, layout.optional + 108) as usize;
        (i < count).then(|| {
            let o = layout.optional + 112 + i * 8;
            (u32_at(stub, o) as usize, u32_at(stub, o + 4) as usize)
        })
    };
    let signed = data_dir(4).is_some_and(|(_, size)| size != 0);
    if new_headers > first_va || signed {
        return Err(PeError::NoRoom(adding));
    }
    let delta = align(new_headers.saturating_sub(first_raw) as u64, falign as u64) as usize;
    let mut out = Vec::with_capacity(stub.len() + delta);
    out.extend_from_slice(&stub[..first_raw]);
    out.resize(first_raw + delta, 0);
    out.extend_from_slice(&stub[first_raw..]);
    let moved = |o: u32| {
        if o as usize >= first_raw {
            o + delta as u32
        } else {
            o
        }
    };
    for i in 0..layout.sections.len() {
        let h = layout.section_table + i * SECTION_HEADER;
        let raw = u32_at(&out, h + 20);
        if raw != 0 {
            put_u32(&mut out, h + 20, moved(raw));
        }
    }
    let symbols = u32_at(&out, layout.coff + 8);
    if symbols != 0 {
        put_u32(&mut out, layout.coff + 8, moved(symbols));
    }
    // Debug directory entries (28 bytes each) hold a file offset at +24.
    if let Some((rva, size)) = data_dir(6).filter(|&(rva, size)| rva != 0 && size != 0) {
        let file_at = layout.sections.iter().find_map(|s| {
            let (va, len) = (s.virtual_address as usize, s.raw_size as usize);
            (rva >= va && rva + size <= va + len)
                .then(|| moved(s.raw_pointer) as usize + (rva - va))
        });
        let Some(at) = file_at.filter(|at| at + size <= out.len()) else {
            return Err(PeError::NotPe(
                "debug directory outside the sections".into(),
            ));
        };
        for entry in (at..at + size).step_by(28) {
            let raw = u32_at(&out, entry + 24);
            if raw != 0 {
                put_u32(&mut out, entry + 24, moved(raw));
            }
        }
    }
    let headers = new_headers.max(layout.size_of_headers as usize);
    put_u32(&mut out, layout.optional + 60, headers as u32);
    Ok(out)
}

/// Returns `stub` with `sections` (name, contents) appended in order, each at the next
/// aligned virtual address and file offset.
pub fn append_sections(stub: &[u8], sections: &[(&str, &[u8])]) -> Result<Vec<u8>, PeError> {
    let layout = PeLayout::parse(stub)?;
    for (name, _) in sections {
        if name.len() > 8 {
            return Err(PeError::Name((*name).to_owned()));
        }
        if layout.sections.iter().any(|s| s.name == *name) {
            return Err(PeError::Duplicate((*name).to_owned()));
        }
    }
    let table_end =
        layout.section_table + (layout.sections.len() + sections.len()) * SECTION_HEADER;
    let mut out = grow_headers(stub, &layout, table_end, sections.len())?;
    let layout = PeLayout::parse(&out)?;

    let valign = (layout.section_alignment as u64).max(4096);
    let falign = (layout.file_alignment as u64).max(512);
    let mut next_va = layout
        .sections
        .iter()
        .map(|s| s.virtual_address as u64 + s.virtual_size.max(s.raw_size) as u64)
        .max()
        .unwrap_or(0);
    let mut init_data = u32_at(&out, layout.optional + 8) as u64;
    for (i, (name, data)) in sections.iter().enumerate() {
        let va = align(next_va, valign);
        let raw_ptr = align(out.len() as u64, falign);
        let raw_size = align(data.len() as u64, falign);
        out.resize(raw_ptr as usize, 0);
        out.extend_from_slice(data);
        out.resize((raw_ptr + raw_size) as usize, 0);
        let h = layout.section_table + (layout.sections.len() + i) * SECTION_HEADER;
        let header = &mut out[h..h + SECTION_HEADER];
        header.fill(0);
        header[..name.len()].copy_from_slice(name.as_bytes());
        put_u32(header, 8, data.len() as u32);
        put_u32(header, 12, va as u32);
        put_u32(header, 16, raw_size as u32);
        put_u32(header, 20, raw_ptr as u32);
        put_u32(header, 36, DATA_READONLY);
        next_va = va + data.len() as u64;
        init_data += raw_size;
    }
    let count = (layout.sections.len() + sections.len()) as u16;
    put_u16(&mut out, layout.coff + 2, count);
    put_u32(&mut out, layout.optional + 8, init_data as u32);
    put_u32(
        &mut out,
        layout.optional + 56,
        align(next_va, layout.section_alignment as u64) as u32,
    );
    put_u32(&mut out, layout.optional + CHECKSUM_OFFSET, 0);
    let sum = checksum(&out, layout.optional + CHECKSUM_OFFSET);
    put_u32(&mut out, layout.optional + CHECKSUM_OFFSET, sum);
    Ok(out)
}

/// The contents of a named section, trimmed to its VirtualSize.
pub fn section_data<'a>(image: &'a [u8], name: &str) -> Result<Option<&'a [u8]>, PeError> {
    let layout = PeLayout::parse(image)?;
    Ok(layout
        .sections
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| {
            let start = s.raw_pointer as usize;
            let len = s.virtual_size.min(s.raw_size) as usize;
            image.get(start..start + len)
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_pe_input() {
        assert!(matches!(
            append_sections(b"hello", &[]),
            Err(PeError::NotPe(_))
        ));
        let mut mz = vec![0u8; 128];
        mz[0..2].copy_from_slice(b"MZ");
        assert!(matches!(PeLayout::parse(&mz), Err(PeError::NotPe(_))));
    }

    #[test]
    fn checksum_of_known_words() {
        // Two words 0x0001 and 0x0002, no checksum field inside: 3 + length 4.
        assert_eq!(checksum(&[1, 0, 2, 0], 100), 7);
        // Carries fold back in.
        assert_eq!(checksum(&[0xff, 0xff, 0x02, 0x00], 100), 2 + 4);
    }
}
