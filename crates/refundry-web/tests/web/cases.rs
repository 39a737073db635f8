//! The dispute, correction and settings pages over plain HTTP: who may open
//! them, their forms' CSRF and role checks, evidence upload, and errors
//! placed next to their field with nothing changed.

use refundry_app::Actor;
use refundry_app::disputes::NewDispute;
use refundry_core::dispute::{DisputeStage, Network};
use refundry_core::ids::{DisputeId, SaleId};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};

use crate::support::{self, TestWeb, csrf_of};

/// A chargeback on the big sale, due in 2030.
async fn open_case(web: &TestWeb) -> DisputeId {
    let actor = Actor::system(web.merchant, "test");
    let new = NewDispute {
        sale_id: SaleId::parse(&web.big_sale.id).unwrap(),
        case_ref: "CB-2030-0001".into(),
        network: Network::UnionPay,
        reason_code: "4514".into(),
        stage: DisputeStage::Chargeback,
        amount_minor: 60_000,
        due_by: "2030-03-01T00:00:00Z".parse().unwrap(),
        note: None,
    };
    web.app.open_dispute(&actor, new).await.unwrap().id
}

async fn page(c: &reqwest::Client, web: &TestWeb, path: &str) -> (StatusCode, String) {
    let r = c.get(web.url(path)).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// Roles in the order of `support::PEOPLE`: cashier, supervisor, finance, risk, admin.
async fn check_roles(web: &TestWeb, table: &[(&str, [bool; 5])]) {
    for (i, (username, _)) in support::PEOPLE.iter().enumerate() {
        let c = web.logged_in(username, "en").await;
        for (path, allowed) in table {
            let (status, _) = page(&c, web, path).await;
            let expected = if allowed[i] { StatusCode::OK } else { StatusCode::FORBIDDEN };
            assert_eq!(status, expected, "{username} on {path}");
        }
    }
}

#[tokio::test]
async fn disputes_open_to_risk_and_admin_only_forms_included() {
    let web = support::spawn().await;
    let id = open_case(&web).await;
    let case = format!("/disputes/{id}");
    check_roles(&web, &[("/disputes", [false, false, false, true, true]), (&case, [false, false, false, true, true])])
        .await;
    let supervisor = web.logged_in("supervisor.li", "en").await;
    let (_, home) = page(&supervisor, &web, "/").await;
    let form = [("csrf", csrf_of(&home)), ("event", "accept".into())];
    let r = supervisor.post(web.url(&format!("{case}/move"))).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let actor = Actor::system(web.merchant, "test");
    assert_eq!(web.app.dispute(&actor, id).await.unwrap().status, "needs_response");
}

#[tokio::test]
async fn the_case_page_offers_only_the_moves_its_state_allows_and_shows_days_left() {
    let web = support::spawn().await;
    let id = open_case(&web).await;
    let risk = web.logged_in("risk.chen", "en").await;
    let (_, list) = page(&risk, &web, "/disputes?stage=chargeback&network=unionpay").await;
    assert!(list.contains("CB-2030-0001") && list.contains("days left"), "{list}");
    let (_, none) = page(&risk, &web, "/disputes?network=visa").await;
    assert!(!none.contains("CB-2030-0001"));
    let (_, html) = page(&risk, &web, &format!("/disputes/{id}")).await;
    for allowed in ["move-submit_evidence", "move-accept", "move-win"] {
        assert!(html.contains(allowed), "{allowed} missing");
    }
    // lost only after an answer; past due only after the deadline
    for refused in ["move-lose", "move-respond_to_retrieval", "move-escalate", "move-mark_past_due"] {
        assert!(!html.contains(refused), "{refused} offered");
    }
    assert!(html.contains("CB-2030-0001"), "the summary names the case");
    let form = [("csrf", csrf_of(&html)), ("event", "submit_evidence".into()), ("note", "slip sent".into())];
    let r = risk.post(web.url(&format!("/disputes/{id}/move"))).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(&risk, &web, &format!("/disputes/{id}?done=moved")).await;
    assert!(html.contains("data-status=\"evidence_submitted\""));
    assert!(!html.contains("move-submit_evidence"), "a move already made is not offered again");
    assert!(html.contains("move-lose") && html.contains("move-pre_arbitration"));
    // a move the state machine refuses, sent by hand, is refused on the page
    let form = [("csrf", csrf_of(&html)), ("event", "escalate".into())];
    let r = risk.post(web.url(&format!("/disputes/{id}/move"))).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("cannot move that way"));
}

fn upload(csrf: Option<&str>, kind: &str, name: &str, bytes: Vec<u8>) -> Form {
    let mut form = Form::new().text("kind", kind.to_owned()).text("note", "签购单 slip");
    if let Some(token) = csrf {
        form = form.text("csrf", token.to_owned());
    }
    form.part("file", Part::bytes(bytes).file_name(name.to_owned()))
}

#[tokio::test]
async fn evidence_is_uploaded_listed_and_downloaded_and_a_wrong_type_is_refused_at_the_field() {
    let web = support::spawn().await;
    let id = open_case(&web).await;
    let case = format!("/disputes/{id}");
    let risk = web.logged_in("risk.chen", "en").await;
    let (_, html) = page(&risk, &web, &case).await;
    let token = csrf_of(&html);
    let pdf = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n".to_vec();

    // without the token: refused, nothing kept
    let r = risk.post(web.url(&format!("{case}/evidence"))).multipart(upload(None, "receipt", "slip.pdf", pdf.clone()));
    assert_eq!(r.send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let wrong = upload(Some(&"0".repeat(64)), "receipt", "slip.pdf", pdf.clone());
    let r = risk.post(web.url(&format!("{case}/evidence"))).multipart(wrong).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let actor = Actor::system(web.merchant, "test");
    assert!(web.app.evidence(&actor, id).await.unwrap().is_empty());

    // a ZIP is not evidence: the error is next to the file field
    let zip = b"PK\x03\x04\x14\x00\x00\x00\x08\x00rest-of-archive".to_vec();
    let r = risk.post(web.url(&format!("{case}/evidence"))).multipart(upload(Some(&token), "receipt", "a.zip", zip));
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    let error = html.split("data-testid=\"file-error\">").nth(1).expect("the error is at the file field");
    let error = error.split("</p>").next().unwrap();
    assert!(error.contains("PDF, PNG, JPEG or plain text"), "{error}");
    assert!(web.app.evidence(&actor, id).await.unwrap().is_empty());

    // over the file limit: said at the field; far over it: not even read
    let limit = refundry_app::evidence::DEFAULT_MAX_FILE_BYTES;
    let mut big = pdf.clone();
    big.resize(limit + 1, b' ');
    let r = risk.post(web.url(&format!("{case}/evidence"))).multipart(upload(Some(&token), "receipt", "big.pdf", big));
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    let error = html.split("data-testid=\"file-error\">").nth(1).expect("the error is at the file field");
    assert!(error.starts_with("The evidence file is too large"), "{error}");
    let huge = vec![b'x'; 2 * limit + 128 * 1024];
    let r = risk.post(web.url(&format!("{case}/evidence"))).multipart(upload(Some(&token), "other", "huge.txt", huge));
    assert_eq!(r.send().await.unwrap().status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(web.app.evidence(&actor, id).await.unwrap().is_empty());

    let good = upload(Some(&token), "receipt", "../签购单.pdf", pdf.clone());
    let r = risk.post(web.url(&format!("{case}/evidence"))).multipart(good).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let items = web.app.evidence(&actor, id).await.unwrap();
    assert_eq!(items.len(), 1);
    let (_, html) = page(&risk, &web, &case).await;
    assert!(html.contains("签购单.pdf") && html.contains(&items[0].file.as_ref().unwrap().sha256));
    let r = risk.get(web.url(&format!("{case}/evidence/{}", items[0].id))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    assert!(r.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    assert_eq!(r.bytes().await.unwrap().as_ref(), pdf.as_slice());
}

async fn open_correction(web: &TestWeb) -> refundry_core::ids::CorrectionId {
    let actor = Actor::system(web.merchant, "test");
    let new = refundry_app::corrections::NewCorrection {
        sale_id: SaleId::parse(&web.small_sale.id).unwrap(),
        kind: "duplicate_charge".into(),
        cause: "operator_error".into(),
        responsible_party: Some("cashier.wang".into()),
        note: Some("charged twice".into()),
    };
    web.app.open_correction(&actor, new).await.unwrap().id
}

#[tokio::test]
async fn corrections_refund_once_through_the_app_and_dismissal_is_a_supervisors_with_a_reason() {
    let web = support::spawn().await;
    let id = open_correction(&web).await;
    let case = format!("/corrections/{id}");
    check_roles(&web, &[("/corrections", [true, true, false, false, true]), (&case, [true, true, false, false, true])])
        .await;
    let actor = Actor::system(web.merchant, "test");

    // a cashier may refund but not dismiss; the dismiss form is not even shown
    let cashier = web.logged_in("cashier.wang", "en").await;
    let (_, html) = page(&cashier, &web, &case).await;
    assert!(html.contains("correction-refund-form") && !html.contains("/dismiss\""));
    let form = [("csrf", csrf_of(&html)), ("reason", "not wrong".into())];
    let r = cashier.post(web.url(&format!("{case}/dismiss"))).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // a dismissal without a reason is refused at the reason field
    let supervisor = web.logged_in("supervisor.li", "en").await;
    let (_, html) = page(&supervisor, &web, &case).await;
    let form = [("csrf", csrf_of(&html)), ("reason", "  ".into())];
    let r = supervisor.post(web.url(&format!("{case}/dismiss"))).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("id=\"reason-error\""));
    assert_eq!(web.app.correction(&actor, id).await.unwrap().status, "open");

    // a typed amount that is not one is refused at the amount field
    let (_, html) = page(&cashier, &web, &case).await;
    let idem = crate::support::field_of(&html, "idem");
    let bad = [("csrf", csrf_of(&html)), ("idem", idem.clone()), ("amount", "1.234".into()), ("cause", "other".into())];
    let r = cashier.post(web.url(&format!("{case}/refund"))).form(&bad).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("id=\"amount-error\""));

    // the whole duplicate back; the same drawn form sent twice is one refund
    let form = [
        ("csrf", csrf_of(&html)),
        ("idem", idem),
        ("amount", String::new()),
        ("note", "duplicate".into()),
        ("cause", "operator_error".into()),
        ("responsible_party", "cashier.wang".into()),
    ];
    for _ in 0..2 {
        let r = cashier.post(web.url(&format!("{case}/refund"))).form(&form).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
    }
    let record = web.app.correction(&actor, id).await.unwrap();
    assert_eq!(record.status, "refunded");
    let query = refundry_store::model::RefundQuery { limit: 10, ..Default::default() };
    let refunds = web.app.list_refunds(&actor, query).await.unwrap().items;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].amount.minor, 2_200);
    assert_eq!(Some(refunds[0].id), record.refund_id);
    let (_, html) = page(&cashier, &web, &case).await;
    assert!(html.contains("data-status=\"refunded\"") && !html.contains("correction-refund-form"));
}

#[tokio::test]
async fn settings_are_for_administrators_and_their_forms_need_the_token() {
    let web = support::spawn().await;
    let admin_only = [false, false, false, false, true];
    let pages = ["/settings", "/settings/policy", "/settings/users", "/settings/keys", "/settings/webhooks"];
    let table: Vec<(&str, [bool; 5])> = pages.iter().map(|p| (*p, admin_only)).collect();
    check_roles(&web, &table).await;
    let actor = Actor::system(web.merchant, "test");
    // a supervisor's token does not make them an administrator
    let supervisor = web.logged_in("supervisor.li", "en").await;
    let (_, home) = page(&supervisor, &web, "/").await;
    let token = csrf_of(&home);
    let form = [("csrf", token.as_str()), ("name", "till"), ("scope", "refunds:write")];
    let r = supervisor.post(web.url("/settings/keys")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // an administrator without the token is refused too
    let admin = web.logged_in("admin.zhao", "en").await;
    let form = [("name", "till"), ("scope", "refunds:write")];
    let r = admin.post(web.url("/settings/keys")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(web.app.keys(&actor).await.unwrap().is_empty());
}

/// The policy form as the page draws it, with `changes` made.
fn policy_form(html: &str, changes: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut fields = vec![("csrf".to_owned(), csrf_of(html))];
    for name in [
        "refund_window_days_card",
        "refund_window_days_wallet",
        "refund_window_days_cash",
        "no_questions_days",
        "approval_above_minor",
        "large_sale_minor",
        "large_sale_approval_above_minor",
        "cash_refund_limit_minor",
        "cashier_daily_limit_minor",
        "approval_above_share_bps",
        "sample_sale",
        "sample_amount",
        "sample_days",
    ] {
        let value = changes.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
        fields.push((name.to_owned(), value.unwrap_or_else(|| crate::support::field_of(html, name))));
    }
    for (k, v) in [("other_cashier", "allow"), ("sample_method", "card"), ("sample_reason", "defective")] {
        fields.push((k.to_owned(), v.to_owned()));
    }
    for reason in ["customer_request", "defective", "wrong_charge", "duplicate"] {
        fields.push(("allowed_reasons".to_owned(), reason.to_owned()));
    }
    fields.extend(changes.iter().filter(|(k, _)| *k == "action").map(|(k, v)| (k.to_string(), v.to_string())));
    fields
}

#[tokio::test]
async fn a_bad_policy_value_is_shown_at_its_field_and_changes_nothing_and_the_preview_saves_nothing() {
    let web = support::spawn().await;
    let actor = Actor::system(web.merchant, "test");
    let admin = web.logged_in("admin.zhao", "en").await;
    let (_, html) = page(&admin, &web, "/settings/policy").await;
    assert!(html.contains("Version 0"));

    let bad = policy_form(&html, &[("refund_window_days_card", "0"), ("action", "save")]);
    let r = admin.post(web.url("/settings/policy")).form(&bad).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = r.text().await.unwrap();
    let error = body.split("id=\"refund_window_days_card-error\" role=\"alert\">").nth(1).expect("error at the field");
    assert!(
        error.starts_with("The refund policy is not valid: refund_window_days_card must be 1 to 3650 days"),
        "{error}"
    );
    let not_a_number = policy_form(&html, &[("approval_above_share_bps", "ten"), ("action", "save")]);
    let r = admin.post(web.url("/settings/policy")).form(&not_a_number).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("id=\"approval_above_share_bps-error\""));
    assert_eq!(web.app.policy(&actor, None).await.unwrap().version, 0);

    // the preview decides on the typed rules and saves nothing
    let preview = policy_form(
        &html,
        &[
            ("approval_above_minor", "100.00"),
            ("sample_sale", "300.00"),
            ("sample_amount", "200.00"),
            ("action", "preview"),
        ],
    );
    let r = admin.post(web.url("/settings/policy")).form(&preview).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.text().await.unwrap();
    let decision = body.split("data-testid=\"policy-preview\"").nth(1).expect("a preview");
    assert!(decision.contains("Needs a supervisor"), "{decision}");
    assert_eq!(web.app.policy(&actor, None).await.unwrap().version, 0);

    let good = policy_form(&html, &[("approval_above_minor", "100.00"), ("action", "save")]);
    let r = admin.post(web.url("/settings/policy")).form(&good).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let now = web.app.policy(&actor, None).await.unwrap();
    assert_eq!((now.version, now.policy.approval_above_minor), (1, 10_000));
    let (_, html) = page(&admin, &web, "/settings/policy").await;
    assert!(html.contains("Version 1") && html.contains("value=\"100.00\""));
}

#[tokio::test]
async fn a_new_keys_secret_is_shown_once_and_the_key_works() {
    let web = support::spawn().await;
    let actor = Actor::system(web.merchant, "test");
    let admin = web.logged_in("admin.zhao", "en").await;
    let (_, html) = page(&admin, &web, "/settings/keys").await;
    let token = csrf_of(&html);
    let form = [("csrf", token.as_str()), ("name", "  "), ("scope", "refunds:write")];
    let r = admin.post(web.url("/settings/keys")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("id=\"name-error\""));
    let form = [
        ("csrf", token.as_str()),
        ("name", "Till 3"),
        ("scope", "sales:write"),
        ("scope", "refunds:write"),
        ("terminal_id", "T0003"),
    ];
    let r = admin.post(web.url("/settings/keys")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body = r.text().await.unwrap();
    let secret = body.split("data-testid=\"new-secret\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
    assert!(secret.starts_with("rk_"), "{secret}");
    let key = web.app.authenticate(&secret, "test").await.unwrap();
    assert!(key.may("refunds:write") && !key.may("admin"));
    let (_, list) = page(&admin, &web, "/settings/keys").await;
    assert!(list.contains("Till 3") && list.contains("sales:write refunds:write") && list.contains("T0003"));
    assert!(!list.contains(&secret) && !list.contains("new-secret"), "the secret is shown once only");
    assert_eq!(web.app.keys(&actor).await.unwrap().len(), 1);
}

#[tokio::test]
async fn people_are_added_with_a_role_and_a_taken_username_is_refused_at_its_field() {
    let web = support::spawn().await;
    let admin = web.logged_in("admin.zhao", "zh-CN").await;
    let (_, html) = page(&admin, &web, "/settings/users").await;
    assert!(html.contains("cashier.wang") && html.contains("收银员"));
    let mut form = vec![
        ("csrf", csrf_of(&html)),
        ("username", "cashier.sun".to_owned()),
        ("display_name", "孙收银".to_owned()),
        ("role", "cashier".to_owned()),
        ("password", "another-password-2".to_owned()),
    ];
    let r = admin.post(web.url("/settings/users")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    web.app.log_in("cashier.sun", "another-password-2", "test").await.unwrap();
    let (_, list) = page(&admin, &web, "/settings/users?created=cashier.sun").await;
    assert!(list.contains("孙收银"));
    form[1].1 = "cashier.wang".to_owned();
    let r = admin.post(web.url("/settings/users")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = r.text().await.unwrap();
    assert!(body.contains("id=\"username-error\""), "{body}");
    assert!(!body.contains("another-password-2"), "a password is never written back");
}

#[tokio::test]
async fn a_webhook_endpoint_shows_its_secret_once_and_its_deliveries_can_be_sent_again() {
    let web = support::spawn().await;
    let actor = Actor::system(web.merchant, "test");
    let admin = web.logged_in("admin.zhao", "en").await;
    let (_, html) = page(&admin, &web, "/settings/webhooks").await;
    let bad = [("csrf", csrf_of(&html)), ("url", "ftp://example.com".into()), ("events", "*".into())];
    let r = admin.post(web.url("/settings/webhooks")).form(&bad).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("id=\"url-error\""));
    // nothing listens there: the deliveries fail and are logged
    let form = [("csrf", csrf_of(&html)), ("url", "http://127.0.0.1:9/hook".into()), ("events", "*".into())];
    let r = admin.post(web.url("/settings/webhooks")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.text().await.unwrap();
    assert!(body.contains("whsec_"));
    let endpoint = web.app.webhook_endpoints(&actor).await.unwrap().remove(0);
    let (_, list) = page(&admin, &web, "/settings/webhooks").await;
    assert!(list.contains("http://127.0.0.1:9/hook") && !list.contains("whsec_"));
    // any audited change is an event
    let policy = web.app.policy(&actor, None).await.unwrap().doc();
    web.app.set_policy(&actor, None, policy).await.unwrap();
    let mut log = Vec::new();
    for _ in 0..100 {
        log = web.app.webhook_deliveries(&actor, &endpoint.id).await.unwrap();
        if !log.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!log.is_empty(), "the event was delivered (and failed)");
    let path = format!("/settings/webhooks/{}", endpoint.id);
    let (status, html) = page(&admin, &web, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&log[0].event_id) && html.contains("data-testid=\"delivery-status\""));
    let redeliver = format!("{path}/deliveries/{}/redeliver", log[0].id);
    let r = admin.post(web.url(&redeliver)).form(&[("csrf", csrf_of(&html))]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let before = log.len();
    for _ in 0..100 {
        log = web.app.webhook_deliveries(&actor, &endpoint.id).await.unwrap();
        if log.len() > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(log.len() > before, "the redelivery was attempted and logged");
}

#[tokio::test]
async fn a_case_past_its_deadline_is_highlighted_overdue_with_the_moves_left_to_it() {
    let web = support::spawn().await;
    let actor = Actor::system(web.merchant, "test");
    let new = NewDispute {
        sale_id: SaleId::parse(&web.small_sale.id).unwrap(),
        case_ref: "CB-2020-0007".into(),
        network: Network::Visa,
        reason_code: "13.1".into(),
        stage: DisputeStage::RetrievalRequest,
        amount_minor: 2_200,
        // long past, so it stays past
        due_by: "2020-01-01T00:00:00Z".parse().unwrap(),
        note: None,
    };
    let id = web.app.open_dispute(&actor, new).await.unwrap().id;
    // the job runner's upkeep marks it past due
    for _ in 0..100 {
        if web.app.dispute(&actor, id).await.unwrap().status == "past_due" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(web.app.dispute(&actor, id).await.unwrap().status, "past_due");
    let risk = web.logged_in("risk.chen", "zh-CN").await;
    let (_, list) = page(&risk, &web, "/disputes?stage=retrieval_request").await;
    assert!(list.contains("<tr class=\"overdue\">") && list.contains("天"), "{list}");
    let (_, html) = page(&risk, &web, &format!("/disputes/{id}")).await;
    assert!(html.contains("class=\"days overdue\""));
    for allowed in ["move-respond_to_retrieval", "move-escalate"] {
        assert!(html.contains(allowed), "{allowed} missing");
    }
    for refused in ["move-mark_past_due", "move-submit_evidence"] {
        assert!(!html.contains(refused), "{refused} offered");
    }
}
