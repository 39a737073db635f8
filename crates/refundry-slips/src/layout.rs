//! The slip as lines of a fixed number of columns. Text, ESC/POS and PDF
//! all print these same lines, so the three forms cannot drift apart.

use crate::slip::{Locale, Slip, Tender};
use crate::words::{self, Phrase};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use refundry_core::card::{MaskedCard, contains_card_number};
use refundry_core::money::Money;
use unicode_width::UnicodeWidthChar;

/// How a line is printed. The text is already laid out; only emphasis differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Plain,
    /// Bold.
    Strong,
    /// Double size. Its text is at most half the columns wide.
    Title,
    /// A separator made of dashes.
    Rule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub style: Style,
    pub text: String,
}

/// Columns a character takes on the paper. A printer in Chinese mode
/// prints every multi-byte GB18030 character from its 24-dot font, so
/// everything outside ASCII is two columns, even characters Unicode calls
/// narrow (·, é, —). Never less than Unicode's own width.
pub(crate) fn char_cols(c: char) -> usize {
    if c.is_ascii() { 1 } else { 2 }
}

pub(crate) fn cols(s: &str) -> usize {
    s.chars().map(char_cols).sum()
}

/// Makes caller text safe to print. Control characters go (an ESC in a
/// product name would otherwise be a printer command), as do zero-width
/// ones (the printer would give them two columns); runs of whitespace become
/// one space. Full-width digits become ASCII so the card-number check sees
/// them, and text that holds a full card number has its digits starred out.
pub(crate) fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = match c {
            '０'..='９' => char::from(b'0' + (u32::from(c) - u32::from('０')) as u8),
            c if c.is_whitespace() && c != '\u{3000}' => ' ',
            c => c,
        };
        let printable = c == ' ' || c.width().is_some_and(|w| w > 0);
        if printable && !(c == ' ' && (out.is_empty() || out.ends_with(' '))) {
            out.push(c);
        }
    }
    let trimmed_len = out.trim_end().len();
    out.truncate(trimmed_len);
    if contains_card_number(&out) {
        out = out.chars().map(|c| if c.is_ascii_digit() { '*' } else { c }).collect();
    }
    out
}

/// Characters that may not start a line (closing punctuation) and that may
/// not end one (opening punctuation), after the usual Chinese rules (禁则).
const NO_LINE_START: &str = "，。、；：！？）》」』】〕〉”’…,.;:!?)]}%";
const NO_LINE_END: &str = "（《「『【〔〈“‘([{";

/// Pieces that a line may break between, each with whether a space came
/// before it: an ASCII word stays whole, a hanzi stands alone.
fn tokens(text: &str) -> Vec<(bool, String)> {
    let mut out: Vec<(bool, String)> = Vec::new();
    let mut space = false;
    for c in text.chars() {
        if c == ' ' {
            space = true;
            continue;
        }
        match out.last_mut() {
            Some((_, last)) if !space => {
                let prev = last.chars().next_back().unwrap_or(' ');
                if (prev.is_ascii() && c.is_ascii()) || NO_LINE_START.contains(c) || NO_LINE_END.contains(prev) {
                    last.push(c);
                } else {
                    out.push((false, c.to_string()));
                }
            }
            _ => out.push((space && !out.is_empty(), c.to_string())),
        }
        space = false;
    }
    out
}

/// Breaks text into lines of at most `width` columns: between words and
/// between hanzi, and inside a word only when the word is longer than a
/// line. Never inside a character, so a double-width character is never
/// cut at the paper's edge.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(2);
    let mut lines = Vec::new();
    let mut line = String::new();
    for (space_before, token) in tokens(text) {
        let gap = usize::from(space_before && !line.is_empty());
        if cols(&line) + gap + cols(&token) <= width {
            if gap == 1 {
                line.push(' ');
            }
            line.push_str(&token);
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        for c in token.chars() {
            if cols(&line) + char_cols(c) > width {
                lines.push(std::mem::take(&mut line));
            }
            line.push(c);
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

fn spaces(n: usize) -> String {
    " ".repeat(n)
}

/// Lines being laid out for a given paper width.
struct Sheet {
    cols: usize,
    lines: Vec<Line>,
}

impl Sheet {
    fn push(&mut self, style: Style, text: String) {
        self.lines.push(Line { style, text: text.trim_end().to_owned() });
    }

    fn blank(&mut self) {
        self.push(Style::Plain, String::new());
    }

    fn rule(&mut self) {
        self.push(Style::Rule, "-".repeat(self.cols));
    }

    fn centered(&mut self, style: Style, text: &str) {
        // a title prints at double width, so it has half the columns
        let room = if style == Style::Title { self.cols / 2 } else { self.cols };
        for part in wrap(text, room) {
            let pad = (self.cols - cols(&part)) / 2;
            self.push(style, format!("{}{part}", spaces(pad)));
        }
    }

    fn left(&mut self, style: Style, text: &str) {
        for part in wrap(text, self.cols) {
            self.push(style, part);
        }
    }

    /// `label      value` with the value against the right edge; a value
    /// that does not fit beside its label goes under it, and one longer
    /// than a line is wrapped and indented.
    fn row(&mut self, style: Style, label: &str, value: &str) {
        let (lw, vw) = (cols(label), cols(value));
        if lw + 1 + vw <= self.cols {
            self.push(style, format!("{label}{}{value}", spaces(self.cols - lw - vw)));
            return;
        }
        self.left(style, label);
        if vw <= self.cols {
            self.push(style, format!("{}{value}", spaces(self.cols - vw)));
        } else {
            for part in wrap(value, self.cols - 2) {
                self.push(style, format!("  {part}"));
            }
        }
    }

    /// An item: its name wrapped on the left, quantity and amount on the
    /// right of its first line. Further lines of the name are indented, so
    /// they cannot be taken for an item of their own.
    fn item(&mut self, name: &str, right: &str) {
        let rw = cols(right);
        // a name column narrower than this is unreadable: amounts go under it
        if rw + 1 + 8 > self.cols {
            self.left(Style::Plain, name);
            for part in wrap(right, self.cols) {
                self.push(Style::Plain, pad_left(&part, self.cols));
            }
            return;
        }
        let mut parts = wrap(name, self.cols - rw - 3).into_iter();
        let first = parts.next().unwrap_or_default();
        self.push(Style::Plain, format!("{first}{}{right}", spaces(self.cols - cols(&first) - rw)));
        for part in parts {
            self.push(Style::Plain, format!("  {part}"));
        }
    }
}

fn time(ts: Timestamp, tz: &TimeZone) -> String {
    ts.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

fn pad_left(s: &str, width: usize) -> String {
    format!("{}{s}", spaces(width.saturating_sub(cols(s))))
}

/// The slip, line by line, for paper `cols` columns wide.
pub(crate) fn build(slip: &Slip, cols: usize) -> Vec<Line> {
    let locale = slip.locale;
    let t = |phrase: Phrase| phrase.show(locale);
    let mut sheet = Sheet { cols, lines: Vec::with_capacity(64) };

    sheet.centered(Style::Strong, &clean(&slip.merchant_name));
    sheet.centered(Style::Plain, &clean(&slip.store_name));
    sheet.blank();
    match locale {
        Locale::Zh => {
            sheet.centered(Style::Title, words::TITLE.zh);
            sheet.centered(Style::Plain, words::TITLE.en);
        }
        Locale::En => sheet.centered(Style::Title, words::TITLE.en),
    }
    sheet.rule();
    sheet.row(Style::Plain, &t(words::TERMINAL), &clean(&slip.terminal_id));
    sheet.row(Style::Plain, &t(words::OPERATOR), &clean(&slip.operator));
    sheet.row(Style::Strong, &t(words::TYPE), &t(words::refund_type(slip.refund_type)));
    sheet.row(Style::Plain, &t(words::STATUS), &t(words::status(slip.status)));
    sheet.row(Style::Plain, &t(words::REFUND_NO), &slip.refund_id.to_string());
    match &slip.tender {
        Tender::Card { brand, first6, last4 } => {
            sheet.row(Style::Plain, &t(words::CARD), &MaskedCard { first6, last4 }.to_string());
            sheet.row(Style::Plain, &t(words::SCHEME), &t(words::brand(*brand)));
        }
        Tender::Wallet(wallet) => sheet.row(Style::Plain, &t(words::PAID_WITH), &t(words::wallet(*wallet))),
        Tender::Cash => sheet.row(Style::Plain, &t(words::PAID_WITH), &t(words::CASH)),
    }

    sheet.rule();
    sheet.left(Style::Strong, &t(words::ORIGINAL));
    let original = &slip.original;
    let references = [
        (words::VOUCHER, &original.voucher_no),
        (words::RRN, &original.rrn),
        (words::AUTH_CODE, &original.auth_code),
        (words::BATCH, &original.batch_no),
    ];
    for (phrase, value) in references {
        if let Some(value) = value {
            sheet.row(Style::Plain, &t(phrase), &clean(value));
        }
    }
    sheet.row(Style::Plain, &t(words::SALE_TIME), &time(original.captured_at, &slip.time_zone));

    if !slip.items.is_empty() {
        sheet.rule();
        sheet.left(Style::Strong, &t(words::ITEMS));
        let rights: Vec<(String, String)> = slip
            .items
            .iter()
            .map(|i| {
                (format!("x{}", i.quantity), words::money(Money::new(i.amount_minor, slip.amount.currency), locale))
            })
            .collect();
        let qty_cols = rights.iter().map(|(q, _)| q.len()).max().unwrap_or(0);
        let amount_cols = rights.iter().map(|(_, a)| self::cols(a)).max().unwrap_or(0);
        for (item, (qty, amount)) in slip.items.iter().zip(&rights) {
            // two spaces: digits joined by one space could read as a card number
            let right = format!("{}  {}", pad_left(qty, qty_cols), pad_left(amount, amount_cols));
            sheet.item(&clean(&item.name), &right);
        }
    }

    sheet.rule();
    sheet.row(Style::Strong, &t(words::AMOUNT), &words::money(slip.amount, locale));
    let reason = clean(&slip.reason);
    if !reason.is_empty() {
        sheet.row(Style::Plain, &t(words::REASON), &reason);
    }
    sheet.row(Style::Plain, &t(words::REQUESTED), &time(slip.created_at, &slip.time_zone));
    if let Some(done) = slip.completed_at {
        sheet.row(Style::Plain, &t(words::COMPLETED), &time(done, &slip.time_zone));
    }
    if let Some(approver) = &slip.approver {
        sheet.row(Style::Plain, &t(words::APPROVER), &clean(approver));
    }
    if let Some(contact) = &slip.customer_contact_masked {
        sheet.row(Style::Plain, &t(words::CONTACT), &clean(contact));
    }

    sheet.rule();
    let signature = match slip.tender {
        Tender::Card { .. } => words::CARDHOLDER_SIGNATURE,
        _ => words::CUSTOMER_SIGNATURE,
    };
    sheet.left(Style::Plain, &format!("{}:", t(signature)));
    sheet.blank();
    sheet.blank();
    sheet.push(Style::Plain, "_".repeat(cols));
    if locale == Locale::Zh {
        sheet.left(Style::Plain, words::CONFIRM.zh);
    }
    sheet.left(Style::Plain, words::CONFIRM.en);
    sheet.lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hanzi_take_two_columns_and_so_does_every_other_non_ascii_character() {
        assert_eq!(cols("退款 ab"), 7);
        assert_eq!(cols("·é"), 4);
        for c in ['退', '·', 'é', '￥', 'a'] {
            assert!(char_cols(c) >= c.width().unwrap_or(0));
        }
    }

    #[test]
    fn wrapping_never_splits_a_double_width_character_across_the_edge() {
        // 5 columns hold two hanzi and leave one empty, never half a third
        assert_eq!(wrap("退款单据凭证", 5), ["退款", "单据", "凭证"]);
        assert_eq!(wrap("a退款", 2), ["a", "退", "款"]);
    }

    #[test]
    fn latin_text_breaks_between_words() {
        assert_eq!(wrap("Coca-Cola Zero 330ml can", 15), ["Coca-Cola Zero", "330ml can"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 10), [""]);
    }

    #[test]
    fn closing_punctuation_never_starts_a_line() {
        assert_eq!(wrap("包装破损，退货", 8), ["包装破", "损，退货"]);
        assert_eq!(wrap("退货（破损）", 6), ["退货", "（破", "损）"]);
    }

    #[test]
    fn rows_put_values_against_the_right_edge_or_under_their_label() {
        let mut sheet = Sheet { cols: 20, lines: Vec::new() };
        sheet.row(Style::Plain, "卡号 Card", "1234");
        sheet.row(Style::Plain, "退款单号 Refund No.", "re_0123456789");
        sheet.row(Style::Plain, "Ref", "a very long value that wraps");
        let texts: Vec<&str> = sheet.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "卡号 Card       1234",
                "退款单号 Refund No.",
                "       re_0123456789",
                "Ref",
                "  a very long value",
                "  that wraps"
            ]
        );
    }

    #[test]
    fn cleaning_drops_control_and_zero_width_characters() {
        assert_eq!(clean("  鲜果\x1b@坊\u{200b}\t\n store  "), "鲜果@坊 store");
    }

    #[test]
    fn full_card_numbers_in_free_text_are_starred_out() {
        assert_eq!(clean("card 4111 1111 1111 1111"), "card **** **** **** ****");
        assert_eq!(clean("卡号４１１１１１１１１１１１１１１１"), "卡号****************");
        assert_eq!(clean("凭证 000123"), "凭证 000123");
    }
}
