//! A small BER reader and writer for LDAP control values.
//!
//! ldap3's own control parsers `panic!` on malformed input; a directory (or something pretending
//! to be one) must never be able to crash the agent, so every control value dirbridge reads goes
//! through this reader, which returns [`BerError`] instead. Only definite lengths and
//! single-byte tags are accepted (all LDAP control values fit that).

use thiserror::Error;

/// Malformed BER.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BerError {
    #[error("BER: input ends early")]
    Truncated,
    #[error("BER: expected tag {expected:#04x}, found {found:#04x}")]
    UnexpectedTag { expected: u8, found: u8 },
    #[error("BER: unsupported length or tag encoding")]
    Unsupported,
    #[error("BER: integer does not fit")]
    IntegerOverflow,
    #[error("BER: {0} trailing bytes")]
    Trailing(usize),
}

pub mod tag {
    pub const BOOLEAN: u8 = 0x01;
    pub const INTEGER: u8 = 0x02;
    pub const OCTET_STRING: u8 = 0x04;
    pub const ENUMERATED: u8 = 0x0a;
    pub const SEQUENCE: u8 = 0x30;
    pub const SET: u8 = 0x31;

    /// Context-specific primitive `[n]`.
    pub const fn context(n: u8) -> u8 {
        0x80 | n
    }
    /// Context-specific constructed `[n]`.
    pub const fn context_constructed(n: u8) -> u8 {
        0xa0 | n
    }
}

/// Reads consecutive TLVs out of a byte slice.
#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(input: &'a [u8]) -> Reader<'a> {
        Reader { rest: input }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Fails if anything is left.
    pub fn finish(&self) -> Result<(), BerError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(BerError::Trailing(self.rest.len()))
        }
    }

    /// The tag of the next element, if any.
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next element: (tag, contents).
    pub fn any(&mut self) -> Result<(u8, &'a [u8]), BerError> {
        let (&tag, after_tag) = self.rest.split_first().ok_or(BerError::Truncated)?;
        if tag & 0x1f == 0x1f {
            return Err(BerError::Unsupported);
        }
        let (&first, mut after_len) = after_tag.split_first().ok_or(BerError::Truncated)?;
        let len = if first < 0x80 {
            first as usize
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 {
                // 0 = indefinite length, not allowed in LDAP; more than 4 bytes is absurd here.
                return Err(BerError::Unsupported);
            }
            if after_len.len() < n {
                return Err(BerError::Truncated);
            }
            let mut len = 0usize;
            for &b in &after_len[..n] {
                len = (len << 8) | b as usize;
            }
            after_len = &after_len[n..];
            len
        };
        if after_len.len() < len {
            return Err(BerError::Truncated);
        }
        let (contents, rest) = after_len.split_at(len);
        self.rest = rest;
        Ok((tag, contents))
    }

    /// The next element, which must carry `expected`.
    pub fn expect(&mut self, expected: u8) -> Result<&'a [u8], BerError> {
        let found = self.peek_tag().ok_or(BerError::Truncated)?;
        if found != expected {
            return Err(BerError::UnexpectedTag { expected, found });
        }
        Ok(self.any()?.1)
    }

    /// The next element if it carries `tag`.
    pub fn optional(&mut self, tag: u8) -> Result<Option<&'a [u8]>, BerError> {
        if self.peek_tag() == Some(tag) {
            Ok(Some(self.any()?.1))
        } else {
            Ok(None)
        }
    }

    /// A SEQUENCE; returns a reader over its contents.
    pub fn sequence(&mut self) -> Result<Reader<'a>, BerError> {
        Ok(Reader::new(self.expect(tag::SEQUENCE)?))
    }

    pub fn integer(&mut self) -> Result<i64, BerError> {
        decode_integer(self.expect(tag::INTEGER)?)
    }

    pub fn enumerated(&mut self) -> Result<i64, BerError> {
        decode_integer(self.expect(tag::ENUMERATED)?)
    }

    pub fn octet_string(&mut self) -> Result<&'a [u8], BerError> {
        self.expect(tag::OCTET_STRING)
    }

    pub fn boolean(&mut self) -> Result<bool, BerError> {
        decode_boolean(self.expect(tag::BOOLEAN)?)
    }
}

/// Two's-complement big-endian integer contents.
pub fn decode_integer(bytes: &[u8]) -> Result<i64, BerError> {
    if bytes.is_empty() {
        return Err(BerError::Truncated);
    }
    if bytes.len() > 8 {
        return Err(BerError::IntegerOverflow);
    }
    let mut v: i64 = if bytes[0] & 0x80 != 0 { -1 } else { 0 };
    for &b in bytes {
        v = (v << 8) | b as i64;
    }
    Ok(v)
}

pub fn decode_boolean(bytes: &[u8]) -> Result<bool, BerError> {
    match bytes {
        [b] => Ok(*b != 0),
        [] => Err(BerError::Truncated),
        _ => Err(BerError::Unsupported),
    }
}

/// One TLV.
pub fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(contents.len() + 6);
    out.push(tag);
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u32).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
    out
}

/// Minimal two's-complement contents of `v`.
pub fn integer_contents(v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let b = bytes[start];
        let next_high = bytes[start + 1] & 0x80;
        if (b == 0x00 && next_high == 0) || (b == 0xff && next_high != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

pub fn integer(v: i64) -> Vec<u8> {
    tlv(tag::INTEGER, &integer_contents(v))
}

pub fn enumerated(v: i64) -> Vec<u8> {
    tlv(tag::ENUMERATED, &integer_contents(v))
}

pub fn octet_string(v: &[u8]) -> Vec<u8> {
    tlv(tag::OCTET_STRING, v)
}

pub fn boolean(v: bool) -> Vec<u8> {
    tlv(tag::BOOLEAN, &[if v { 0xff } else { 0x00 }])
}

/// A SEQUENCE of already encoded elements.
pub fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag::SEQUENCE, &parts.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_round_trip_minimally() {
        for (v, enc) in [
            (0i64, vec![0x00]),
            (127, vec![0x7f]),
            (128, vec![0x00, 0x80]),
            (-1, vec![0xff]),
            (-128, vec![0x80]),
            (1000, vec![0x03, 0xe8]),
            // The DirSync incremental-values flag 0x80000000 as a 32-bit signed value.
            (i32::MIN as i64, vec![0x80, 0x00, 0x00, 0x00]),
        ] {
            assert_eq!(integer_contents(v), enc, "{v}");
            assert_eq!(decode_integer(&enc).unwrap(), v);
        }
    }

    #[test]
    fn long_lengths() {
        let big = vec![7u8; 300];
        let enc = octet_string(&big);
        assert_eq!(&enc[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(Reader::new(&enc).octet_string().unwrap(), &big[..]);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let cases: &[&[u8]] = &[
            &[],
            &[0x30],
            &[0x30, 0x05, 0x02, 0x01],
            &[0x30, 0x80, 0x00, 0x00],
            &[0x30, 0x85, 0, 0, 0, 0, 1],
            &[0x02, 0x00],
            &[0x02, 0x09, 1, 2, 3, 4, 5, 6, 7, 8, 9],
            &[0x1f, 0x01, 0x00],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
        ];
        for c in cases {
            let mut r = Reader::new(c);
            let res = r.sequence().and_then(|mut s| s.integer());
            assert!(res.is_err(), "{c:?}");
        }
    }
}
