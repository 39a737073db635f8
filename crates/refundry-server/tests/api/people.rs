use refundry_app::AppConfig;
use refundry_server::ServerConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_logs_in_sees_who_they_are_and_logs_out() {
    let mut t = spawn().await;
    let token = t.person("wang.fang", "cashier").await;
    assert!(token.starts_with("rs_"));
    let me: Value = t.get_as(&token, "/v1/me").send().await.unwrap().json().await.unwrap();
    assert_eq!(me["user"], "wang.fang");
    assert_eq!(me["role"], "cashier");
    assert_eq!(me["scopes"], json!(["sales:write", "refunds:write"]));
    let res = t.client.delete(format!("{}/v1/sessions/current", t.base)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = t.get_as(&token, "/v1/me").send().await.unwrap();
    problem(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_slow_down_then_lock_the_account() {
    let config = AppConfig { max_failed_logins: 3, ..AppConfig::default() };
    let mut t = spawn_configured(ServerConfig::default(), config).await;
    t.person("wang.fang", "cashier").await;
    let login = |password: &'static str| {
        let t = &t;
        async move {
            t.client
                .post(format!("{}/v1/sessions", t.base))
                .json(&json!({"username": "wang.fang", "password": password}))
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..3 {
        problem(login("guess guess guess").await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    // locked: even the right password is refused for now
    let p = problem(login("correct horse battery").await, StatusCode::LOCKED, "account_locked").await;
    assert!(p["locked_until"].is_string());
    // an unknown user looks the same as a wrong password
    let res = t
        .client
        .post(format!("{}/v1/sessions", t.base))
        .json(&json!({"username": "nobody.here", "password": "whatever it is"}))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let audit: Value = t.get_json("/v1/audit-events?limit=500").await;
    let failures = audit["data"].as_array().unwrap().iter().filter(|e| e["action"] == "user.login_failed").count();
    assert_eq!(failures, 4, "three wrong passwords and one attempt while locked");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_are_made_by_admins_with_checked_names_and_passwords() {
    let mut t = spawn().await;
    t.person("wang.fang", "cashier").await;
    let again =
        json!({"username": "wang.fang", "display_name": "x", "role": "cashier", "password": "correct horse battery"});
    problem(t.post("/v1/users", &again).send().await.unwrap(), StatusCode::CONFLICT, "username_taken").await;
    let weak = json!({"username": "li.lei", "display_name": "x", "role": "cashier", "password": "short"});
    let p = problem(
        t.post("/v1/users", &weak).send().await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(p["field"], "password");
    let role = json!({"username": "li.lei", "display_name": "x", "role": "boss", "password": "correct horse battery"});
    problem(t.post("/v1/users", &role).send().await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
        .await;
    let list: Value = t.get_json("/v1/users").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(list["data"][0].get("password_hash").is_none(), "hashes never leave the server");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_pinned_key_and_person_see_only_their_store() {
    let mut t = spawn().await;
    let merchant = t.app.default_merchant().await.unwrap().0;
    let actor = refundry_app::Actor::system(merchant.id, "test");
    let second = t.app.create_store(&actor, "Second store").await.unwrap();
    let here = t.create_sale(card_sale()).await;
    let mut there_body = card_sale();
    there_body["terminal_id"] = json!("T0200");
    there_body["store_id"] = json!(second.id.to_string());
    let there = t.create_sale(there_body).await;

    let key: Value = t
        .post("/v1/keys", &json!({"name": "second store counter", "scopes": ["sales:write", "refunds:write"], "store_id": second.id.to_string()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pinned = key["secret"].as_str().unwrap();
    let person = t.person_at("zhou.jie", "cashier", Some(&second.id.to_string())).await;
    for token in [pinned, person.as_str()] {
        let list: Value = t.get_as(token, "/v1/sales").send().await.unwrap().json().await.unwrap();
        let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec![there["id"].as_str().unwrap()]);
        let res = t.get_as(token, &format!("/v1/sales/{}", here["id"].as_str().unwrap())).send().await.unwrap();
        problem(res, StatusCode::NOT_FOUND, "sale_not_found").await;
        let body = json!({"sale_id": here["id"], "amount": 100, "reason": "other"});
        let res = t
            .post_as(token, "/v1/refunds", &body)
            .header("Idempotency-Key", format!("pin-{token}"))
            .send()
            .await
            .unwrap();
        problem(res, StatusCode::NOT_FOUND, "sale_not_found").await;
        let res = t.post_as(token, "/v1/sales", &card_sale()).send().await.unwrap();
        problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    }
    t.shutdown().await;
}
