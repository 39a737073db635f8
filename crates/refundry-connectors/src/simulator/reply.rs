//! Answers as a CUP POS host writes them: the request's identifying fields
//! echoed, the host's own fields (time, date, response code) added.

use refundry_iso8583::{Message, Mti, Tpdu};

/// Fields an answer copies from its request. 61 and the MAC are not
/// echoed; 37 and 38 are the host's own.
const ECHOED: &[u8] = &[3, 4, 11, 25, 41, 42, 49, 60];

/// The answer to `request` with `code` in field 39; `None` when the
/// request's type has no answer (it is itself an answer).
pub(super) fn answer(request: &Message, code: &str) -> Option<Message> {
    let mut m = Message::new(response_mti(request.mti)?);
    m.tpdu = request.tpdu.map(Tpdu::reply);
    m.header = request.header.clone();
    for &n in ECHOED {
        if let Some(v) = request.get(n) {
            m.fields.insert(n, v.clone());
        }
    }
    let (time, date) = local_time_and_date();
    m.set_text(12, time).set_text(13, date).set_text(39, code);
    Some(m)
}

/// 0200 → 0210, 0220 and its repeat 0221 → 0230, 0400 → 0410, 0800 → 0810.
fn response_mti(request: Mti) -> Option<Mti> {
    let [a, b, c, _] = request.digits();
    let c = match c {
        b'0' => b'1',
        b'2' => b'3',
        _ => return None,
    };
    Mti::from_digits([a, b, c, b'0']).ok()
}

/// hhmmss and MMDD in China Standard Time (UTC+8 all year), as CUP hosts
/// stamp fields 12 and 13.
fn local_time_and_date() -> (String, String) {
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8)));
    (now.strftime("%H%M%S").to_string(), now.strftime("%m%d").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_echo_the_request_and_swap_the_tpdu() {
        let mut request = Message::new(Mti::parse("0221").unwrap());
        request.tpdu = Some(Tpdu::new([0, 3], [0, 0]));
        request.header = vec![0x60, 0x31, 0, 0x31, 0, 0];
        request.set_text(11, "000101").set_text(41, "12345678").set_text(61, "000006000042");
        let a = answer(&request, "00").unwrap();
        assert_eq!(a.mti, Mti::FINANCIAL_ADVICE_RESPONSE);
        assert_eq!(a.tpdu, Some(Tpdu::new([0, 0], [0, 3])));
        assert_eq!((a.text(11), a.text(41), a.text(39)), (Some("000101"), Some("12345678"), Some("00")));
        assert!(!a.has(61));
        assert_eq!(a.text(12).map(str::len), Some(6));
        assert_eq!(a.text(13).map(str::len), Some(4));
        assert!(answer(&a, "00").is_none(), "an answer is not answered");
    }
}
