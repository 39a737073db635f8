//! Packed BCD: two nibbles a byte. Which nibbles mean what (digits, the
//! track separator) is the codec's business; this module only packs.

use crate::spec::Justify;

/// Packs nibbles (each 0..=15) two a byte. An odd count gets `pad` on the
/// side `justify` leaves free.
pub(crate) fn pack(nibbles: &[u8], justify: Justify, pad: u8) -> Vec<u8> {
    let odd = nibbles.len() % 2 == 1;
    let mut all = Vec::with_capacity(nibbles.len() + 1);
    if odd && justify == Justify::Right {
        all.push(pad);
    }
    all.extend_from_slice(nibbles);
    if odd && justify == Justify::Left {
        all.push(pad);
    }
    all.chunks_exact(2).map(|p| (p[0] & 0x0f) << 4 | (p[1] & 0x0f)).collect()
}

/// The `count` nibbles of `bytes` (which must be `count.div_ceil(2)` long)
/// and, for an odd count, the pad nibble that was found.
pub(crate) fn unpack(bytes: &[u8], count: usize, justify: Justify) -> (Vec<u8>, Option<u8>) {
    let mut all: Vec<u8> = bytes.iter().flat_map(|b| [b >> 4, b & 0x0f]).collect();
    if count.is_multiple_of(2) || all.is_empty() {
        all.truncate(count);
        return (all, None);
    }
    match justify {
        Justify::Left => {
            let pad = all.pop();
            (all, pad)
        }
        Justify::Right => {
            let pad = all.remove(0);
            (all, Some(pad))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_counts_need_no_padding() {
        assert_eq!(pack(&[1, 2, 3, 4], Justify::Left, 0), [0x12, 0x34]);
        assert_eq!(pack(&[1, 2, 3, 4], Justify::Right, 0), [0x12, 0x34]);
        assert_eq!(unpack(&[0x12, 0x34], 4, Justify::Right), (vec![1, 2, 3, 4], None));
    }

    #[test]
    fn odd_counts_pad_on_the_free_side() {
        assert_eq!(pack(&[1, 2, 3], Justify::Left, 0), [0x12, 0x30]);
        assert_eq!(pack(&[1, 2, 3], Justify::Right, 0), [0x01, 0x23]);
        assert_eq!(pack(&[1, 2, 3], Justify::Left, 0xf), [0x12, 0x3f]);
        assert_eq!(pack(&[7], Justify::Right, 0xf), [0xf7]);
    }

    #[test]
    fn unpacking_returns_the_pad_it_found() {
        assert_eq!(unpack(&[0x12, 0x30], 3, Justify::Left), (vec![1, 2, 3], Some(0)));
        assert_eq!(unpack(&[0x01, 0x23], 3, Justify::Right), (vec![1, 2, 3], Some(0)));
        assert_eq!(unpack(&[0x12, 0x3f], 3, Justify::Left), (vec![1, 2, 3], Some(0xf)));
        assert_eq!(unpack(&[], 0, Justify::Left), (vec![], None));
    }
}
