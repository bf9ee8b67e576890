//! Byte-level mutations, for every target: bit flips, boundary values, splices and digit runs.

use super::Rng;

/// Values that tend to sit on boundaries: little-endian integers and protobuf varints.
const INTERESTING: &[&[u8]] = &[
    &[0x00],
    &[0xFF],
    &[0x7F],
    &[0x80],
    &[0x01],
    &[0x00, 0x00, 0x00, 0x00],
    &[0xFF, 0xFF, 0xFF, 0xFF],
    &[0xFF, 0xFF, 0xFF, 0x7F],
    &[0x00, 0x00, 0x00, 0x80],
    &[0xFF, 0xFF],
    &[0x00, 0x80],
    &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
    // Varints: 2^31, 2^32, 2^40, 2^62, u64::MAX (as a 10-byte varint), -1 as int64.
    &[0x80, 0x80, 0x80, 0x80, 0x08],
    &[0x80, 0x80, 0x80, 0x80, 0x10],
    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x20],
    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40],
    &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
    &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F],
    // An unterminated varint.
    &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
];

/// Number texts for digit runs (npy shapes, JSON numbers, header lengths).
pub(super) const INTERESTING_NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "7",
    "255",
    "65536",
    "2147483648",
    "4294967296",
    "1099511627776",
    "4611686018427387904",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "100000000000000000000000",
    "1e308",
    "1e400",
    "-0",
    "0.5",
];

/// Stacks one random raw-bytes mutation onto `data` (`donor` feeds splicing).
pub fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, donor: &[u8]) {
    let len = data.len();
    match rng.below(12) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] = rng.byte();
        }
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        2 => data.truncate(rng.below(len + 1)),
        3 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(256));
            data.drain(at..at + n);
        }
        4 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(256));
            let chunk = data[at..at + n].to_vec();
            let to = rng.below(len + 1);
            data.splice(to..to, chunk);
        }
        5 => {
            let v = rng.pick(INTERESTING);
            let to = rng.below(len + 1);
            data.splice(to..to, v.iter().copied());
        }
        6 if len > 0 => {
            let v = rng.pick(INTERESTING);
            let at = rng.below(len);
            for (i, b) in v.iter().enumerate() {
                if let Some(d) = data.get_mut(at + i) {
                    *d = *b;
                }
            }
        }
        7 if !donor.is_empty() => {
            // Splice: a prefix of this input, a suffix of the donor.
            let cut = rng.below(len + 1);
            let from = rng.below(donor.len());
            data.truncate(cut);
            data.extend_from_slice(&donor[from..]);
        }
        8 if !donor.is_empty() && len > 0 => {
            // Crossover in place: overwrite a range with donor bytes.
            let from = rng.below(donor.len());
            let n = 1 + rng.below((donor.len() - from).min(512));
            let at = rng.below(len);
            let end = (at + n).min(len);
            data.splice(at..end, donor[from..from + n].iter().copied());
        }
        9 => replace_digit_run(rng, data),
        10 if len > 0 => {
            // Repeat one byte a few times (runs of 0x00/0xFF make long varints and lengths).
            let at = rng.below(len);
            let b = if rng.chance(1, 2) { data[at] } else { *rng.pick(&[0u8, 0xFF, 0x80]) };
            let n = 1 + rng.below(16);
            data.splice(at..at, std::iter::repeat_n(b, n));
        }
        _ => {
            let v = rng.pick(INTERESTING);
            data.extend_from_slice(v);
        }
    }
}

/// Replaces one run of ASCII digits with an interesting number (shapes in npy headers, JSON
/// numbers).
fn replace_digit_run(rng: &mut Rng, data: &mut Vec<u8>) {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < data.len() && runs.len() < 4096 {
        if data[i].is_ascii_digit() {
            let start = i;
            while i < data.len() && data[i].is_ascii_digit() {
                i += 1;
            }
            runs.push(start..i);
        } else {
            i += 1;
        }
    }
    if runs.is_empty() {
        return;
    }
    let r = rng.pick(&runs).clone();
    data.splice(r, rng.pick(INTERESTING_NUMBERS).bytes());
}
