//! `.npz` archives: a stored-zip writer and reader, and mutations made member by member.

use super::{Rng, mutate_bytes, mutate_npy_bytes};

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |c, &b| CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8))
}

/// Writes a zip archive of stored (uncompressed) members, with zip64 end records when asked.
pub fn build_zip(members: &[(String, Vec<u8>)], zip64: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in members {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let size = data.len() as u32;
        let name_len = name.len() as u16;
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        for v in [20u16, 0, 0, 0, 0x21] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, size, size] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        for v in [20u16, 20, 0, 0, 0, 0x21] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, size, size] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [name_len, 0, 0, 0, 0] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        central.extend_from_slice(&0u32.to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len();
    out.extend_from_slice(&central);
    let count = members.len();
    if zip64 {
        let eocd64 = out.len() as u64;
        out.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
        out.extend_from_slice(&44u64.to_le_bytes());
        for v in [45u16, 45] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [0u32, 0] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [count as u64, count as u64, central.len() as u64, cd_offset as u64] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&eocd64.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
    }
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    let (n16, size32, off32) =
        if zip64 { (0xFFFF, 0xFFFF_FFFF, 0xFFFF_FFFF) } else { (count as u16, central.len() as u32, cd_offset as u32) };
    for v in [0u16, 0, n16, n16] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&size32.to_le_bytes());
    out.extend_from_slice(&off32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// The stored members of a zip archive, read from its local headers (None when it has a
/// compressed member or is not a zip).
pub fn parse_stored_zip(b: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let u16_at = |i: usize| b.get(i..i + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let u32_at = |i: usize| b.get(i..i + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
    let mut members = Vec::new();
    let mut at = 0;
    while u32_at(at) == Some(0x0403_4b50) {
        let flags = u16_at(at + 6)?;
        let method = u16_at(at + 8)?;
        let size = u32_at(at + 18)? as usize;
        let name_len = usize::from(u16_at(at + 26)?);
        let extra_len = usize::from(u16_at(at + 28)?);
        if method != 0 || flags & 8 != 0 || size == 0xFFFF_FFFF {
            return None;
        }
        let name_start = at + 30;
        let data_start = name_start + name_len + extra_len;
        let name = String::from_utf8_lossy(b.get(name_start..name_start + name_len)?).into_owned();
        members.push((name, b.get(data_start..data_start + size)?.to_vec()));
        at = data_start + size;
    }
    (!members.is_empty()).then_some(members)
}

const MEMBER_NAMES: &[&str] =
    &["input.npy", "labels.npy", "aux.npy", "input", "input.npy.npy", "", "../input.npy", "INPUT.npy", "lábels.npy"];

/// Mutates a `.npz` member by member (when `base` is a stored archive), rebuilding the archive.
pub fn mutate_npz(rng: &mut Rng, base: &[u8], pool: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut members = parse_stored_zip(base).unwrap_or_default();
    if members.is_empty() {
        if pool.is_empty() {
            return base.to_vec();
        }
        members.push(rng.pick(pool).clone());
    }
    for _ in 0..=rng.below(2) {
        let i = rng.below(members.len());
        match rng.below(8) {
            0..=3 => {
                let m = &mut members[i].1;
                *m = if rng.chance(3, 4) {
                    mutate_npy_bytes(rng, m)
                } else {
                    let donor = m.clone();
                    mutate_bytes(rng, m, &donor);
                    m.clone()
                };
            }
            4 => members[i].0 = (*rng.pick(MEMBER_NAMES)).to_string(),
            5 if members.len() > 1 => {
                members.remove(i);
            }
            6 if !pool.is_empty() => members.push(rng.pick(pool).clone()),
            _ => {
                let dup = members[i].clone();
                members.push(dup);
            }
        }
    }
    build_zip(&members, rng.chance(1, 4))
}
