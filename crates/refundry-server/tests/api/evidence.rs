use base64::Engine;
use refundry_app::AppConfig;
use refundry_app::disputes::DisputeConfig;
use refundry_server::ServerConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::*;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn pdf(len: usize) -> Vec<u8> {
    let mut bytes = b"%PDF-1.7\n".to_vec();
    bytes.resize(len, b'x');
    bytes
}

async fn open_case(t: &TestApp, case_ref: &str) -> String {
    let sale = t.create_sale(card_sale()).await;
    let body = json!({"sale_id": sale["id"], "case_ref": case_ref, "network": "visa", "reason_code": "13.1",
        "amount": 5000, "due_by": "2030-12-20T00:00:00+08:00"});
    let res = t.post("/v1/disputes", &body).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let case: Value = res.json().await.unwrap();
    case["id"].as_str().unwrap().to_owned()
}

async fn add(t: &TestApp, case: &str, body: Value) -> reqwest::Response {
    t.post(&format!("/v1/disputes/{case}/evidence"), &body).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_is_kept_with_its_checksum_and_listed_in_the_summary() {
    let mut t = spawn().await;
    let case = open_case(&t, "CB-EV1").await;
    // larger than the 256 KiB every other body is held to
    let file = pdf(600 * 1024);
    let res = add(
        &t,
        &case,
        json!({"kind": "receipt", "note": "签购单，持卡人签名清晰",
            "file": {"name": "../../scans/签购单.pdf", "content_base64": b64(&file)}}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let receipt: Value = res.json().await.unwrap();
    assert_eq!(receipt["kind"], "receipt");
    assert_eq!(receipt["file"]["name"], "签购单.pdf", "the path is dropped");
    assert_eq!(receipt["file"]["content_type"], "application/pdf");
    assert_eq!(receipt["file"]["size_bytes"], file.len());
    let sha = hex::encode(Sha256::digest(&file));
    assert_eq!(receipt["file"]["sha256"], sha.as_str());

    // a PNG sent under a .pdf name is a PNG
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01".to_vec();
    let res =
        add(&t, &case, json!({"kind": "signature", "file": {"name": "sig.pdf", "content_base64": b64(&png)}})).await;
    let signature: Value = res.json().await.unwrap();
    assert_eq!(signature["file"]["content_type"], "image/png");
    // an item without a file
    let res = add(&t, &case, json!({"kind": "correspondence", "note": "顾客来电确认已收货"})).await;
    assert_eq!(res.status(), StatusCode::CREATED);

    let list: Value = t.get(&format!("/v1/disputes/{case}/evidence")).send().await.unwrap().json().await.unwrap();
    let kinds: Vec<&str> = list["data"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["receipt", "signature", "correspondence"], "oldest first");
    assert!(list["data"][2]["file"].is_null());

    let id = receipt["id"].as_str().unwrap();
    let res = t.get(&format!("/v1/disputes/{case}/evidence/{id}/file")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/pdf");
    let digest = format!("sha-256={}", b64(&Sha256::digest(&file)));
    assert_eq!(res.headers()["digest"].to_str().unwrap(), digest);
    assert!(res.headers()["content-disposition"].to_str().unwrap().contains("UTF-8''%E7%AD%BE"));
    assert_eq!(res.bytes().await.unwrap().as_ref(), file.as_slice());
    let no_file = list["data"][2]["id"].as_str().unwrap();
    let res = t.get(&format!("/v1/disputes/{case}/evidence/{no_file}/file")).send().await.unwrap();
    problem(res, StatusCode::NOT_FOUND, "evidence_not_found").await;

    let summary = t.get(&format!("/v1/disputes/{case}/summary?locale=en")).send().await.unwrap().text().await.unwrap();
    assert!(summary.contains("CB-EV1"), "{summary}");
    assert!(summary.contains(&format!("sha256:{sha}")), "{summary}");
    assert!(summary.contains("签购单.pdf"), "{summary}");
    let zh = t.get(&format!("/v1/disputes/{case}/summary")).send().await.unwrap().text().await.unwrap();
    assert!(zh.contains("证据"), "{zh}");

    let audit: Value = t.get("/v1/audit-events?limit=500").send().await.unwrap().json().await.unwrap();
    let added: Vec<&Value> =
        audit["data"].as_array().unwrap().iter().filter(|e| e["action"] == "dispute.evidence_added").collect();
    assert_eq!(added.len(), 3);
    assert_eq!(added[0]["subject"], case.as_str());
    assert_eq!(added[0]["data"]["file"]["sha256"], sha.as_str());

    // another merchant sees no such case
    let other = t.other_merchant_key().await;
    let res = t.get_as(&other, &format!("/v1/disputes/{case}/evidence/{id}/file")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_other_types_card_numbers_and_closed_cases_are_refused_and_nothing_is_kept() {
    let mut t = spawn().await;
    let case = open_case(&t, "CB-EV2").await;
    let exe = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0".to_vec();
    let res = add(&t, &case, json!({"kind": "other", "file": {"name": "slip.pdf", "content_base64": b64(&exe)}})).await;
    problem(res, StatusCode::UNPROCESSABLE_ENTITY, "evidence_file_type_not_allowed").await;
    let res = add(&t, &case, json!({"kind": "selfie"})).await;
    let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(p["field"], "kind");
    let res = add(&t, &case, json!({"kind": "other", "file": {"name": "a.txt", "content_base64": "%%%"}})).await;
    problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    let card = "4111111111111111";
    let res = add(&t, &case, json!({"kind": "other", "note": format!("card {card}")})).await;
    problem(res, StatusCode::UNPROCESSABLE_ENTITY, "sensitive_card_data").await;
    let chat = format!("客户说卡号是 {card}，请退款");
    let res = add(
        &t,
        &case,
        json!({"kind": "correspondence", "file": {"name": "chat.txt", "content_base64": b64(chat.as_bytes())}}),
    )
    .await;
    let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY, "sensitive_card_data").await;
    assert!(!p.to_string().contains(card), "never echoed");
    assert!(!t.stored_anywhere(card));

    let list: Value = t.get(&format!("/v1/disputes/{case}/evidence")).send().await.unwrap().json().await.unwrap();
    assert!(list["data"].as_array().unwrap().is_empty(), "nothing was kept: {list}");

    // a decided case takes no more evidence
    let res = t.post(&format!("/v1/disputes/{case}/events"), &json!({"event": "accept"})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = add(&t, &case, json!({"kind": "receipt", "note": "too late"})).await;
    let p = problem(res, StatusCode::CONFLICT, "dispute_closed_to_evidence").await;
    assert_eq!(p["dispute_status"], "accepted");
    let res = add(&t, "dp_0193a4b1c2d37e8f9a0b1c2d3e4f5a6b", json!({"kind": "receipt"})).await;
    problem(res, StatusCode::NOT_FOUND, "dispute_not_found").await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_over_the_configured_size_are_refused() {
    let max = 4 * 1024;
    let app = AppConfig {
        disputes: DisputeConfig { evidence_max_file_bytes: max, ..DisputeConfig::default() },
        ..AppConfig::default()
    };
    let server =
        ServerConfig { max_evidence_body_bytes: refundry_server::evidence_body_bytes(max), ..ServerConfig::default() };
    let mut t = spawn_configured(server, app).await;
    let case = open_case(&t, "CB-EV3").await;
    let ok =
        add(&t, &case, json!({"kind": "receipt", "file": {"name": "a.pdf", "content_base64": b64(&pdf(max))}})).await;
    assert_eq!(ok.status(), StatusCode::CREATED);
    let big =
        add(&t, &case, json!({"kind": "receipt", "file": {"name": "b.pdf", "content_base64": b64(&pdf(max + 1))}}))
            .await;
    let p = problem(big, StatusCode::PAYLOAD_TOO_LARGE, "evidence_file_too_large").await;
    assert_eq!(p["max_file_bytes"], max);
    // a body far over the upload limit is refused before it is read
    let huge = pdf(200 * 1024);
    let res = add(&t, &case, json!({"kind": "receipt", "file": {"name": "c.pdf", "content_base64": b64(&huge)}})).await;
    problem(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_altered_at_rest_is_not_served() {
    let mut t = spawn().await;
    let case = open_case(&t, "CB-EV4").await;
    let res =
        add(&t, &case, json!({"kind": "receipt", "file": {"name": "a.pdf", "content_base64": b64(&pdf(64))}})).await;
    let item: Value = res.json().await.unwrap();
    let id = item["id"].as_str().unwrap().to_owned();
    tamper_evidence(&t, &id);
    let res = t.get(&format!("/v1/disputes/{case}/evidence/{id}/file")).send().await.unwrap();
    problem(res, StatusCode::INTERNAL_SERVER_ERROR, "evidence_file_corrupt").await;
    t.shutdown().await;
}

/// Overwrites the stored bytes of an evidence file behind the store's back.
fn tamper_evidence(t: &TestApp, id: &str) {
    match &t.db.scratch {
        Some(scratch) => {
            let mut client = scratch.client();
            let id = id.to_owned();
            std::thread::spawn(move || {
                let n = client
                    .execute(
                        "UPDATE dispute_evidence_files SET bytes = $1 WHERE evidence_id = $2",
                        &[&b"%PDF-1.7\nforged".to_vec(), &id],
                    )
                    .unwrap();
                assert_eq!(n, 1);
            })
            .join()
            .unwrap();
        }
        None => {
            let conn = rusqlite::Connection::open(t.dir.path().join("test.db")).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
            let n = conn
                .execute(
                    "UPDATE dispute_evidence_files SET bytes = ?1 WHERE evidence_id = ?2",
                    rusqlite::params![b"%PDF-1.7\nforged".to_vec(), id],
                )
                .unwrap();
            assert_eq!(n, 1);
        }
    }
}
