//! Reading H.264/H.265 parameter sets bit by bit: emulation prevention removal and an MSB-first
//! bit reader with Exp-Golomb codes. Every read is bounds-checked and returns an error, never
//! panics, whatever the publisher sent.

/// Why a read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitError {
    /// The data ended before the field.
    Truncated,
    /// An Exp-Golomb code with more than 31 leading zeros (no valid field is that long).
    ExpGolombTooLong,
}

/// Removes emulation prevention bytes (00 00 03 → 00 00).
pub fn unescape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// MSB-first reader over an RBSP (emulation prevention already removed).
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub fn bit(&mut self) -> Result<bool, BitError> {
        let byte = self.data.get(self.pos / 8).ok_or(BitError::Truncated)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// `n` bits (at most 32) as an unsigned number.
    pub fn bits(&mut self, n: u32) -> Result<u32, BitError> {
        let mut v = 0u64;
        for _ in 0..n.min(32) {
            v = (v << 1) | u64::from(self.bit()?);
        }
        Ok(v as u32)
    }

    /// Skips `n` bits.
    pub fn skip(&mut self, n: usize) -> Result<(), BitError> {
        let end = self.pos.checked_add(n).ok_or(BitError::Truncated)?;
        if end > self.data.len().saturating_mul(8) {
            return Err(BitError::Truncated);
        }
        self.pos = end;
        Ok(())
    }

    /// Unsigned Exp-Golomb code.
    pub fn ue(&mut self) -> Result<u32, BitError> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(BitError::ExpGolombTooLong);
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }

    /// Signed Exp-Golomb code.
    pub fn se(&mut self) -> Result<i64, BitError> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_removes_emulation_prevention() {
        assert_eq!(unescape(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
    }

    #[test]
    fn reads_past_the_end_are_errors() {
        let mut r = BitReader::new(&[0b1010_0000]);
        assert_eq!(r.bits(3), Ok(0b101));
        assert_eq!(r.skip(5), Ok(()));
        assert_eq!(r.bit(), Err(BitError::Truncated));
        assert_eq!(r.skip(usize::MAX), Err(BitError::Truncated));
        assert_eq!(
            BitReader::new(&[0, 0, 0, 0, 0]).ue(),
            Err(BitError::ExpGolombTooLong)
        );
    }
}
