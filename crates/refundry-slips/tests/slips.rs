//! Golden slips, and the promises every slip keeps whatever it holds: it
//! fits the paper, shows no full card number, and its PDF stays small.

use jiff::tz::TimeZone;
use refundry_core::card::{First6, Last4, contains_card_number};
use refundry_core::ids::RefundId;
use refundry_core::money::{Currency, Money};
use refundry_core::refund::{RefundStatus, RefundType};
use refundry_core::sale::{CardBrand, Wallet};
use refundry_slips::{Locale, OriginalSale, Slip, SlipItem, Tender, Width, escpos, pdf, text};
use std::sync::atomic::{AtomicUsize, Ordering};
use unicode_width::UnicodeWidthStr;

const WIDTHS: [Width; 2] = [Width::Mm58, Width::Mm80];
const LOCALES: [Locale; 2] = [Locale::Zh, Locale::En];

fn item(name: &str, quantity: u32, amount_minor: i64) -> SlipItem {
    SlipItem { name: name.into(), quantity, amount_minor }
}

/// A partial refund of a UnionPay card sale, approved by a supervisor.
fn card_refund(locale: Locale) -> Slip {
    Slip {
        merchant_name: "上海鲜果坊食品有限公司".into(),
        store_name: "徐汇店 Xuhui Store".into(),
        terminal_id: "T0012345".into(),
        refund_id: RefundId::parse("re_0193a1b2c3d47e8f9a0b1c2d3e4f5a6b").unwrap(),
        refund_type: RefundType::Refund,
        status: RefundStatus::Succeeded,
        amount: Money::new(3000, Currency::CNY),
        reason: "商品质量问题（包装破损），顾客要求退货".into(),
        items: vec![
            item("农夫山泉天然饮用水 550ml×24瓶 整箱装（限时特惠）", 1, 1800),
            item("Coca-Cola 可口可乐 330ml", 2, 600),
            item("Fresh strawberries, Dandong, 500 g punnet", 1, 600),
        ],
        original: OriginalSale {
            voucher_no: Some("000123".into()),
            rrn: Some("123456789012".into()),
            auth_code: Some("654321".into()),
            batch_no: Some("000001".into()),
            captured_at: "2026-11-20T02:15:00Z".parse().unwrap(),
        },
        tender: Tender::Card {
            brand: CardBrand::UnionPay,
            first6: First6::parse("622202").unwrap(),
            last4: Last4::parse("0128").unwrap(),
        },
        created_at: "2026-11-26T10:00:00Z".parse().unwrap(),
        completed_at: Some("2026-11-26T10:00:07Z".parse().unwrap()),
        operator: "王芳 cashier-01".into(),
        approver: Some("李强 supervisor-02".into()),
        customer_contact_masked: Some("138****8000".into()),
        time_zone: TimeZone::get("Asia/Shanghai").unwrap(),
        locale,
    }
}

/// A whole-sale void, still processing, with no items and no approver.
fn card_void(locale: Locale) -> Slip {
    Slip {
        refund_type: RefundType::Void,
        status: RefundStatus::Processing,
        amount: Money::new(12800, Currency::CNY),
        reason: String::new(),
        items: Vec::new(),
        completed_at: None,
        approver: None,
        customer_contact_masked: None,
        ..card_refund(locale)
    }
}

/// A WeChat Pay refund: no card, no POS references.
fn wallet_refund(locale: Locale) -> Slip {
    Slip {
        tender: Tender::Wallet(Wallet::WechatPay),
        original: OriginalSale {
            voucher_no: None,
            rrn: None,
            auth_code: None,
            batch_no: None,
            captured_at: "2026-11-25T12:00:00Z".parse().unwrap(),
        },
        ..card_refund(locale)
    }
}

/// Everything too long: names past any line, a huge amount, Latin words
/// longer than the paper, narrow characters a printer prints wide.
fn overlong(locale: Locale) -> Slip {
    let long_name = "超长商品名称".repeat(12) + " Supercalifragilisticexpialidocious-extra-long-sku-name·é—×";
    Slip {
        merchant_name: "鲜".repeat(40),
        store_name: "Store ".repeat(20),
        terminal_id: "T".repeat(60),
        amount: Money::new(9_999_999_999_999, Currency::CNY),
        reason: long_name.clone(),
        items: vec![item(&long_name, 100_000, 9_999_999_999_999), item("短", 1, 1), item("最多", u32::MAX, i64::MAX)],
        operator: "操作员".repeat(20),
        approver: Some("A".repeat(100)),
        customer_contact_masked: Some("w***@a-very-long-domain-name-for-a-customer.example.cn".into()),
        ..card_refund(locale)
    }
}

fn all_slips() -> Vec<Slip> {
    LOCALES.iter().flat_map(|&l| [card_refund(l), card_void(l), wallet_refund(l), overlong(l)]).collect()
}

/// Bytes as readable text: printable ASCII as is, LF as `\n` and a line
/// break, everything else (commands, GB18030 codes) as `\xNN`.
fn escaped(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        match b {
            b'\n' => out.push_str("\\n\n"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// The text an ESC/POS job prints: commands dropped, GB18030 decoded.
fn printed_text(bytes: &[u8]) -> String {
    let mut plain = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            0x1b | 0x1c if bytes.get(i + 1).is_some_and(|b| matches!(b, b'@' | b'&')) => i += 2,
            0x1b | 0x1d if bytes.get(i + 1) == Some(&b'V') => i += 4,
            0x1b | 0x1d => i += 3,
            b => {
                plain.push(b);
                i += 1;
            }
        }
    }
    let (text, _, had_errors) = encoding_rs::GB18030.decode(&plain);
    assert!(!had_errors);
    text.into_owned()
}

#[test]
fn the_58mm_chinese_slip_matches_its_golden_copy() {
    insta::assert_snapshot!(text(&card_refund(Locale::Zh), Width::Mm58));
}

#[test]
fn the_80mm_chinese_slip_matches_its_golden_copy() {
    insta::assert_snapshot!(text(&card_refund(Locale::Zh), Width::Mm80));
}

#[test]
fn the_58mm_english_slip_matches_its_golden_copy() {
    insta::assert_snapshot!(text(&card_refund(Locale::En), Width::Mm58));
}

#[test]
fn the_80mm_english_slip_matches_its_golden_copy() {
    insta::assert_snapshot!(text(&card_refund(Locale::En), Width::Mm80));
}

#[test]
fn a_void_in_progress_matches_its_golden_copy() {
    insta::assert_snapshot!(text(&card_void(Locale::Zh), Width::Mm58));
}

#[test]
fn a_wallet_refund_matches_its_golden_copy() {
    insta::assert_snapshot!(text(&wallet_refund(Locale::En), Width::Mm80));
}

#[test]
fn the_58mm_chinese_escpos_bytes_match_their_golden_copy() {
    insta::assert_snapshot!(escaped(&escpos(&card_refund(Locale::Zh), Width::Mm58)));
}

#[test]
fn the_80mm_english_escpos_bytes_match_their_golden_copy() {
    insta::assert_snapshot!(escaped(&escpos(&card_refund(Locale::En), Width::Mm80)));
}

#[test]
fn every_line_fits_the_paper() {
    for slip in all_slips() {
        for width in WIDTHS {
            let columns = width.columns();
            for line in text(&slip, width).lines() {
                assert!(line.width() <= columns, "{} > {columns}: {line:?}", line.width());
                // and as a printer in Chinese mode counts: non-ASCII is two
                let printed: usize = line.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum();
                assert!(printed <= columns, "{printed} > {columns}: {line:?}");
            }
        }
    }
}

#[test]
fn the_printer_prints_the_text_slip_line_for_line() {
    for slip in all_slips() {
        for width in WIDTHS {
            let printed = printed_text(&escpos(&slip, width));
            let expected: Vec<String> = text(&slip, width).lines().map(|l| l.to_owned()).collect();
            let printed: Vec<&str> = printed.lines().collect();
            assert_eq!(printed.len(), expected.len());
            for (p, e) in printed.iter().zip(&expected) {
                // a title is centred by the printer, not by spaces
                assert!(p == e || p == &e.trim_start(), "{p:?} printed for {e:?}");
            }
        }
    }
}

#[test]
fn a_print_job_resets_the_printer_enters_chinese_mode_and_ends_with_a_partial_cut() {
    let bytes = escpos(&card_refund(Locale::Zh), Width::Mm80);
    assert!(bytes.starts_with(b"\x1b@\x1c&"));
    assert!(bytes.ends_with(b"\n\x1dVB\x00"));
    // the title: centred, double size, bold, then everything back to normal
    let title = b"\x1ba\x01\x1d!\x11\x1bE\x01";
    let at = bytes.windows(title.len()).position(|w| w == title).unwrap();
    let (gb, _, _) = encoding_rs::GB18030.encode("退款单据\n\x1bE\x00\x1d!\x00\x1ba\x00");
    assert!(bytes[at + title.len()..].starts_with(&gb));
}

#[test]
fn control_characters_in_caller_text_cannot_reach_the_printer() {
    let mut slip = card_refund(Locale::Zh);
    slip.merchant_name = "鲜果坊\x1d\x56\x00\x1b@".into();
    slip.items[0].name = "水\x1bE\x01\r\n整箱".into();
    let mut clean = card_refund(Locale::Zh);
    clean.merchant_name = "鲜果坊V@".into();
    clean.items[0].name = "水E 整箱".into();
    assert_eq!(escpos(&slip, Width::Mm58), escpos(&clean, Width::Mm58));
}

#[test]
fn no_form_shows_a_full_card_number() {
    let mut slip = card_refund(Locale::Zh);
    // a cashier typing the card number into free text
    slip.reason = "卡号 6222 0212 3456 7890 128 退款".into();
    slip.items[1].name = "４１１１１１１１１１１１１１１１".into();
    slip.operator = "4111-1111-1111-1111".into();
    for width in WIDTHS {
        let shown = text(&slip, width);
        assert!(!contains_card_number(&shown), "{shown}");
        assert!(shown.contains("622202******0128"));
        assert!(!contains_card_number(&printed_text(&escpos(&slip, width))));
    }
    for slip in all_slips() {
        assert!(!contains_card_number(&text(&slip, Width::Mm80)));
    }
    if let Some(pdf_text) = pdftotext(&pdf(&slip).unwrap()) {
        assert!(!contains_card_number(&pdf_text), "{pdf_text}");
        assert!(pdf_text.contains("622202******0128"), "{pdf_text}");
    }
}

#[test]
fn the_pdf_is_small_and_carries_the_slip_text() {
    let slip = card_refund(Locale::Zh);
    let bytes = pdf(&slip).unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    assert!(bytes.len() < 100 * 1024, "{} bytes", bytes.len());
    println!("slip PDF: {} bytes", bytes.len());
    // the same slip renders to the same bytes
    assert_eq!(bytes, pdf(&slip).unwrap());
    let Some(found) = pdftotext(&bytes) else {
        println!("pdftotext not found (Debian: poppler-utils); not checking the PDF's text");
        return;
    };
    for word in ["退款单据", "退款金额", "￥30.00", "农夫山泉", "000123", "123456789012", "持卡人签名"]
    {
        assert!(found.contains(word), "{word} not in:\n{found}");
    }
}

#[test]
fn english_and_overlong_slips_render_as_pdf_too() {
    for slip in [card_refund(Locale::En), wallet_refund(Locale::Zh), overlong(Locale::Zh), overlong(Locale::En)] {
        let bytes = pdf(&slip).unwrap();
        assert!(bytes.len() < 100 * 1024, "{} bytes", bytes.len());
    }
    if let Some(found) = pdftotext(&pdf(&card_refund(Locale::En)).unwrap()) {
        assert!(found.contains("30.00 CNY"), "{found}");
    }
}

/// The PDF's text as poppler extracts it, or None where poppler-utils is
/// not installed.
fn pdftotext(pdf: &[u8]) -> Option<String> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let file = std::env::temp_dir().join(format!("refundry-slips-{}-{n}.pdf", std::process::id()));
    std::fs::write(&file, pdf).unwrap();
    let out = std::process::Command::new("pdftotext").args(["-layout", "-enc", "UTF-8"]).arg(&file).arg("-").output();
    let _ = std::fs::remove_file(&file);
    let out = out.ok()?;
    assert!(out.status.success(), "pdftotext failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8(out.stdout).unwrap())
}
