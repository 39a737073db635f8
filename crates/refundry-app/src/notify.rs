//! The customer told: when a refund succeeds, a confirmation in Simplified
//! Chinese or English — amount, date, masked account, expected arrival — by
//! email over SMTP and/or through the merchant's SMS gateway (a signed
//! webhook). The contact travels sealed and is opened only here.

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use refundry_core::contact::{Email, Phone};
use refundry_core::ids::RefundId;
use refundry_core::sale::PaymentMethod;
use refundry_store::Tx;
use refundry_store::model::{Job, NewJob, Refund, Sale};
use serde::{Deserialize, Serialize};

use crate::{Actor, App, AppError, ErrorCode, audit};

pub const NOTIFY_CUSTOMER: &str = "customer.notify";

/// How to reach customers.
#[derive(Debug, Clone, Default)]
pub struct NotifyConfig {
    /// `smtp://host:port` (plain), `smtp://host:port?tls=required`
    /// (STARTTLS) or `smtps://user:pass@host:465`; none: no email.
    pub smtp_url: Option<String>,
    /// The From address, e.g. `退款通知 <refunds@shop.example.cn>`.
    pub from: String,
    /// The merchant's SMS gateway: a POST of `{"phone", "text"}` signed like
    /// webhooks; none: no SMS.
    pub sms_gateway_url: Option<String>,
    pub sms_gateway_secret: Option<String>,
}

/// Whom to tell, in which language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerContact {
    pub email: Option<Email>,
    pub phone: Option<Phone>,
    /// `zh-CN` or `en`.
    pub locale: String,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    email: Option<String>,
    phone: Option<String>,
    locale: String,
}

pub(crate) fn seal(
    app_vault: &crate::crypto::Vault,
    contact: &CustomerContact,
    refund: RefundId,
) -> Result<String, AppError> {
    let plain = serde_json::to_string(&Sealed {
        email: contact.email.as_ref().map(|e| e.expose().to_owned()),
        phone: contact.phone.as_ref().map(|p| p.expose().to_owned()),
        locale: contact.locale.clone(),
    })
    .map_err(|e| AppError::new(ErrorCode::Internal, e.to_string()))?;
    app_vault.seal(&plain, &refund.to_string())
}

pub(crate) fn open_contact(
    app_vault: &crate::crypto::Vault,
    sealed: &str,
    refund: RefundId,
) -> Result<CustomerContact, AppError> {
    let plain = app_vault.open(sealed, &refund.to_string())?;
    let s: Sealed =
        serde_json::from_str(&plain).map_err(|_| AppError::new(ErrorCode::Internal, "sealed contact unreadable"))?;
    Ok(CustomerContact {
        email: s.email.as_deref().and_then(|e| Email::parse(e).ok()),
        phone: s.phone.as_deref().and_then(|p| Phone::parse(p).ok()),
        locale: s.locale,
    })
}

#[derive(Serialize, Deserialize)]
struct NotifyJob {
    refund_id: String,
}

/// Queues the confirmation, in the transaction that marks the refund succeeded.
pub(crate) fn queue(tx: &mut dyn Tx, refund: &Refund) -> Result<(), AppError> {
    if refund.customer_contact.is_none() {
        return Ok(());
    }
    let payload = serde_json::to_string(&NotifyJob { refund_id: refund.id.to_string() })
        .map_err(|e| AppError::new(ErrorCode::Internal, e.to_string()))?;
    tx.enqueue(&NewJob {
        merchant_id: Some(refund.merchant_id),
        kind: NOTIFY_CUSTOMER.into(),
        payload,
        run_after: refund.updated_at,
    })?;
    Ok(())
}

/// The account the money goes back to, as the customer recognises it.
fn account(sale: &Sale, zh: bool) -> String {
    match &sale.payment_method {
        PaymentMethod::Card { brand, last4, .. } => {
            if zh {
                format!("尾号 {} 的 {} 卡", last4.as_str(), brand)
            } else {
                format!("{} card ending {}", brand, last4.as_str())
            }
        }
        PaymentMethod::Wallet { wallet } => {
            let name = match (wallet.as_str(), zh) {
                ("alipay", true) => "支付宝",
                ("wechat_pay", true) => "微信支付",
                ("unionpay_qr", true) => "云闪付",
                (_, true) => "电子钱包",
                ("alipay", false) => "Alipay",
                ("wechat_pay", false) => "WeChat Pay",
                ("unionpay_qr", false) => "UnionPay QR",
                _ => "wallet",
            };
            if zh { format!("您的{name}账户") } else { format!("your {name} account") }
        }
        PaymentMethod::Cash => {
            if zh {
                "现金（已当面退还）".into()
            } else {
                "cash (handed back at the counter)".into()
            }
        }
    }
}

/// Subject and body of the confirmation.
pub fn confirmation(refund: &Refund, sale: &Sale, merchant: &str, zh: bool) -> (String, String) {
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap_or(jiff::tz::TimeZone::UTC);
    let date = |t: jiff::Timestamp| t.to_zoned(tz.clone()).strftime("%Y-%m-%d").to_string();
    let done = refund.completed_at.map(date).unwrap_or_default();
    let arrival = refund.expected_arrival_at.map(date).unwrap_or_else(|| done.clone());
    let amount = refund.amount.to_string();
    let account = account(sale, zh);
    if zh {
        (
            format!("【{merchant}】退款成功 {amount}"),
            format!(
                "您好，您在{merchant}的退款已成功：{amount} 已于 {done} 退回至{account}，预计 {arrival} 前到账。\n退款单号：{}\n如有疑问请联系门店。",
                refund.id
            ),
        )
    } else {
        (
            format!("{merchant}: refund of {amount} confirmed"),
            format!(
                "Your refund from {merchant} succeeded: {amount} went back to {account} on {done} and should arrive by {arrival}.\nRefund: {}\nQuestions? Ask the store.",
                refund.id
            ),
        )
    }
}

/// Sends the confirmation. An unreachable mail server or gateway is an
/// error, so the job runner retries it.
pub(crate) async fn notify(app: &App, job: &Job) -> Result<(), AppError> {
    let payload: NotifyJob = serde_json::from_str(&job.payload)
        .map_err(|e| AppError::new(ErrorCode::Internal, format!("bad job payload: {e}")))?;
    let id = RefundId::parse(&payload.refund_id).map_err(|e| AppError::new(ErrorCode::Internal, e.to_string()))?;
    let (refund, sale, merchant) = refundry_store::read(&app.store, move |tx| {
        let refund =
            tx.find_refund_any_merchant(id)?.ok_or_else(|| AppError::new(ErrorCode::Internal, "refund gone"))?;
        let sale = tx
            .find_sale(refund.merchant_id, refund.sale_id)?
            .ok_or_else(|| AppError::new(ErrorCode::Internal, "sale gone"))?;
        let merchant =
            tx.all_merchants()?.into_iter().find(|m| m.id == refund.merchant_id).map(|m| m.name).unwrap_or_default();
        Ok::<_, AppError>((refund, sale, merchant))
    })
    .await?;
    let Some(sealed) = &refund.customer_contact else { return complete(app, job, &refund, Vec::new()).await };
    let contact = open_contact(&app.config.vault, sealed, refund.id)?;
    let zh = !contact.locale.starts_with("en");
    let (subject, body) = confirmation(&refund, &sale, &merchant, zh);
    let config = &app.config.notify;
    let mut told = Vec::new();
    if let (Some(email), Some(url)) = (&contact.email, &config.smtp_url) {
        send_email(url, &config.from, email, &subject, &body).await?;
        told.push(format!("email {email}"));
    }
    if let (Some(phone), Some(url)) = (&contact.phone, &config.sms_gateway_url) {
        let text = format!("{subject}：{body}");
        let json =
            serde_json::json!({"phone": phone.expose(), "text": text, "refund_id": refund.id.to_string()}).to_string();
        let mut req = app.http.post(url).header("Content-Type", "application/json");
        if let Some(secret) = &config.sms_gateway_secret {
            req = req.header(
                crate::webhooks::SIGNATURE_HEADER,
                crate::webhooks::signature(secret, jiff::Timestamp::now().as_second(), json.as_bytes()),
            );
        }
        let res = req
            .body(json)
            .send()
            .await
            .map_err(|_| AppError::new(ErrorCode::Unavailable, "SMS gateway unreachable"))?;
        if !res.status().is_success() {
            return Err(AppError::new(ErrorCode::Unavailable, format!("SMS gateway answered {}", res.status())));
        }
        told.push(format!("sms {phone}"));
    }
    complete(app, job, &refund, told).await
}

async fn send_email(url: &str, from: &str, to: &Email, subject: &str, body: &str) -> Result<(), AppError> {
    let bad = |what: &str| AppError::new(ErrorCode::Internal, format!("email: {what}"));
    let from: Mailbox = from.parse().map_err(|_| bad("the From address is not valid"))?;
    let to: Mailbox = to.expose().parse().map_err(|_| bad("the customer's address is not valid"))?;
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body.to_owned())
        .map_err(|_| bad("cannot build the message"))?;
    let transport =
        AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|_| bad("smtp_url is not valid"))?.build();
    transport.send(message).await.map_err(|e| AppError::new(ErrorCode::Unavailable, format!("SMTP: {e}")))?;
    Ok(())
}

async fn complete(app: &App, job: &Job, refund: &Refund, told: Vec<String>) -> Result<(), AppError> {
    let (job_id, refund_id, merchant) = (job.id, refund.id, refund.merchant_id);
    refundry_store::write(&app.store, move |tx| {
        let now = crate::now();
        tx.complete_job(job_id, now)?;
        let action = if told.is_empty() { "customer.not_notified" } else { "customer.notified" };
        // masked: the contact types print nothing more
        let data = serde_json::json!({"channels": told});
        audit::record(tx, &Actor::system(merchant, "notifier"), action, &refund_id.to_string(), data, now)
    })
    .await
}
