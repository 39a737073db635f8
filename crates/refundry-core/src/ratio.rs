//! The chargeback ratio watch: a merchant's disputes against its sales for
//! a month, by count and by amount, held against the card networks'
//! monitoring programmes so that risk staff hear of a problem before the
//! acquirer's fine does.
//!
//! All arithmetic is in integers: ratios are compared by cross
//! multiplication, never rounded before a comparison, and shown in basis
//! points (1 bp = 0.01 %), rounded down.
//!
//! Each programme counts on its own basis, and [`MonthStats`] must be built
//! on the basis of the thresholds it is held against:
//!
//! - Mastercard's Excessive Chargeback Program (ECP) divides the month's
//!   chargebacks by the *previous* month's sales (Mastercard only).
//! - Visa's Acquirer Monitoring Program (VAMP) divides the month's fraud
//!   reports (TC40) plus disputes (TC15) by the month's settled
//!   card-not-present sales (Visa only).
//!
//! Retrieval requests (调单) are not chargebacks and count nowhere; a case
//! counts once, in the month its chargeback arrived
//! ([`crate::dispute::DisputeState::is_chargeback`]).

use crate::money::{Currency, Money};
use crate::sale::wire_enum;
use jiff::civil::{Date, date};
use std::cmp::Ordering;

wire_enum!(
    /// How a month looks against a programme, from fine to worst.
    RatioLevel {
        Ok = "ok", Nearing = "nearing", Monitored = "monitored", Excessive = "excessive",
        HighExcessive = "high_excessive",
    }
);

impl RatioLevel {
    fn severity(self) -> u8 {
        match self {
            RatioLevel::Ok => 0,
            RatioLevel::Nearing => 1,
            RatioLevel::Monitored => 2,
            RatioLevel::Excessive => 3,
            RatioLevel::HighExcessive => 4,
        }
    }
}

/// Ordered by severity, so "worse" reads as `>`.
impl Ord for RatioLevel {
    fn cmp(&self, other: &Self) -> Ordering {
        self.severity().cmp(&other.severity())
    }
}

impl PartialOrd for RatioLevel {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

wire_enum!(
    /// Whose thresholds: a network's programme, or the merchant's own.
    Programme { VisaVamp = "visa_vamp", MastercardEcp = "mastercard_ecp", Custom = "custom" }
);

/// One merchant's month on one programme's basis (see the module notes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthStats {
    pub currency: Currency,
    /// The denominator: sales, count and amount in minor units.
    pub sales_count: u64,
    pub sales_minor: i64,
    /// The numerator: chargebacks (for VAMP: fraud reports and disputes),
    /// count and amount in minor units.
    pub disputes_count: u64,
    pub disputes_minor: i64,
}

/// Where a level starts: at or above this ratio, with at least this many
/// disputes. Both must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelThreshold {
    /// Disputes ÷ sales by count, in basis points (100 = 1 %).
    pub ratio_bps: u32,
    pub min_count: u64,
}

/// The thresholds of one programme. A level that is `None` does not exist in
/// it (VAMP has only "excessive").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatioThresholds {
    pub programme: Programme,
    pub monitored: Option<LevelThreshold>,
    pub excessive: Option<LevelThreshold>,
    pub high_excessive: Option<LevelThreshold>,
    /// "Nearing" is reached at this percentage of the lowest level's ratio
    /// *and* of its count (80: at 0.8 % and 80 disputes before 1.0 % and
    /// 100). 100 turns "nearing" off.
    pub nearing_percent: u32,
}

/// The share of the lowest threshold at which "nearing" fires by default.
pub const DEFAULT_NEARING_PERCENT: u32 = 80;

impl RatioThresholds {
    /// Mastercard's Excessive Chargeback Program, as summarised in
    /// `shared/stack.md` ("Card-network dispute monitoring"): this month's
    /// chargebacks ÷ last month's sales; monitored (Chargeback Monitored
    /// Merchant) at ≥ 1.0 % and 100 chargebacks, excessive (Excessive
    /// Chargeback Merchant) at 1.5 % and 100, high excessive at 3 % and 300.
    pub fn mastercard_ecp() -> RatioThresholds {
        RatioThresholds {
            programme: Programme::MastercardEcp,
            monitored: Some(LevelThreshold { ratio_bps: 100, min_count: 100 }),
            excessive: Some(LevelThreshold { ratio_bps: 150, min_count: 100 }),
            high_excessive: Some(LevelThreshold { ratio_bps: 300, min_count: 300 }),
            nearing_percent: DEFAULT_NEARING_PERCENT,
        }
    }

    /// Visa's Acquirer Monitoring Program for the month starting `month`, as
    /// summarised in `shared/stack.md`: (fraud reports + disputes) ÷ settled
    /// card-not-present sales; a merchant is "excessive" at ≥ 2.2 % (from
    /// June 2025) and ≥ 1.5 % from April 2026, with at least 1,500 fraud
    /// reports and disputes in the month. Months before June 2025 get the
    /// 2.2 % too: VAMP started in April 2025 and was enforced from June.
    pub fn visa_vamp(month: Date) -> RatioThresholds {
        let ratio_bps = if month >= VAMP_STRICTER_FROM { 150 } else { 220 };
        RatioThresholds {
            programme: Programme::VisaVamp,
            monitored: None,
            excessive: Some(LevelThreshold { ratio_bps, min_count: 1_500 }),
            high_excessive: None,
            nearing_percent: DEFAULT_NEARING_PERCENT,
        }
    }

    /// The levels that exist, lowest first.
    fn levels(&self) -> impl Iterator<Item = (RatioLevel, LevelThreshold)> {
        [
            (RatioLevel::Monitored, self.monitored),
            (RatioLevel::Excessive, self.excessive),
            (RatioLevel::HighExcessive, self.high_excessive),
        ]
        .into_iter()
        .filter_map(|(level, t)| t.map(|t| (level, t)))
    }

    /// Checks thresholds before they are stored or used: at least one
    /// level, higher levels never below lower ones, a sensible "nearing".
    pub fn validate(&self) -> Result<(), RatioError> {
        let levels: Vec<_> = self.levels().collect();
        if levels.is_empty() {
            return Err(RatioError { field: "thresholds", problem: "name at least one level" });
        }
        for (_, t) in &levels {
            if t.ratio_bps == 0 || t.ratio_bps > 10_000 {
                return Err(RatioError { field: "ratio_bps", problem: "must be 1 to 10000 basis points" });
            }
        }
        for pair in levels.windows(2) {
            let (lower, higher) = (pair[0].1, pair[1].1);
            if higher.ratio_bps < lower.ratio_bps || higher.min_count < lower.min_count {
                return Err(RatioError {
                    field: "thresholds",
                    problem: "a higher level must not start below a lower one (ratio and count)",
                });
            }
        }
        if self.nearing_percent == 0 || self.nearing_percent > 100 {
            return Err(RatioError { field: "nearing_percent", problem: "must be 1 to 100 (100 turns it off)" });
        }
        Ok(())
    }
}

/// The first month of Visa's 1.5 % VAMP threshold.
const VAMP_STRICTER_FROM: Date = date(2026, 4, 1);

impl Default for RatioThresholds {
    /// Mastercard's programme: the only one with all three levels, and the
    /// one that reaches POS (card-present) merchants, whom VAMP's
    /// card-not-present basis mostly leaves out.
    fn default() -> Self {
        RatioThresholds::mastercard_ecp()
    }
}

/// A thresholds field that cannot be right, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct RatioError {
    pub field: &'static str,
    pub problem: &'static str,
}

/// Stable codes of the assessment's reasons. Part of the API.
pub mod codes {
    pub const RATIO_HIGH_EXCESSIVE: &str = "ratio_high_excessive";
    pub const RATIO_EXCESSIVE: &str = "ratio_excessive";
    pub const RATIO_MONITORED: &str = "ratio_monitored";
    pub const RATIO_NEARING: &str = "ratio_nearing";
    /// The ratio reached the lowest level, but with fewer disputes than the
    /// programme counts from.
    pub const RATIO_BELOW_COUNT_MINIMUM: &str = "ratio_below_count_minimum";
    /// Given alone when nothing else is.
    pub const RATIO_WITHIN_THRESHOLDS: &str = "ratio_within_thresholds";
}

/// Every code a reason may carry, in the order reasons are listed.
pub const RATIO_CODES: &[&str] = &[
    codes::RATIO_HIGH_EXCESSIVE,
    codes::RATIO_EXCESSIVE,
    codes::RATIO_MONITORED,
    codes::RATIO_NEARING,
    codes::RATIO_BELOW_COUNT_MINIMUM,
    codes::RATIO_WITHIN_THRESHOLDS,
];

/// One reason of an assessment: a stable code and a sentence in Simplified
/// Chinese and English with the figures filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatioReason {
    /// One of [`RATIO_CODES`].
    pub code: &'static str,
    pub zh: String,
    pub en: String,
}

/// How a month stands against one programme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatioAssessment {
    pub programme: Programme,
    pub level: RatioLevel,
    /// Disputes ÷ sales by count in basis points, rounded down; `None`
    /// without sales.
    pub count_ratio_bps: Option<u64>,
    /// The same by amount; shown, not judged (the networks count).
    pub amount_ratio_bps: Option<u64>,
    /// Never empty.
    pub reasons: Vec<RatioReason>,
}

impl RatioAssessment {
    pub fn codes(&self) -> Vec<&'static str> {
        self.reasons.iter().map(|r| r.code).collect()
    }
}

/// `num ÷ den ≥ bps ÷ 10000 × percent ÷ 100`, exactly. Without sales any
/// dispute is above every ratio.
fn ratio_at_least(num: u64, den: u64, bps: u32, percent: u32) -> bool {
    if den == 0 {
        return num > 0;
    }
    u128::from(num) * 10_000 * 100 >= u128::from(bps) * u128::from(percent) * u128::from(den)
}

fn count_at_least(count: u64, min: u64, percent: u32) -> bool {
    u128::from(count) * 100 >= u128::from(min) * u128::from(percent)
}

fn bps_of(num: u64, den: u64) -> Option<u64> {
    if den == 0 {
        return None;
    }
    u64::try_from(u128::from(num) * 10_000 / u128::from(den)).ok()
}

/// Assesses a month against a programme. The level is the highest whose
/// ratio and count are both reached; "nearing" when none is but the month
/// is at `nearing_percent` of the lowest level's ratio and count. Every
/// reason is listed: the level reached, "nearing", and a ratio that reached
/// the lowest level with too few disputes for the programme to count it.
pub fn assess(stats: &MonthStats, thresholds: &RatioThresholds) -> RatioAssessment {
    let (n, d) = (stats.disputes_count, stats.sales_count);
    let reached = |t: &LevelThreshold, percent: u32| {
        n > 0 && ratio_at_least(n, d, t.ratio_bps, percent) && count_at_least(n, t.min_count, percent)
    };
    let mut reasons = Vec::new();
    let level_hit = thresholds.levels().filter(|(_, t)| reached(t, 100)).last();
    let lowest = thresholds.levels().next();
    let f = Figures::of(stats, thresholds.programme);
    let level = match (level_hit, lowest) {
        (Some((level, t)), _) => {
            reasons.push(level_reason(&f, level, t));
            level
        }
        (None, Some((lowest_level, t)))
            if thresholds.nearing_percent < 100 && reached(&t, thresholds.nearing_percent) =>
        {
            reasons.push(nearing_reason(&f, lowest_level, t, thresholds.nearing_percent));
            RatioLevel::Nearing
        }
        _ => RatioLevel::Ok,
    };
    if let Some((lowest_level, t)) = lowest
        && n > 0
        && ratio_at_least(n, d, t.ratio_bps, 100)
        && !count_at_least(n, t.min_count, 100)
    {
        reasons.push(below_count_reason(&f, lowest_level, t));
    }
    if reasons.is_empty() {
        reasons.push(RatioReason {
            code: codes::RATIO_WITHIN_THRESHOLDS,
            zh: format!("{}，在{}的阈值之内。", f.zh_month(), f.programme_zh),
            en: format!("{}, within the thresholds of {}.", f.en_month(), f.programme_en),
        });
    }
    RatioAssessment {
        programme: thresholds.programme,
        level,
        count_ratio_bps: bps_of(n, d),
        amount_ratio_bps: bps_of(stats.disputes_minor.max(0) as u64, stats.sales_minor.max(0) as u64),
        reasons,
    }
}

/// The month's figures as every sentence writes them.
struct Figures {
    disputes: u64,
    sales: u64,
    count_ratio: String,
    amount_ratio: String,
    disputes_amount: Money,
    programme_en: &'static str,
    programme_zh: &'static str,
    noun_en: &'static str,
    noun_zh: &'static str,
}

impl Figures {
    fn of(stats: &MonthStats, programme: Programme) -> Figures {
        let ratio = |bps: Option<u64>| bps.map_or_else(|| "-".to_owned(), percent);
        let (programme_en, programme_zh) = match programme {
            Programme::VisaVamp => ("Visa's Acquirer Monitoring Program (VAMP)", "Visa 收单机构监控计划（VAMP）"),
            Programme::MastercardEcp => ("Mastercard's Excessive Chargeback Program", "万事达卡过度退单计划（ECP）"),
            Programme::Custom => ("the merchant's own thresholds", "商户自定义阈值"),
        };
        let (noun_en, noun_zh) = match programme {
            Programme::VisaVamp => ("fraud reports and disputes", "欺诈报告与争议"),
            Programme::MastercardEcp | Programme::Custom => ("chargebacks", "退单"),
        };
        Figures {
            disputes: stats.disputes_count,
            sales: stats.sales_count,
            count_ratio: ratio(bps_of(stats.disputes_count, stats.sales_count)),
            amount_ratio: ratio(bps_of(stats.disputes_minor.max(0) as u64, stats.sales_minor.max(0) as u64)),
            disputes_amount: Money::new(stats.disputes_minor, stats.currency),
            programme_en,
            programme_zh,
            noun_en,
            noun_zh,
        }
    }

    fn en_month(&self) -> String {
        format!(
            "{} {} ({}) on {} sales: {} by count, {} by amount",
            self.disputes, self.noun_en, self.disputes_amount, self.sales, self.count_ratio, self.amount_ratio
        )
    }

    fn zh_month(&self) -> String {
        format!(
            "本月{} {} 笔（{}），交易 {} 笔：按笔数 {}，按金额 {}",
            self.noun_zh, self.disputes, self.disputes_amount, self.sales, self.count_ratio, self.amount_ratio
        )
    }
}

fn level_en(level: RatioLevel) -> &'static str {
    match level {
        RatioLevel::Ok => "within thresholds",
        RatioLevel::Nearing => "nearing a threshold",
        RatioLevel::Monitored => "monitored",
        RatioLevel::Excessive => "excessive",
        RatioLevel::HighExcessive => "high excessive",
    }
}

fn level_zh(level: RatioLevel) -> &'static str {
    match level {
        RatioLevel::Ok => "正常",
        RatioLevel::Nearing => "接近阈值",
        RatioLevel::Monitored => "受监控",
        RatioLevel::Excessive => "过度退单",
        RatioLevel::HighExcessive => "严重过度退单",
    }
}

fn level_code(level: RatioLevel) -> &'static str {
    match level {
        RatioLevel::HighExcessive => codes::RATIO_HIGH_EXCESSIVE,
        RatioLevel::Excessive => codes::RATIO_EXCESSIVE,
        RatioLevel::Monitored => codes::RATIO_MONITORED,
        RatioLevel::Nearing => codes::RATIO_NEARING,
        RatioLevel::Ok => codes::RATIO_WITHIN_THRESHOLDS,
    }
}

fn level_reason(f: &Figures, level: RatioLevel, t: LevelThreshold) -> RatioReason {
    let limit = percent(u64::from(t.ratio_bps));
    RatioReason {
        code: level_code(level),
        zh: format!(
            "{}，已达到{}“{}”的标准（{limit} 且至少 {} 笔）。",
            f.zh_month(),
            f.programme_zh,
            level_zh(level),
            t.min_count
        ),
        en: format!(
            "{}: at or above the {limit} and {} {} at which {} counts a merchant as {}.",
            f.en_month(),
            t.min_count,
            f.noun_en,
            f.programme_en,
            level_en(level)
        ),
    }
}

fn nearing_reason(f: &Figures, lowest: RatioLevel, t: LevelThreshold, nearing_percent: u32) -> RatioReason {
    let limit = percent(u64::from(t.ratio_bps));
    RatioReason {
        code: codes::RATIO_NEARING,
        zh: format!(
            "{}，已达到{}“{}”标准（{limit} 且至少 {} 笔）的 {nearing_percent}%。",
            f.zh_month(),
            f.programme_zh,
            level_zh(lowest),
            t.min_count
        ),
        en: format!(
            "{}: {nearing_percent}% or more of the {limit} and {} {} at which {} counts a merchant as {}.",
            f.en_month(),
            t.min_count,
            f.noun_en,
            f.programme_en,
            level_en(lowest)
        ),
    }
}

fn below_count_reason(f: &Figures, lowest: RatioLevel, t: LevelThreshold) -> RatioReason {
    let limit = percent(u64::from(t.ratio_bps));
    RatioReason {
        code: codes::RATIO_BELOW_COUNT_MINIMUM,
        zh: format!(
            "{}，比率已达到{}“{}”的 {limit}，但笔数少于计划起算的 {} 笔。",
            f.zh_month(),
            f.programme_zh,
            level_zh(lowest),
            t.min_count
        ),
        en: format!(
            "{}: the ratio reaches the {limit} at which {} counts a merchant as {}, \
             but with fewer than the {} {} it counts from.",
            f.en_month(),
            f.programme_en,
            level_en(lowest),
            t.min_count,
            f.noun_en
        ),
    }
}

/// Basis points as a percentage for people, exactly: 150 → `1.5%`,
/// 125 → `1.25%`, 100 → `1%`.
fn percent(bps: u64) -> String {
    let (whole, hundredths) = (bps / 100, bps % 100);
    match hundredths {
        0 => format!("{whole}%"),
        h if h % 10 == 0 => format!("{whole}.{}%", h / 10),
        h => format!("{whole}.{h:02}%"),
    }
}

#[cfg(test)]
mod tests;
