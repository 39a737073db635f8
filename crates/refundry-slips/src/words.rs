//! Every word a slip prints, in Chinese and English. One table, so a label
//! cannot exist in one language only.

use crate::slip::Locale;
use refundry_core::money::{Currency, Money};
use refundry_core::refund::{RefundStatus, RefundType};
use refundry_core::sale::{CardBrand, Wallet};

/// A phrase in both languages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Phrase {
    pub zh: &'static str,
    pub en: &'static str,
}

const fn p(zh: &'static str, en: &'static str) -> Phrase {
    Phrase { zh, en }
}

impl Phrase {
    /// Chinese slips show both, Chinese first; a word that is the same in
    /// both (Visa) is shown once.
    pub fn show(self, locale: Locale) -> String {
        match locale {
            Locale::En => self.en.to_owned(),
            Locale::Zh if self.zh == self.en => self.zh.to_owned(),
            Locale::Zh => format!("{} {}", self.zh, self.en),
        }
    }
}

pub(crate) const TITLE: Phrase = p("退款单据", "REFUND SLIP");
pub(crate) const TERMINAL: Phrase = p("终端号", "Terminal");
pub(crate) const OPERATOR: Phrase = p("操作员", "Operator");
pub(crate) const TYPE: Phrase = p("交易类型", "Type");
pub(crate) const STATUS: Phrase = p("状态", "Status");
pub(crate) const REFUND_NO: Phrase = p("退款单号", "Refund No.");
pub(crate) const CARD: Phrase = p("卡号", "Card");
pub(crate) const SCHEME: Phrase = p("卡组织", "Card scheme");
pub(crate) const PAID_WITH: Phrase = p("支付方式", "Paid with");
pub(crate) const CASH: Phrase = p("现金", "Cash");
pub(crate) const ORIGINAL: Phrase = p("原交易", "Original sale");
pub(crate) const VOUCHER: Phrase = p("凭证号", "Voucher No.");
pub(crate) const RRN: Phrase = p("参考号", "Ref. No.");
pub(crate) const AUTH_CODE: Phrase = p("授权码", "Auth code");
pub(crate) const BATCH: Phrase = p("批次号", "Batch No.");
pub(crate) const SALE_TIME: Phrase = p("交易时间", "Sale time");
pub(crate) const ITEMS: Phrase = p("退货商品", "Items returned");
pub(crate) const AMOUNT: Phrase = p("退款金额", "Refund amount");
pub(crate) const REASON: Phrase = p("退款原因", "Reason");
pub(crate) const REQUESTED: Phrase = p("申请时间", "Requested");
pub(crate) const COMPLETED: Phrase = p("完成时间", "Completed");
pub(crate) const APPROVER: Phrase = p("审批人", "Approved by");
pub(crate) const CONTACT: Phrase = p("联系方式", "Contact");
pub(crate) const CARDHOLDER_SIGNATURE: Phrase = p("持卡人签名", "Customer signature");
pub(crate) const CUSTOMER_SIGNATURE: Phrase = p("顾客签名", "Customer signature");
pub(crate) const CONFIRM: Phrase = p("本人确认以上退款交易。", "I confirm the refund above.");

pub(crate) fn refund_type(t: RefundType) -> Phrase {
    match t {
        RefundType::Void => p("撤销", "Void"),
        RefundType::Refund => p("退货", "Refund"),
    }
}

pub(crate) fn status(s: RefundStatus) -> Phrase {
    match s {
        RefundStatus::RequiresApproval => p("待审批", "Awaiting approval"),
        RefundStatus::Pending => p("待处理", "Pending"),
        RefundStatus::Processing => p("处理中", "Processing"),
        RefundStatus::Succeeded => p("成功", "Succeeded"),
        RefundStatus::Failed => p("失败", "Failed"),
        RefundStatus::Rejected => p("已拒绝", "Rejected"),
        RefundStatus::Expired => p("已过期", "Expired"),
        RefundStatus::Canceled => p("已取消", "Canceled"),
    }
}

pub(crate) fn brand(b: CardBrand) -> Phrase {
    match b {
        CardBrand::UnionPay => p("银联", "UnionPay"),
        CardBrand::Visa => p("Visa", "Visa"),
        CardBrand::Mastercard => p("万事达", "Mastercard"),
        CardBrand::Amex => p("美国运通", "Amex"),
        CardBrand::Jcb => p("JCB", "JCB"),
        CardBrand::Discover => p("发现卡", "Discover"),
        CardBrand::Diners => p("大来卡", "Diners"),
        CardBrand::Other => p("其他", "Other"),
    }
}

pub(crate) fn wallet(w: Wallet) -> Phrase {
    match w {
        Wallet::Alipay => p("支付宝", "Alipay"),
        Wallet::WechatPay => p("微信支付", "WeChat Pay"),
        Wallet::UnionPayQr => p("云闪付", "UnionPay QR"),
        Wallet::Other => p("其他", "Other"),
    }
}

/// `30.00 CNY` (Money's own form), or `￥30.00` for yuan on a Chinese
/// slip. The full-width ￥ (U+FFE5) because it is in GBK, which every
/// Chinese printer font has; the narrow ¥ needs GB18030's four-byte codes.
pub(crate) fn money(m: Money, locale: Locale) -> String {
    let shown = m.to_string();
    match (locale, shown.rsplit_once(' ')) {
        (Locale::Zh, Some((number, _))) if m.currency == Currency::CNY => match number.strip_prefix('-') {
            Some(abs) => format!("-￥{abs}"),
            None => format!("￥{number}"),
        },
        _ => shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_slips_show_both_languages_chinese_first() {
        assert_eq!(AMOUNT.show(Locale::Zh), "退款金额 Refund amount");
        assert_eq!(AMOUNT.show(Locale::En), "Refund amount");
        assert_eq!(brand(CardBrand::Visa).show(Locale::Zh), "Visa");
    }

    #[test]
    fn yuan_show_the_yen_sign_on_chinese_slips_only() {
        let cny = Money::new(3000, Currency::CNY);
        assert_eq!(money(cny, Locale::Zh), "￥30.00");
        assert_eq!(money(cny, Locale::En), "30.00 CNY");
        assert_eq!(money(Money::new(-5, Currency::CNY), Locale::Zh), "-￥0.05");
        let jpy = Money::new(500, Currency::parse("jpy").unwrap());
        assert_eq!(money(jpy, Locale::Zh), "500 JPY");
    }
}
