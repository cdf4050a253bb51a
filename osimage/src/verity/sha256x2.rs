//! SHA-256 of `salt ‖ block` for many equal-sized blocks, two at a time.
//!
//! One SHA-256 stream on the SHA extensions is bound by the latency of
//! `sha256rnds2`, not by the core's throughput: each pair of rounds waits on the one
//! before. Two independent messages interleaved fill those gaps, which is what the
//! Linux kernel does for dm-verity and fs-verity (`sha256_finup_2x`). Every verity
//! block is hashed with the same salt and is the same size, so pairs are always at
//! hand. Without the SHA extensions, or for a lone block, the `sha2` crate hashes.

use sha2::{Digest, Sha256};

pub(super) const DIGEST: usize = 32;

/// `H(salt ‖ block)`, one block.
pub(super) fn salted(salt: &[u8], block: &[u8]) -> [u8; DIGEST] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(block);
    h.finalize().into()
}

/// Calls `out(i, H(salt ‖ block_i))` for each `block_size` piece of `data`, in order.
/// `data` must be whole blocks.
pub(super) fn salted_blocks(
    salt: &[u8],
    data: &[u8],
    block_size: usize,
    mut out: impl FnMut(usize, [u8; DIGEST]),
) {
    debug_assert!(data.len().is_multiple_of(block_size));
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        let pairs = data.chunks_exact(2 * block_size);
        let lone = pairs.remainder();
        let n = pairs.len();
        for (p, pair) in pairs.enumerate() {
            let (a, b) = pair.split_at(block_size);
            // SAFETY: the CPU has the features `x86::salted_pair` is compiled for.
            let (da, db) = unsafe { x86::salted_pair(salt, a, b) };
            out(2 * p, da);
            out(2 * p + 1, db);
        }
        if !lone.is_empty() {
            out(2 * n, salted(salt, lone));
        }
        return;
    }
    for (i, block) in data.chunks_exact(block_size).enumerate() {
        out(i, salted(salt, block));
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::DIGEST;

    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse4.1")
            && std::arch::is_x86_feature_detected!("ssse3")
    }

    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    const H0: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];

    /// The message `salt ‖ data ‖ padding`, read 64 bytes at a time without copying
    /// the middle, where every chunk lies inside `data`.
    struct Message<'a> {
        salt: &'a [u8],
        data: &'a [u8],
        len: usize,
        padded: usize,
    }

    impl<'a> Message<'a> {
        fn new(salt: &'a [u8], data: &'a [u8]) -> Message<'a> {
            let len = salt.len() + data.len();
            Message {
                salt,
                data,
                len,
                padded: (len + 9).div_ceil(64) * 64,
            }
        }

        /// Bytes `start..start + 64` of the padded message: a pointer into `data`
        /// when they lie inside it, else assembled in `buf`.
        #[inline(always)]
        fn chunk(&self, start: usize, buf: &mut [u8; 64]) -> *const u8 {
            let s = self.salt.len();
            if start >= s && start + 64 <= self.len {
                // SAFETY: `start - s + 64 <= data.len()` by the test above.
                return unsafe { self.data.as_ptr().add(start - s) };
            }
            self.assemble(start, buf)
        }

        /// The chunks that hold salt or padding, copied together in `buf`.
        #[inline(never)]
        fn assemble(&self, start: usize, buf: &mut [u8; 64]) -> *const u8 {
            let s = self.salt.len();
            *buf = [0; 64];
            if start < s {
                let n = (s - start).min(64);
                buf[..n].copy_from_slice(&self.salt[start..start + n]);
            }
            let (from, to) = (start.max(s), (start + 64).min(self.len));
            if from < to {
                buf[from - start..to - start].copy_from_slice(&self.data[from - s..to - s]);
            }
            if (start..start + 64).contains(&self.len) {
                buf[self.len - start] = 0x80;
            }
            if start + 64 == self.padded {
                buf[56..].copy_from_slice(&((self.len as u64) * 8).to_be_bytes());
            }
            buf.as_ptr()
        }
    }

    /// `H(salt ‖ a)` and `H(salt ‖ b)`, interleaved. `a` and `b` have equal lengths.
    ///
    /// # Safety
    /// The CPU must have SHA, SSE4.1 and SSSE3 (see [`available`]).
    // The schedule updates of the last groups sit in branches that are never taken,
    // which the lint counts as unread assignments.
    #[allow(unused_assignments)]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn salted_pair(
        salt: &[u8],
        a: &[u8],
        b: &[u8],
    ) -> ([u8; DIGEST], [u8; DIGEST]) {
        assert_eq!(a.len(), b.len(), "interleaved messages differ in length");
        let (ma, mb) = (Message::new(salt, a), Message::new(salt, b));
        let bswap = _mm_set_epi64x(0x0c0d0e0f08090a0b, 0x0405060700010203);
        // The SHA instructions keep the state as ABEF and CDGH.
        let init = |h: &[u32; 8]| {
            // SAFETY: `h` is 8 words; the loads are unaligned.
            let (abcd, efgh) = unsafe {
                (
                    _mm_loadu_si128(h.as_ptr().cast()),
                    _mm_loadu_si128(h[4..].as_ptr().cast()),
                )
            };
            let cdab = _mm_shuffle_epi32(abcd, 0xB1);
            let hgfe = _mm_shuffle_epi32(efgh, 0x1B);
            (
                _mm_alignr_epi8(cdab, hgfe, 8),
                _mm_blend_epi16(hgfe, cdab, 0xF0),
            )
        };
        let (mut abef_a, mut cdgh_a) = init(&H0);
        let (mut abef_b, mut cdgh_b) = init(&H0);
        let (mut buf_a, mut buf_b) = ([0u8; 64], [0u8; 64]);
        let mut start = 0;
        while start < ma.padded {
            let (pa, pb) = (ma.chunk(start, &mut buf_a), mb.chunk(start, &mut buf_b));
            let (save_abef_a, save_cdgh_a, save_abef_b, save_cdgh_b) =
                (abef_a, cdgh_a, abef_b, cdgh_b);
            // SAFETY: each pointer is to 64 readable bytes (`Message::chunk`).
            let load = |p: *const u8, at: usize| unsafe {
                _mm_shuffle_epi8(_mm_loadu_si128(p.add(at).cast()), bswap)
            };
            let (mut a0, mut a1, mut a2, mut a3) =
                (load(pa, 0), load(pa, 16), load(pa, 32), load(pa, 48));
            let (mut b0, mut b1, mut b2, mut b3) =
                (load(pb, 0), load(pb, 16), load(pb, 32), load(pb, 48));
            // Four rounds on both messages with schedule words `cur`; `msg2` extends
            // the schedule into `next`, `msg1` starts the extension of `prev`.
            macro_rules! quad {
                ($g:literal, $cur:ident $prev:ident $next:ident,
                 $bcur:ident $bprev:ident $bnext:ident, $msg2:literal, $msg1:literal) => {{
                    // SAFETY: `K` has 64 words; `$g * 4 + 4 <= 64`.
                    let k = unsafe { _mm_loadu_si128(K[$g * 4..].as_ptr().cast()) };
                    let msg_a = _mm_add_epi32($cur, k);
                    let msg_b = _mm_add_epi32($bcur, k);
                    cdgh_a = _mm_sha256rnds2_epu32(cdgh_a, abef_a, msg_a);
                    cdgh_b = _mm_sha256rnds2_epu32(cdgh_b, abef_b, msg_b);
                    if $msg2 {
                        let t = _mm_alignr_epi8($cur, $prev, 4);
                        $next = _mm_sha256msg2_epu32(_mm_add_epi32($next, t), $cur);
                        let t = _mm_alignr_epi8($bcur, $bprev, 4);
                        $bnext = _mm_sha256msg2_epu32(_mm_add_epi32($bnext, t), $bcur);
                    }
                    abef_a = _mm_sha256rnds2_epu32(abef_a, cdgh_a, _mm_shuffle_epi32(msg_a, 0x0E));
                    abef_b = _mm_sha256rnds2_epu32(abef_b, cdgh_b, _mm_shuffle_epi32(msg_b, 0x0E));
                    if $msg1 {
                        $prev = _mm_sha256msg1_epu32($prev, $cur);
                        $bprev = _mm_sha256msg1_epu32($bprev, $bcur);
                    }
                }};
            }
            quad!(0, a0 a3 a1, b0 b3 b1, false, false);
            quad!(1, a1 a0 a2, b1 b0 b2, false, true);
            quad!(2, a2 a1 a3, b2 b1 b3, false, true);
            quad!(3, a3 a2 a0, b3 b2 b0, true, true);
            quad!(4, a0 a3 a1, b0 b3 b1, true, true);
            quad!(5, a1 a0 a2, b1 b0 b2, true, true);
            quad!(6, a2 a1 a3, b2 b1 b3, true, true);
            quad!(7, a3 a2 a0, b3 b2 b0, true, true);
            quad!(8, a0 a3 a1, b0 b3 b1, true, true);
            quad!(9, a1 a0 a2, b1 b0 b2, true, true);
            quad!(10, a2 a1 a3, b2 b1 b3, true, true);
            quad!(11, a3 a2 a0, b3 b2 b0, true, true);
            quad!(12, a0 a3 a1, b0 b3 b1, true, true);
            quad!(13, a1 a0 a2, b1 b0 b2, true, false);
            quad!(14, a2 a1 a3, b2 b1 b3, true, false);
            quad!(15, a3 a2 a0, b3 b2 b0, false, false);
            abef_a = _mm_add_epi32(abef_a, save_abef_a);
            cdgh_a = _mm_add_epi32(cdgh_a, save_cdgh_a);
            abef_b = _mm_add_epi32(abef_b, save_abef_b);
            cdgh_b = _mm_add_epi32(cdgh_b, save_cdgh_b);
            start += 64;
        }
        let digest = |abef: __m128i, cdgh: __m128i| {
            let feba = _mm_shuffle_epi32(abef, 0x1B);
            let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
            let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
            let hgfe = _mm_alignr_epi8(dchg, feba, 8);
            let bswap32 = _mm_set_epi64x(0x0c0d0e0f08090a0b, 0x0405060700010203);
            let mut out = [0u8; DIGEST];
            // SAFETY: `out` is 32 bytes; the stores are unaligned.
            unsafe {
                _mm_storeu_si128(out.as_mut_ptr().cast(), _mm_shuffle_epi8(dcba, bswap32));
                _mm_storeu_si128(
                    out[16..].as_mut_ptr().cast(),
                    _mm_shuffle_epi8(hgfe, bswap32),
                );
            }
            out
        };
        (digest(abef_a, cdgh_a), digest(abef_b, cdgh_b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every salt length from none to past a block, block sizes whose messages end
    /// at each padding case, against the `sha2` crate one block at a time.
    #[test]
    fn pairs_match_one_at_a_time_hashing() {
        let data: Vec<u8> = (0..4096 * 5).map(|i| (i * 31 % 253) as u8).collect();
        for salt_len in [0, 1, 23, 32, 55, 56, 63, 64, 65, 100, 256] {
            let salt: Vec<u8> = (0..salt_len).map(|i| (i * 7 + 3) as u8).collect();
            for bs in [1, 8, 55, 56, 64, 119, 512, 4096] {
                let n = data.len() / bs;
                let blocks = &data[..n * bs];
                let mut got = vec![[0u8; DIGEST]; n];
                salted_blocks(&salt, blocks, bs, |i, d| got[i] = d);
                let want: Vec<_> = blocks.chunks(bs).map(|b| salted(&salt, b)).collect();
                assert_eq!(got, want, "salt {salt_len} bytes, block {bs} bytes");
            }
        }
    }

    #[test]
    fn a_known_answer() {
        // sha256("abc") from FIPS 180-2, as salt "a" and two blocks "bc".
        let mut got = Vec::new();
        salted_blocks(b"a", b"bcbc", 2, |_, d| got.push(hex::encode(d)));
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(got, [abc, abc]);
    }
}
