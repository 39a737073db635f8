//! The figures of the back office's dashboard: refunds of today, this week
//! and this month, the refund rate, refunds by reason, store, cashier and
//! day, how long refunds take, and the chargeback ratios.
//!
//! The store adds refunds up in one grouped query per period (business day ×
//! reason × store × requester × status); this module folds those groups into
//! each view, so no refund is loaded one by one.

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use refundry_core::ids::StoreId;
use refundry_core::money::Currency;
use refundry_core::refund::RefundStatus;
use refundry_store::model::{RefundDuration, RefundGroup};

use refundry_core::ratio::{Programme, RatioThresholds};

use crate::disputes::RatioWatch;
use crate::{Actor, App, AppError};

/// Days shown one by one.
pub const DAYS: i64 = 30;
/// At most this many refunds are timed; a larger month is timed on its
/// fastest ones, which the page says.
pub const TIMED_LIMIT: u32 = 100_000;

/// A count of refunds (or sales) and their sum in minor units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub count: u64,
    pub amount_minor: i64,
}

impl Tally {
    fn add(&mut self, count: u64, amount_minor: i64) {
        self.count += count;
        self.amount_minor += amount_minor;
    }
}

/// Refunds of a period against its sales.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Period {
    pub refunds: Tally,
    pub sales: Tally,
}

impl Period {
    /// Refunded ÷ sold by amount, in basis points, rounded down; `None`
    /// without sales.
    pub fn amount_rate_bps(&self) -> Option<i64> {
        rate_bps(i128::from(self.refunds.amount_minor), i128::from(self.sales.amount_minor))
    }

    /// The same by count.
    pub fn count_rate_bps(&self) -> Option<i64> {
        rate_bps(i128::from(self.refunds.count), i128::from(self.sales.count))
    }
}

fn rate_bps(part: i128, whole: i128) -> Option<i64> {
    (whole > 0).then(|| i64::try_from(part * 10_000 / whole).unwrap_or(i64::MAX))
}

/// Median and 90th percentile of a duration, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread {
    pub count: usize,
    pub median_s: i64,
    pub p90_s: i64,
}

impl Spread {
    /// Nearest-rank percentiles of values sorted ascending.
    pub fn of_sorted(values: &[i64]) -> Option<Spread> {
        let rank = |percent: usize| values[(values.len() * percent).div_ceil(100).max(1) - 1];
        (!values.is_empty()).then(|| Spread { count: values.len(), median_s: rank(50), p90_s: rank(90) })
    }
}

#[derive(Debug, Clone)]
pub struct Dashboard {
    pub currency: Currency,
    pub today: Date,
    pub today_period: Period,
    pub week: Period,
    pub month: Period,
    /// This month's refunds by reason code, largest amount first.
    pub by_reason: Vec<(String, Tally)>,
    /// This month's refunds by store: (id, name, tally), largest first.
    pub by_store: Vec<(StoreId, String, Tally)>,
    /// This month's refunds by who asked (`user:…`, `key:…`), largest first.
    pub by_cashier: Vec<(String, Tally)>,
    /// The last [`DAYS`] business days, oldest first, every day present.
    pub by_day: Vec<(Date, Tally)>,
    /// Succeeded refunds of the last [`DAYS`] days: request to completion,
    /// and to the money reaching the customer where that was recorded.
    pub to_completed: Option<Spread>,
    pub to_arrived: Option<Spread>,
    /// Whether the timing stopped at [`TIMED_LIMIT`] refunds.
    pub timing_capped: bool,
    /// This month against each programme, with the thresholds it was judged by.
    pub chargebacks: Vec<(RatioWatch, RatioThresholds)>,
}

/// Which refunds count as refunds: asked for and not turned down, failed,
/// expired or canceled.
fn counts(status: &str) -> bool {
    RefundStatus::parse(status).is_some_and(RefundStatus::counts_against_sale)
}

fn day_of(n: i64) -> Date {
    // the store counts days from 1970-01-01; no business day is that far off
    Date::constant(1970, 1, 1).checked_add(n.days()).unwrap_or(Date::MIN)
}

fn largest_first<K: Ord>(map: BTreeMap<K, Tally>) -> Vec<(K, Tally)> {
    let mut v: Vec<_> = map.into_iter().collect();
    v.sort_by(|a, b| b.1.amount_minor.cmp(&a.1.amount_minor).then(b.1.count.cmp(&a.1.count)));
    v
}

impl App {
    /// The dashboard as of now, in the business time zone.
    pub async fn dashboard(&self, actor: &Actor) -> Result<Dashboard, AppError> {
        self.dashboard_at(actor, crate::now()).await
    }

    pub async fn dashboard_at(&self, actor: &Actor, now: Timestamp) -> Result<Dashboard, AppError> {
        let tz = self.config.business_tz.clone();
        let zoned = now.to_zoned(tz.clone());
        let today = zoned.date();
        let bad = |_| AppError::new(crate::ErrorCode::Internal, "a business day is out of range");
        let week_start = today.checked_sub(i64::from(today.weekday().to_monday_zero_offset()).days()).map_err(bad)?;
        let month_start = today.first_of_month();
        let first_day = today.checked_sub((DAYS - 1).days()).map_err(bad)?;
        let from_day = first_day.min(month_start);
        let start = |d: Date| d.to_zoned(tz.clone()).map(|z| z.timestamp()).map_err(bad);
        let (from, end) = (start(from_day)?, start(today.tomorrow().map_err(bad)?)?);
        let (today_at, week_at, month_at, days_at) =
            (start(today)?, start(week_start)?, start(month_start)?, start(first_day)?);
        // days are cut at today's offset; across a daylight-saving change a
        // refund in the shifted hour lands on the neighbouring day
        let offset_s = i64::from(zoned.offset().seconds());
        let merchant = actor.merchant_id;
        let (groups, durations, sales, stores) = refundry_store::read(&self.store, move |tx| {
            let sales = [
                tx.sale_stats(merchant, today_at, end, false)?,
                tx.sale_stats(merchant, week_at, end, false)?,
                tx.sale_stats(merchant, month_at, end, false)?,
            ];
            Ok::<_, AppError>((
                tx.refund_groups(merchant, from, end, offset_s)?,
                tx.refund_durations(merchant, days_at, end, TIMED_LIMIT)?,
                sales,
                tx.stores_of(merchant)?,
            ))
        })
        .await?;
        let watch = &self.config.disputes;
        // the same thresholds chargeback_ratios judges by
        let thresholds_of = |p: Programme| match p {
            Programme::VisaVamp => watch.visa_vamp.unwrap_or_else(|| RatioThresholds::visa_vamp(month_start)),
            Programme::MastercardEcp | Programme::Custom => watch.mastercard_ecp,
        };
        let chargebacks = self
            .chargeback_ratios(actor, month_start)
            .await?
            .into_iter()
            .map(|w| {
                let t = thresholds_of(w.assessment.programme);
                (w, t)
            })
            .collect();
        let mut d = fold(&groups, today, week_start, month_start, first_day);
        for (period, (count, amount_minor)) in [&mut d.today_period, &mut d.week, &mut d.month].into_iter().zip(sales) {
            period.sales = Tally { count, amount_minor };
        }
        d.by_store = d
            .by_store
            .into_iter()
            .map(|(id, _, t)| (id, stores.iter().find(|s| s.id == id).map(|s| s.name.clone()).unwrap_or_default(), t))
            .collect();
        let mut completed: Vec<i64> = durations.iter().map(|d| d.to_completed_s).collect();
        let mut arrived: Vec<i64> = durations.iter().filter_map(|d: &RefundDuration| d.to_arrived_s).collect();
        completed.sort_unstable();
        arrived.sort_unstable();
        d.to_completed = Spread::of_sorted(&completed);
        d.to_arrived = Spread::of_sorted(&arrived);
        d.timing_capped = durations.len() >= TIMED_LIMIT as usize;
        d.chargebacks = chargebacks;
        Ok(d)
    }
}

/// Folds the store's groups into the dashboard's views.
fn fold(groups: &[RefundGroup], today: Date, week_start: Date, month_start: Date, first_day: Date) -> Dashboard {
    let mut d = Dashboard {
        // the app keeps one currency per merchant (as the ratio watch does)
        currency: Currency::CNY,
        today,
        today_period: Period::default(),
        week: Period::default(),
        month: Period::default(),
        by_reason: Vec::new(),
        by_store: Vec::new(),
        by_cashier: Vec::new(),
        by_day: Vec::new(),
        to_completed: None,
        to_arrived: None,
        timing_capped: false,
        chargebacks: Vec::new(),
    };
    let (mut reasons, mut stores, mut cashiers) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    let mut days: BTreeMap<Date, Tally> = BTreeMap::new();
    let mut day = first_day;
    while day <= today {
        days.insert(day, Tally::default());
        day = day.tomorrow().unwrap_or(Date::MAX);
    }
    for g in groups.iter().filter(|g| counts(&g.status)) {
        let date = day_of(g.day);
        let (n, sum) = (g.count, g.amount_minor);
        if date == today {
            d.today_period.refunds.add(n, sum);
        }
        if date >= week_start && date <= today {
            d.week.refunds.add(n, sum);
        }
        if date >= month_start && date <= today {
            d.month.refunds.add(n, sum);
            reasons.entry(g.reason.clone()).or_insert_with(Tally::default).add(n, sum);
            stores.entry(g.store_id).or_insert_with(Tally::default).add(n, sum);
            cashiers.entry(g.requested_by.clone()).or_insert_with(Tally::default).add(n, sum);
        }
        if let Some(t) = days.get_mut(&date) {
            t.add(n, sum);
        }
    }
    d.by_reason = largest_first(reasons);
    d.by_store = largest_first(stores).into_iter().map(|(id, t)| (id, String::new(), t)).collect();
    d.by_cashier = largest_first(cashiers);
    d.by_day = days.into_iter().collect();
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = Spread::of_sorted(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).unwrap();
        assert_eq!((s.median_s, s.p90_s), (5, 9));
        let one = Spread::of_sorted(&[42]).unwrap();
        assert_eq!((one.median_s, one.p90_s), (42, 42));
        assert_eq!(Spread::of_sorted(&[]), None);
    }

    #[test]
    fn rates_are_basis_points_rounded_down_and_none_without_sales() {
        let p = Period {
            refunds: Tally { count: 1, amount_minor: 2_200 },
            sales: Tally { count: 3, amount_minor: 65_200 },
        };
        assert_eq!(p.amount_rate_bps(), Some(337));
        assert_eq!(p.count_rate_bps(), Some(3333));
        assert_eq!(Period::default().amount_rate_bps(), None);
    }

    #[test]
    fn groups_fold_into_periods_and_days_and_failed_refunds_do_not_count() {
        let today = Date::constant(2030, 3, 14);
        let n = |d: Date| (d - Date::constant(1970, 1, 1)).get_days() as i64;
        let store = StoreId::parse("st_01a2187dbb2673fa9a60b0bd2979583e").unwrap();
        let group = |day: Date, status: &str, amount_minor: i64| RefundGroup {
            day: n(day),
            reason: "defective".into(),
            store_id: store,
            requested_by: "user:usr_1".into(),
            status: status.into(),
            count: 1,
            amount_minor,
        };
        let groups = [
            group(Date::constant(2030, 2, 28), "succeeded", 100),
            group(Date::constant(2030, 3, 11), "succeeded", 200),
            group(today, "pending", 300),
            group(today, "failed", 5_000),
        ];
        let d =
            fold(&groups, today, Date::constant(2030, 3, 11), Date::constant(2030, 3, 1), Date::constant(2030, 2, 13));
        assert_eq!(d.today_period.refunds, Tally { count: 1, amount_minor: 300 });
        assert_eq!(d.week.refunds, Tally { count: 2, amount_minor: 500 });
        assert_eq!(d.month.refunds, Tally { count: 2, amount_minor: 500 });
        assert_eq!(d.by_day.len(), 30);
        assert_eq!(d.by_day.iter().map(|(_, t)| t.amount_minor).sum::<i64>(), 600);
        assert_eq!(d.by_reason, vec![("defective".to_owned(), Tally { count: 2, amount_minor: 500 })]);
    }
}
