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
