//! Signed webhooks: every audited change of a merchant is an event, queued
//! in the outbox in the same transaction as the change and delivered at
//! least once to each endpoint that asked for it.
//!
//! Signature header: `Refundry-Signature: t=<unix seconds>,v1=<hex>` where
//! the hex is HMAC-SHA256 over `"<t>.<body>"` with the endpoint's secret.
//! Receivers check it in constant time and refuse old timestamps (replays).

use std::time::Duration;

use hmac::{Hmac, Mac};
use jiff::Timestamp;
use rand::RngCore;
use refundry_store::Tx;
use refundry_store::model::{Job, NewJob, WebhookDelivery, WebhookEndpoint};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::{Actor, App, AppError, ErrorCode, audit};

pub const DELIVER_WEBHOOK: &str = "webhook.deliver";
pub const SIGNATURE_HEADER: &str = "Refundry-Signature";
/// How long a receiver should accept a signature (replay window).
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Serialize, Deserialize)]
struct DeliveryJob {
    endpoint_id: String,
    event_id: String,
    event_type: String,
    payload: String,
}

/// `t=…,v1=…` for a body sent at `t`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// What a receiver does: parse the header, refuse stale timestamps, and
/// compare the MAC in constant time.
pub fn verify(secret: &str, header: &str, body: &[u8], now_unix: i64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    if (now_unix - t).abs() > TOLERANCE_SECS {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&v1).is_ok()
}

fn check_url(url: &str) -> Result<(), AppError> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2048
        && !url.contains(char::is_whitespace);
    if ok { Ok(()) } else { Err(AppError::validation("url", "url must be an http(s) URL")) }
}

/// Queues the event for every endpoint of the merchant that asked for it.
/// Called by [`audit::record`], inside the change's transaction.
pub(crate) fn emit(tx: &mut dyn Tx, event: &refundry_store::model::AuditEvent) -> Result<(), AppError> {
    let endpoints = tx.endpoints_of(event.merchant_id)?;
    let wanted: Vec<&WebhookEndpoint> = endpoints
        .iter()
        .filter(|e| e.disabled_at.is_none() && e.events.iter().any(|t| t == "*" || *t == event.action))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    // the chain position is given only at commit; a time-ordered id names the
    // event to receivers, who use it to drop duplicates
    let event_id = format!("evt_{}", uuid::Uuid::now_v7().simple());
    let payload = serde_json::json!({
        "id": event_id,
        "type": event.action,
        "created_at": event.at.to_string(),
        "object_id": event.subject,
        "data": serde_json::from_str::<serde_json::Value>(&event.data).unwrap_or(serde_json::Value::Null),
    })
    .to_string();
    for endpoint in wanted {
        let job = DeliveryJob {
            endpoint_id: endpoint.id.clone(),
            event_id: event_id.clone(),
            event_type: event.action.clone(),
            payload: payload.clone(),
        };
        tx.enqueue(&NewJob {
            merchant_id: Some(event.merchant_id),
            kind: DELIVER_WEBHOOK.to_owned(),
            payload: serde_json::to_string(&job).map_err(|e| AppError::new(ErrorCode::Internal, e.to_string()))?,
            run_after: event.at,
        })?;
    }
    Ok(())
}

impl App {
    /// Registers an endpoint; the signing secret is in the answer only.
    pub async fn create_webhook_endpoint(
        &self,
        actor: &Actor,
        url: &str,
        events: Vec<String>,
    ) -> Result<(WebhookEndpoint, String), AppError> {
        check_url(url)?;
        if events.is_empty() || events.iter().any(|e| e.is_empty() || e.len() > 64 || e.contains(char::is_whitespace)) {
            return Err(AppError::validation("events", "name event types such as refund.succeeded, or * for all"));
        }
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let secret = format!("whsec_{}", hex::encode(bytes));
        let id = format!("we_{}", uuid::Uuid::now_v7().simple());
        let endpoint = WebhookEndpoint {
            secret: self.config.vault.seal(&secret, &id)?,
            id,
            merchant_id: actor.merchant_id,
            url: url.to_owned(),
            events,
            created_at: crate::now(),
            disabled_at: None,
        };
        let actor = actor.clone();
        let stored = refundry_store::write(&self.store, move |tx| {
            tx.insert_endpoint(&endpoint)?;
            let data = serde_json::json!({"after": {"url": endpoint.url, "events": endpoint.events}});
            audit::record(tx, &actor, "webhook_endpoint.created", &endpoint.id, data, endpoint.created_at)?;
            Ok::<_, AppError>(endpoint.clone())
        })
        .await?;
        Ok((stored, secret))
    }

    pub async fn webhook_endpoints(&self, actor: &Actor) -> Result<Vec<WebhookEndpoint>, AppError> {
        let merchant = actor.merchant_id;
        refundry_store::read(&self.store, move |tx| Ok(tx.endpoints_of(merchant)?)).await
    }

    /// The delivery log of one of the merchant's endpoints, newest first.
    pub async fn webhook_deliveries(&self, actor: &Actor, endpoint_id: &str) -> Result<Vec<WebhookDelivery>, AppError> {
        let (merchant, id) = (actor.merchant_id, endpoint_id.to_owned());
        refundry_store::read(&self.store, move |tx| {
            let endpoint = tx.find_endpoint(&id)?.filter(|e| e.merchant_id == merchant);
            if endpoint.is_none() {
                return Err(AppError::new(ErrorCode::WebhookEndpointNotFound, format!("no webhook endpoint {id}")));
            }
            Ok(tx.deliveries_of(&id, 100)?)
        })
        .await
    }

    /// Sends a logged delivery's event again, as a new job.
    pub async fn redeliver(&self, actor: &Actor, delivery_id: i64) -> Result<(), AppError> {
        let actor = actor.clone();
        refundry_store::write(&self.store, move |tx| {
            let missing = || AppError::new(ErrorCode::WebhookDeliveryNotFound, format!("no delivery {delivery_id}"));
            let delivery = tx.find_delivery(delivery_id)?.ok_or_else(missing)?;
            let endpoint = tx.find_endpoint(&delivery.endpoint_id)?.filter(|e| e.merchant_id == actor.merchant_id);
            let endpoint = endpoint.ok_or_else(missing)?;
            let job = DeliveryJob {
                endpoint_id: endpoint.id.clone(),
                event_id: delivery.event_id.clone(),
                event_type: delivery.event_type.clone(),
                payload: delivery.payload.clone(),
            };
            let now = crate::now();
            tx.enqueue(&NewJob {
                merchant_id: Some(actor.merchant_id),
                kind: DELIVER_WEBHOOK.to_owned(),
                payload: serde_json::to_string(&job).map_err(|e| AppError::new(ErrorCode::Internal, e.to_string()))?,
                run_after: now,
            })?;
            let data = serde_json::json!({"event_id": delivery.event_id, "delivery": delivery_id});
            audit::record(tx, &actor, "webhook.redelivery_requested", &endpoint.id, data, now)
        })
        .await?;
        self.jobs_waiting.notify_one();
        Ok(())
    }
}

/// Delivers one event once; any answer but 2xx is an error, so the job
/// runner retries it with backoff and, in the end, sets it aside as dead.
pub(crate) async fn deliver(app: &App, job: &Job) -> Result<(), AppError> {
    let d: DeliveryJob = serde_json::from_str(&job.payload)
        .map_err(|e| AppError::new(ErrorCode::Internal, format!("bad job payload: {e}")))?;
    let id = d.endpoint_id.clone();
    let endpoint = refundry_store::read(&app.store, move |tx| Ok::<_, AppError>(tx.find_endpoint(&id)?))
        .await?
        .ok_or_else(|| AppError::new(ErrorCode::WebhookEndpointNotFound, "the endpoint is gone"))?;
    if endpoint.disabled_at.is_some() {
        return Ok(());
    }
    let secret = app.config.vault.open(&endpoint.secret, &endpoint.id)?;
    let now = Timestamp::now();
    let header = signature(&secret, now.as_second(), d.payload.as_bytes());
    let clock = std::time::Instant::now();
    let sent = app
        .http
        .post(&endpoint.url)
        .header("Content-Type", "application/json")
        .header(SIGNATURE_HEADER, header)
        .header("Refundry-Event-Id", &d.event_id)
        .header("Refundry-Event-Type", &d.event_type)
        .timeout(Duration::from_secs(10))
        .body(d.payload.clone())
        .send()
        .await;
    let (status_code, error) = match &sent {
        Ok(res) if res.status().is_success() => (Some(res.status().as_u16()), None),
        Ok(res) => (Some(res.status().as_u16()), Some(format!("answered {}", res.status()))),
        Err(e) => (None, Some(if e.is_timeout() { "timed out".to_owned() } else { "could not connect".to_owned() })),
    };
    let delivery = WebhookDelivery {
        id: 0,
        endpoint_id: endpoint.id.clone(),
        event_id: d.event_id.clone(),
        event_type: d.event_type.clone(),
        payload: d.payload.clone(),
        attempt: job.attempts,
        at: crate::now(),
        status_code,
        duration_ms: i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX),
        error: error.clone(),
    };
    let done = error.is_none();
    let job_id = job.id;
    refundry_store::write(&app.store, move |tx| {
        tx.record_delivery(&delivery)?;
        if done {
            tx.complete_job(job_id, crate::now())?;
        }
        Ok::<_, AppError>(())
    })
    .await?;
    metrics::counter!("refundry_webhook_deliveries_total", "ok" => if done { "true" } else { "false" }).increment(1);
    match error {
        None => Ok(()),
        Some(e) => Err(AppError::new(ErrorCode::Unavailable, format!("webhook to {}: {e}", endpoint.url))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_once_and_only_for_its_body_and_time() {
        let body = br#"{"type":"refund.succeeded"}"#;
        let header = signature("whsec_x", 1_800_000_000, body);
        assert!(verify("whsec_x", &header, body, 1_800_000_010));
        assert!(!verify("whsec_y", &header, body, 1_800_000_010));
        assert!(!verify("whsec_x", &header, b"{}", 1_800_000_010));
        assert!(!verify("whsec_x", &header, body, 1_800_000_000 + TOLERANCE_SECS + 1), "a replay later is refused");
        assert!(!verify("whsec_x", "t=1,v1=zz", body, 1));
    }
}
