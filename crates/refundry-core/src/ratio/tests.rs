use super::*;
use proptest::prelude::*;

fn month(sales: u64, disputes: u64) -> MonthStats {
    MonthStats {
        currency: Currency::CNY,
        sales_count: sales,
        sales_minor: sales as i64 * 10_000,
        disputes_count: disputes,
        disputes_minor: disputes as i64 * 10_000,
    }
}

fn level(sales: u64, disputes: u64, thresholds: &RatioThresholds) -> RatioLevel {
    assess(&month(sales, disputes), thresholds).level
}

#[test]
fn mastercard_defaults_follow_the_excessive_chargeback_program() {
    let t = RatioThresholds::default();
    assert_eq!(t, RatioThresholds::mastercard_ecp());
    assert_eq!(t.programme, Programme::MastercardEcp);
    assert_eq!(t.monitored, Some(LevelThreshold { ratio_bps: 100, min_count: 100 }));
    assert_eq!(t.excessive, Some(LevelThreshold { ratio_bps: 150, min_count: 100 }));
    assert_eq!(t.high_excessive, Some(LevelThreshold { ratio_bps: 300, min_count: 300 }));
    assert_eq!(t.nearing_percent, 80);
    assert_eq!(t.validate(), Ok(()));
}

#[test]
fn visa_vamp_threshold_drops_to_one_and_a_half_percent_in_april_2026() {
    let before = RatioThresholds::visa_vamp(date(2026, 3, 1));
    let from = RatioThresholds::visa_vamp(date(2026, 4, 1));
    assert_eq!(RatioThresholds::visa_vamp(date(2025, 6, 1)), before);
    assert_eq!(RatioThresholds::visa_vamp(date(2025, 4, 1)), before);
    assert_eq!(before.excessive, Some(LevelThreshold { ratio_bps: 220, min_count: 1_500 }));
    assert_eq!(from.excessive, Some(LevelThreshold { ratio_bps: 150, min_count: 1_500 }));
    assert_eq!((from.monitored, from.high_excessive), (None, None));
    assert_eq!(from.programme, Programme::VisaVamp);
    assert_eq!(before.validate(), Ok(()));
    assert_eq!(from.validate(), Ok(()));
}

#[test]
fn mastercard_monitored_starts_exactly_at_one_percent_and_100_chargebacks() {
    let t = RatioThresholds::mastercard_ecp();
    assert_eq!(level(10_000, 100, &t), RatioLevel::Monitored, "exactly 1.0 % and 100");
    assert_eq!(level(10_001, 100, &t), RatioLevel::Nearing, "one sale more: just under 1.0 %");
    assert_eq!(level(9_900, 99, &t), RatioLevel::Nearing, "exactly 1.0 % but 99 chargebacks");
    let a = assess(&month(9_900, 99), &t);
    assert_eq!(a.codes(), [codes::RATIO_NEARING, codes::RATIO_BELOW_COUNT_MINIMUM]);
}

#[test]
fn mastercard_excessive_starts_exactly_at_one_and_a_half_percent() {
    let t = RatioThresholds::mastercard_ecp();
    assert_eq!(level(10_000, 150, &t), RatioLevel::Excessive);
    assert_eq!(level(10_000, 149, &t), RatioLevel::Monitored);
    // 100 / 6666 = 1.50015 %, 100 / 6667 = 1.49992 %
    assert_eq!(level(6_666, 100, &t), RatioLevel::Excessive);
    assert_eq!(level(6_667, 100, &t), RatioLevel::Monitored);
}

#[test]
fn mastercard_high_excessive_needs_three_percent_and_300() {
    let t = RatioThresholds::mastercard_ecp();
    assert_eq!(level(10_000, 300, &t), RatioLevel::HighExcessive);
    assert_eq!(level(10_001, 300, &t), RatioLevel::Excessive);
    assert_eq!(level(10_000, 299, &t), RatioLevel::Excessive);
    assert_eq!(level(9_000, 299, &t), RatioLevel::Excessive, "3.3 % but only 299 chargebacks");
    let a = assess(&month(10_000, 300), &t);
    assert_eq!(a.codes(), [codes::RATIO_HIGH_EXCESSIVE]);
    assert_eq!(a.count_ratio_bps, Some(300));
}

#[test]
fn nearing_fires_at_80_percent_of_the_lowest_threshold() {
    let t = RatioThresholds::mastercard_ecp();
    assert_eq!(level(10_000, 80, &t), RatioLevel::Nearing, "0.8 % and 80");
    assert_eq!(level(10_000, 79, &t), RatioLevel::Ok, "79 chargebacks");
    assert_eq!(level(10_001, 80, &t), RatioLevel::Ok, "just under 0.8 %");
    let ok = assess(&month(10_001, 80), &t);
    assert_eq!(ok.codes(), [codes::RATIO_WITHIN_THRESHOLDS]);
    let mut off = t;
    off.nearing_percent = 100;
    assert_eq!(level(10_000, 99, &off), RatioLevel::Ok, "100 % turns nearing off");
    let mut half = t;
    half.nearing_percent = 50;
    assert_eq!(level(10_000, 50, &half), RatioLevel::Nearing);
    assert_eq!(level(10_000, 49, &half), RatioLevel::Ok);
}

#[test]
fn visa_vamp_needs_1500_reports_and_the_ratio_of_the_month() {
    let t = RatioThresholds::visa_vamp(date(2026, 4, 1));
    assert_eq!(level(100_000, 1_500, &t), RatioLevel::Excessive, "exactly 1.5 % and 1500");
    assert_eq!(level(100_001, 1_500, &t), RatioLevel::Nearing);
    assert_eq!(level(100_000, 1_499, &t), RatioLevel::Nearing);
    assert_eq!(level(100_000, 1_200, &t), RatioLevel::Nearing, "80 % of 1.5 % and of 1500");
    assert_eq!(level(100_000, 1_199, &t), RatioLevel::Ok);
    assert_eq!(level(10_000, 1_000, &t), RatioLevel::Ok, "10 % but far from 1500 reports");
    assert_eq!(assess(&month(10_000, 1_000), &t).codes(), [codes::RATIO_BELOW_COUNT_MINIMUM]);
    let earlier = RatioThresholds::visa_vamp(date(2025, 7, 1));
    assert_eq!(level(100_000, 2_200, &earlier), RatioLevel::Excessive);
    assert_eq!(level(100_000, 2_199, &earlier), RatioLevel::Nearing);
    let a = assess(&month(100_000, 2_200), &earlier);
    assert!(a.reasons[0].en.contains("VAMP") && a.reasons[0].en.contains("2.2%"), "{}", a.reasons[0].en);
    assert!(a.reasons[0].en.contains("fraud reports and disputes"));
}

#[test]
fn without_sales_any_chargeback_is_above_every_ratio() {
    let t = RatioThresholds::mastercard_ecp();
    assert_eq!(level(0, 0, &t), RatioLevel::Ok);
    assert_eq!(level(0, 5, &t), RatioLevel::Ok);
    assert_eq!(level(0, 100, &t), RatioLevel::Excessive, "100 and no sales: the count decides");
    assert_eq!(level(0, 300, &t), RatioLevel::HighExcessive);
    let a = assess(&month(0, 5), &t);
    assert_eq!(a.count_ratio_bps, None);
    assert_eq!(a.codes(), [codes::RATIO_BELOW_COUNT_MINIMUM]);
}

#[test]
fn amount_ratio_is_shown_alongside_the_count() {
    let stats = MonthStats {
        currency: Currency::CNY,
        sales_count: 10_000,
        sales_minor: 50_000_000,
        disputes_count: 120,
        disputes_minor: 1_234_500,
    };
    let a = assess(&stats, &RatioThresholds::mastercard_ecp());
    assert_eq!(a.level, RatioLevel::Monitored);
    assert_eq!((a.count_ratio_bps, a.amount_ratio_bps), (Some(120), Some(246)));
    let r = &a.reasons[0];
    assert_eq!(r.code, codes::RATIO_MONITORED);
    assert!(r.en.contains("1.2% by count") && r.en.contains("2.46% by amount") && r.en.contains("12345.00 CNY"));
    assert!(r.zh.contains("按笔数 1.2%") && r.zh.contains("万事达卡过度退单计划"), "{}", r.zh);
}

#[test]
fn invalid_thresholds_name_the_field() {
    let mut none = RatioThresholds::mastercard_ecp();
    (none.monitored, none.excessive, none.high_excessive) = (None, None, None);
    assert_eq!(none.validate().unwrap_err().field, "thresholds");
    let mut upside_down = RatioThresholds::mastercard_ecp();
    upside_down.high_excessive = Some(LevelThreshold { ratio_bps: 120, min_count: 300 });
    assert_eq!(upside_down.validate().unwrap_err().field, "thresholds");
    let mut fewer = RatioThresholds::mastercard_ecp();
    fewer.excessive = Some(LevelThreshold { ratio_bps: 150, min_count: 50 });
    assert_eq!(fewer.validate().unwrap_err().field, "thresholds");
    let mut zero = RatioThresholds::mastercard_ecp();
    zero.monitored = Some(LevelThreshold { ratio_bps: 0, min_count: 0 });
    assert_eq!(zero.validate().unwrap_err().field, "ratio_bps");
    let mut nearing = RatioThresholds::mastercard_ecp();
    nearing.nearing_percent = 0;
    assert_eq!(nearing.validate().unwrap_err().field, "nearing_percent");
    nearing.nearing_percent = 101;
    assert_eq!(nearing.validate().unwrap_err().field, "nearing_percent");
}

#[test]
fn wire_names_round_trip_and_levels_are_ordered() {
    for l in RatioLevel::ALL {
        assert_eq!(RatioLevel::parse(l.as_str()), Some(*l));
    }
    for p in Programme::ALL {
        assert_eq!(Programme::parse(p.as_str()), Some(*p));
    }
    let mut sorted = RatioLevel::ALL.to_vec();
    sorted.sort();
    assert_eq!(sorted, RatioLevel::ALL, "ALL is listed from fine to worst");
}

#[test]
fn ratio_codes_are_unique_snake_case() {
    let unique: std::collections::HashSet<_> = RATIO_CODES.iter().collect();
    assert_eq!(unique.len(), RATIO_CODES.len());
    assert!(RATIO_CODES.iter().all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
}

#[test]
fn percentages_are_exact() {
    assert_eq!(percent(150), "1.5%");
    assert_eq!(percent(125), "1.25%");
    assert_eq!(percent(100), "1%");
    assert_eq!(percent(5), "0.05%");
    assert_eq!(percent(12_345), "123.45%");
}

fn any_thresholds() -> impl Strategy<Value = RatioThresholds> {
    prop_oneof![
        Just(RatioThresholds::mastercard_ecp()),
        Just(RatioThresholds::visa_vamp(date(2025, 7, 1))),
        Just(RatioThresholds::visa_vamp(date(2026, 4, 1))),
        (1u32..=100).prop_map(|p| RatioThresholds { nearing_percent: p, ..RatioThresholds::mastercard_ecp() }),
    ]
}

proptest! {
    /// More disputes on the same sales never make the level better; more
    /// sales for the same disputes never make it worse.
    #[test]
    fn the_level_moves_with_the_ratio(
        t in any_thresholds(),
        sales in 0u64..=300_000,
        disputes in 0u64..=5_000,
        more in 0u64..=5_000,
    ) {
        let base = level(sales, disputes, &t);
        prop_assert!(level(sales, disputes + more, &t) >= base);
        prop_assert!(level(sales + more, disputes, &t) <= base);
    }

    /// Every reason has a listed code and a sentence in both languages;
    /// "within thresholds" comes alone, exactly when the month is ok with no
    /// ratio above a threshold; the level's own reason comes first.
    #[test]
    fn every_reason_is_coded_and_written_in_both_languages(
        t in any_thresholds(),
        sales in 0u64..=300_000,
        disputes in 0u64..=5_000,
    ) {
        let a = assess(&month(sales, disputes), &t);
        prop_assert!(!a.reasons.is_empty());
        for r in &a.reasons {
            prop_assert!(RATIO_CODES.contains(&r.code));
            prop_assert!(r.en.is_ascii(), "{}", r.en);
            prop_assert!(r.zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)), "{}", r.zh);
        }
        let got = a.codes();
        let within = got.contains(&codes::RATIO_WITHIN_THRESHOLDS);
        let below_count = got.contains(&codes::RATIO_BELOW_COUNT_MINIMUM);
        prop_assert_eq!(within, a.level == RatioLevel::Ok && !below_count);
        prop_assert!(!within || got.len() == 1);
        if a.level != RatioLevel::Ok {
            prop_assert_eq!(a.reasons[0].code, level_code(a.level));
        }
    }
}
