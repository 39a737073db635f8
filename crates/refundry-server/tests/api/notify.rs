use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use refundry_app::AppConfig;
use refundry_app::notify::NotifyConfig;
use refundry_server::ServerConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::*;

/// A tiny SMTP server that accepts everything and keeps the messages.
async fn smtp_sink() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("smtp://{}", listener.local_addr().unwrap());
    let messages: Arc<Mutex<Vec<String>>> = Arc::default();
    let kept = Arc::clone(&messages);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let kept = Arc::clone(&kept);
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 sink ESMTP\r\n").await.ok();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = data.as_mut() {
                        if line == "." {
                            kept.lock().unwrap().push(data.take().unwrap());
                            write.write_all(b"250 queued\r\n").await.ok();
                        } else {
                            body.push_str(&line);
                            body.push('\n');
                        }
                        continue;
                    }
                    let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                    let answer: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => b"221 bye\r\n",
                        _ => b"250 ok\r\n",
                    };
                    write.write_all(answer).await.ok();
                    if verb == "QUIT" {
                        break;
                    }
                }
            });
        }
    });
    (url, messages)
}

/// The text of a message: headers plus the decoded body.
fn readable(raw: &str) -> String {
    let (headers, body) = raw.split_once("\n\n").unwrap_or((raw, ""));
    let body = if headers.to_ascii_lowercase().contains("content-transfer-encoding: base64") {
        let compact: String = body.split_whitespace().collect();
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(compact).unwrap()).unwrap()
    } else {
        body.to_owned()
    };
    format!("{headers}\n\n{body}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customer_gets_a_chinese_confirmation_by_email_and_the_address_is_sealed() {
    let (smtp_url, inbox) = smtp_sink().await;
    let config = AppConfig {
        notify: NotifyConfig {
            smtp_url: Some(smtp_url),
            from: "退款通知 <refunds@shop.example.cn>".into(),
            ..NotifyConfig::default()
        },
        ..AppConfig::default()
    };
    let mut t = spawn_configured(ServerConfig::default(), config).await;
    let sale = t.create_sale(card_sale()).await;
    let body = json!({"sale_id": sale["id"], "amount": 3000, "reason": "defective",
        "customer": {"email": "wang.fang@example.cn", "locale": "zh-CN"}});
    let refund: Value = t.refund("n1", body).await.json().await.unwrap();
    assert!(refund.get("customer").is_none(), "the contact is never shown");
    let id = refund["id"].as_str().unwrap();
    t.settled_refund(id).await;
    for _ in 0..200 {
        if !inbox.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mail = readable(&inbox.lock().unwrap().first().expect("an email arrived").clone());
    assert!(mail.contains("wang.fang@example.cn"), "sent to the customer");
    assert!(mail.contains("退款已成功"), "{mail}");
    assert!(mail.contains("30.00 CNY"), "{mail}");
    assert!(mail.contains("尾号 1234"), "masked account: {mail}");
    assert!(!mail.contains("622202"), "never more of the card than the last 4");
    assert!(mail.contains(id));
    assert!(!t.stored_anywhere("wang.fang@example.cn"), "the address is sealed at rest");
    let res = t
        .post(
            "/v1/refunds",
            &json!({"sale_id": sale["id"], "amount": 1, "reason": "other", "customer": {"email": "nope"}}),
        )
        .header("Idempotency-Key", "n2")
        .send()
        .await
        .unwrap();
    let p = problem(res, reqwest::StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(p["field"], "customer.email");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_goes_through_the_merchants_gateway_signed() {
    use axum::routing::post;
    let received: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let kept = Arc::clone(&received);
    let gateway = axum::Router::new().route(
        "/sms",
        post(move |headers: axum::http::HeaderMap, body: String| {
            let kept = Arc::clone(&kept);
            async move {
                let sig = headers.get("refundry-signature").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                kept.lock().unwrap().push((sig, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sms", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, gateway).await });
    let config = AppConfig {
        notify: NotifyConfig {
            sms_gateway_url: Some(url),
            sms_gateway_secret: Some("gw-secret".into()),
            from: "x <x@example.cn>".into(),
            ..NotifyConfig::default()
        },
        ..AppConfig::default()
    };
    let mut t = spawn_configured(ServerConfig::default(), config).await;
    let mut wallet = card_sale();
    wallet["payment_method"] = json!({"type": "wallet", "wallet": "alipay"});
    let sale = t.create_sale(wallet).await;
    let body = json!({"sale_id": sale["id"], "amount": 3000, "reason": "defective",
        "customer": {"phone": "13800138000", "locale": "en"}});
    let refund: Value = t.refund("s1", body).await.json().await.unwrap();
    t.settled_refund(refund["id"].as_str().unwrap()).await;
    for _ in 0..200 {
        if !received.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (sig, body) = received.lock().unwrap().first().expect("an SMS request arrived").clone();
    assert!(refundry_app::webhooks::verify("gw-secret", &sig, body.as_bytes(), jiff::Timestamp::now().as_second()));
    let sms: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(sms["phone"], "13800138000");
    assert!(sms["text"].as_str().unwrap().contains("Alipay"), "{sms}");
    // the audit event is written once the gateway has answered
    let mut told = Value::Null;
    for _ in 0..200 {
        let audit: Value = t.get_json("/v1/audit-events?limit=500").await;
        if let Some(e) = audit["data"].as_array().unwrap().iter().find(|e| e["action"] == "customer.notified") {
            told = e.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(told["data"]["channels"], json!(["sms 138****8000"]), "masked in the log");
    t.shutdown().await;
}
