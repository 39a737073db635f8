//! Walks the table "Endpoints and the scope each needs" in docs/api.md:
//! every endpoint with every scope, every role and another merchant's key
//! gets exactly the answer the table says.

use std::sync::atomic::{AtomicU32, Ordering};

use refundry_app::keys::ALL_SCOPES;
use refundry_app::users::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

struct Row {
    method: Method,
    path: String,
    scope: String,
}

fn table() -> Vec<Row> {
    let guide = include_str!("../../../../docs/api.md");
    let section = guide.split("## Endpoints and the scope each needs").nth(1).expect("the section exists");
    section
        .lines()
        .skip_while(|l| !l.starts_with("| `"))
        .take_while(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let endpoint = cells[1].trim_matches('`');
            let (method, path) = endpoint.split_once(' ').unwrap();
            Row { method: method.parse().unwrap(), path: path.to_owned(), scope: cells[2].trim_matches('`').to_owned() }
        })
        .collect()
}

enum Caller {
    Key(&'static str),
    Role(Role),
}

impl Caller {
    fn holds(&self, scope: &str) -> bool {
        match self {
            Caller::Key(s) => *s == scope || *s == "admin",
            Caller::Role(r) => r.grants(scope),
        }
    }
}

static N: AtomicU32 = AtomicU32::new(0);

fn body_for(row: &Row, sale_id: &str) -> Option<Value> {
    let n = N.fetch_add(1, Ordering::Relaxed);
    Some(match (row.method.as_str(), row.path.as_str()) {
        ("POST", "/v1/sessions") => json!({"username": "nobody.at.all", "password": "not the password"}),
        ("POST", "/v1/users") => {
            json!({"username": format!("walker{n}"), "display_name": "w", "role": "cashier", "password": "correct horse battery"})
        }
        ("POST", "/v1/keys") => json!({"name": format!("k{n}"), "scopes": ["reports:read"]}),
        ("PUT", "/v1/policy") => {
            json!({"rules": refundry_app::policy::PolicyDoc::from(&refundry_core::policy::RefundPolicy::default())})
        }
        ("POST", "/v1/sales") => card_sale(),
        ("POST", "/v1/batches/settle") => json!({"terminal_id": "T0009", "batch_no": format!("{n:06}")}),
        ("POST", "/v1/refunds/preview") | ("POST", "/v1/refunds") => {
            json!({"sale_id": sale_id, "amount": 1, "reason": "other"})
        }
        ("POST", "/v1/disputes/import") => return None,
        ("POST", "/v1/disputes") => json!({"sale_id": sale_id, "case_ref": format!("CB{n}"), "network": "visa",
            "reason_code": "13.1", "amount": 100, "due_by": "2030-12-20T00:00:00Z"}),
        ("POST", p) if p.ends_with("/events") => json!({"event": "submit_evidence"}),
        ("POST", p) if p.ends_with("/evidence") => json!({"kind": "receipt", "note": "walked"}),
        ("POST", "/v1/corrections") => json!({"sale_id": sale_id, "kind": "other", "cause": "other"}),
        ("POST", p) if p.ends_with("/refund") => json!({"amount": 1}),
        ("POST", p) if p.ends_with("/dismiss") => json!({"reason": "walked"}),
        ("POST", "/v1/webhook-endpoints") => json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]}),
        ("POST", p) if p.ends_with("/approve") || p.ends_with("/retry") || p.ends_with("/arrived") => json!({}),
        ("POST", p) if p.ends_with("/redeliver") => json!({}),
        ("POST", p) if p.ends_with("/reject") => json!({"note": "walked"}),
        _ => return None,
    })
}

async fn call(t: &TestApp, token: Option<&str>, row: &Row, sale_id: &str, refund_id: &str) -> (StatusCode, Value) {
    let id = if row.path.starts_with("/v1/sales/") {
        sale_id
    } else if row.path.starts_with("/v1/refunds/") {
        refund_id
    } else {
        "1"
    };
    let path = row.path.replace("{id}", id).replace("{item}", "1");
    let mut req = t.client.request(row.method.clone(), format!("{}{path}", t.base));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body_for(row, sale_id) {
        req = req.json(&body).header("Idempotency-Key", format!("walk-{}", N.fetch_add(1, Ordering::Relaxed)));
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_every_caller_as_the_table_says() {
    let mut t = spawn().await;
    let mut rows = table();
    assert!(rows.len() >= 20, "the table lists the endpoints");
    // logging out ends the sessions the other rows still need
    rows.sort_by_key(|r| r.path == "/v1/sessions/current");
    let sale = t.create_sale(card_sale()).await;
    let sale_id = sale["id"].as_str().unwrap().to_owned();
    let refund: Value = t
        .refund("walk-refund", json!({"sale_id": sale_id, "amount": 10, "reason": "other"}))
        .await
        .json()
        .await
        .unwrap();
    let refund_id = refund["id"].as_str().unwrap().to_owned();

    let mut callers: Vec<(Caller, String)> = Vec::new();
    let merchant = t.app.default_merchant().await.unwrap().0;
    for scope in ALL_SCOPES {
        let key = t.app.create_key(&refundry_app::Actor::system(merchant.id, "test"), scope, &[scope]).await.unwrap();
        callers.push((Caller::Key(scope), key.secret));
    }
    for role in Role::ALL {
        let token = t.person(&format!("{}.walker", role.as_str()), role.as_str()).await;
        callers.push((Caller::Role(*role), token));
    }

    let mut checked = 0;
    for row in &rows {
        let (status, _) = call(&t, None, row, &sale_id, &refund_id).await;
        if row.scope == "none" {
            assert_ne!(status, StatusCode::FORBIDDEN, "{} {}", row.method, row.path);
        } else {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{} {} without a token", row.method, row.path);
        }
        for (caller, token) in &callers {
            let (status, body) = call(&t, Some(token), row, &sale_id, &refund_id).await;
            let what = format!(
                "{} {} as {}",
                row.method,
                row.path,
                match caller {
                    Caller::Key(s) => format!("key with {s}"),
                    Caller::Role(r) => format!("{} session", r.as_str()),
                }
            );
            let allowed = matches!(row.scope.as_str(), "none" | "any") || caller.holds(&row.scope);
            if allowed {
                let scope_refusal = status == StatusCode::FORBIDDEN
                    && body["code"] == "forbidden"
                    && body.get("required_scope").is_some();
                let unauthenticated = body["code"] == "unauthorized";
                assert!(!unauthenticated && !scope_refusal, "{what}: {status} {body}");
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
                assert_eq!(body["required_scope"], row.scope.as_str(), "{what}");
            }
            checked += 1;
        }
    }

    // another merchant's admin key: our things do not exist for it
    let other = t.other_merchant_key().await;
    for row in &rows {
        let (status, body) = call(&t, Some(&other), row, &sale_id, &refund_id).await;
        let names_our_sale = row.method == Method::POST
            && (row.path.starts_with("/v1/refunds") || row.path == "/v1/disputes" || row.path == "/v1/corrections")
            && !row.path.contains("{id}");
        if row.path.contains("{id}") || names_our_sale {
            assert_eq!(status, StatusCode::NOT_FOUND, "{} {} as another merchant: {body}", row.method, row.path);
        } else {
            assert!(!body.to_string().contains(&sale_id), "{} {} leaked a sale", row.method, row.path);
            assert!(!body.to_string().contains(&refund_id), "{} {} leaked a refund", row.method, row.path);
        }
        checked += 1;
    }
    assert_eq!(checked, rows.len() * (callers.len() + 1));
    t.shutdown().await;
}
