//! Notices nobody asks for: a reminder before a case's response deadline
//! passes, and an alert when a merchant's chargeback ratio nears or crosses
//! a card network's threshold. Both are audited, and so sent to webhooks.
//!
//! Each notice is sent at most once: the `notices_sent` row is claimed in
//! the same transaction as the audit event, so a restart, a second tick or
//! a second instance finds it taken and sends nothing.

use jiff::Timestamp;
use refundry_core::ratio::RatioLevel;

use crate::{Actor, App, AppError, audit};

const SECONDS_PER_DAY: i64 = 86_400;

/// Cases looked at per threshold and tick; the rest wait for the next tick.
const REMINDERS_PER_TICK: u32 = 200;

fn reminder_kind(days: u32) -> String {
    format!("deadline_reminder_{days}d")
}

impl App {
    /// Sends the reminders due at `now`: a case with at most N days left
    /// (N one of the configured reminder days) gets the reminder of the
    /// smallest such N once (`dispute.deadline_reminder`); the larger ones it
    /// skipped are not sent later. Returns how many were sent.
    pub async fn send_deadline_reminders(&self, now: Timestamp) -> Result<usize, AppError> {
        let mut days = self.config.disputes.reminder_days.clone();
        days.retain(|d| *d > 0);
        days.sort_unstable();
        days.dedup();
        refundry_store::write(&self.store, move |tx| {
            let mut sent = 0;
            for (i, &threshold) in days.iter().enumerate() {
                let kind = reminder_kind(threshold);
                let until = now
                    .checked_add(jiff::SignedDuration::from_secs(i64::from(threshold) * SECONDS_PER_DAY))
                    .unwrap_or(Timestamp::MAX);
                for case in tx.disputes_due_without_notice(now, until, &kind, REMINDERS_PER_TICK)? {
                    if !tx.claim_notice(case.merchant_id, &case.id.to_string(), &kind, now)? {
                        continue;
                    }
                    for &larger in &days[i + 1..] {
                        tx.claim_notice(case.merchant_id, &case.id.to_string(), &reminder_kind(larger), now)?;
                    }
                    let left = refundry_core::dispute::deadline_status(case.due_by, now, threshold);
                    let data = serde_json::json!({
                        "case_ref": case.case_ref, "sale_id": case.sale_id.to_string(),
                        "stage": case.stage, "status": case.status, "due_by": case.due_by.to_string(),
                        "days_before": threshold, "days_left": left.days_left,
                        "zh": format!("争议案件 {} 须在 {} 前答复，剩余不足 {} 天。", case.case_ref, case.due_by, threshold),
                        "en": format!(
                            "Case {} must be answered by {}; less than {} day(s) left.",
                            case.case_ref, case.due_by, threshold
                        ),
                    });
                    let actor = Actor::system(case.merchant_id, "deadline-watch");
                    audit::record(tx, &actor, "dispute.deadline_reminder", &case.id.to_string(), data, now)?;
                    sent += 1;
                }
            }
            Ok(sent)
        })
        .await
    }

    /// Checks every merchant's chargeback ratios for the month of `now` (in
    /// the business time zone) and raises `chargeback_ratio.warning` when
    /// one nears a programme's lowest level, `chargeback_ratio.exceeded`
    /// when it reaches a level; each once per merchant, month, programme and
    /// level (reaching a level also settles the ones below it). Returns how
    /// many alerts were raised.
    pub async fn check_chargeback_ratios(&self, now: Timestamp) -> Result<usize, AppError> {
        let month = now.to_zoned(self.config.business_tz.clone()).date().first_of_month();
        let merchants = refundry_store::read(&self.store, |tx| Ok::<_, AppError>(tx.all_merchants()?)).await?;
        let mut raised = 0;
        for merchant in merchants {
            let actor = Actor::system(merchant.id, "ratio-watch");
            for watch in self.chargeback_ratios(&actor, month).await? {
                let level = watch.assessment.level;
                if level < RatioLevel::Nearing {
                    continue;
                }
                let programme = watch.assessment.programme.as_str();
                let subject = format!("chargeback_ratio:{}:{programme}", month.strftime("%Y-%m"));
                let action =
                    if level == RatioLevel::Nearing { "chargeback_ratio.warning" } else { "chargeback_ratio.exceeded" };
                let data = serde_json::json!({
                    "month": month.strftime("%Y-%m").to_string(), "programme": programme, "level": level.as_str(),
                    "count_ratio_bps": watch.assessment.count_ratio_bps,
                    "amount_ratio_bps": watch.assessment.amount_ratio_bps,
                    "chargebacks": watch.stats.disputes_count, "chargebacks_amount": watch.stats.disputes_minor,
                    "sales": watch.stats.sales_count, "sales_amount": watch.stats.sales_minor,
                    "reasons": watch.assessment.reasons.iter()
                        .map(|r| serde_json::json!({"code": r.code, "zh": r.zh, "en": r.en}))
                        .collect::<Vec<_>>(),
                });
                let actor = actor.clone();
                let sent = refundry_store::write(&self.store, move |tx| {
                    if !tx.claim_notice(actor.merchant_id, &subject, level.as_str(), now)? {
                        return Ok(false);
                    }
                    for lower in RatioLevel::ALL.iter().filter(|l| **l >= RatioLevel::Nearing && **l < level) {
                        tx.claim_notice(actor.merchant_id, &subject, lower.as_str(), now)?;
                    }
                    audit::record(tx, &actor, action, &subject, data.clone(), now)?;
                    Ok::<_, AppError>(true)
                })
                .await?;
                raised += usize::from(sent);
            }
        }
        Ok(raised)
    }
}
