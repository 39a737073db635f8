//! The pages over plain HTTP: who may open what, CSRF, language, and the
//! counter and self-service flows end to end.

use refundry_core::refund::RefundStatus;
use reqwest::StatusCode;

use crate::support::{self, TestWeb, csrf_of, field_of};

async fn status_of(c: &reqwest::Client, web: &TestWeb, path: &str) -> StatusCode {
    c.get(web.url(path)).send().await.unwrap().status()
}

#[tokio::test]
async fn each_role_sees_the_pages_it_may_and_gets_403_elsewhere() {
    let web = support::spawn().await;
    let sale = format!("/sales/{}", web.big_sale.id);
    let counter_sale = format!("/counter/sales/{}", web.big_sale.id);
    // page → roles that may open it (cashier, supervisor, finance, risk, admin)
    let table: &[(&str, [bool; 5])] = &[
        ("/", [true; 5]),
        ("/counter", [true, true, false, false, true]),
        (&counter_sale, [true, true, false, false, true]),
        ("/approvals", [false, true, false, false, true]),
        ("/sales", [true; 5]),
        (&sale, [true; 5]),
        ("/refunds", [true; 5]),
    ];
    for (i, (username, _)) in support::PEOPLE.iter().enumerate() {
        let c = web.logged_in(username, "en").await;
        for (path, allowed) in table {
            let status = status_of(&c, &web, path).await;
            let expected = if allowed[i] { StatusCode::OK } else { StatusCode::FORBIDDEN };
            assert_eq!(status, expected, "{username} on {path}");
        }
    }
    // the forms check the role too, not only the pages
    let finance = web.logged_in("finance.zhou", "en").await;
    let html = finance.get(web.url("/")).send().await.unwrap().text().await.unwrap();
    let token = csrf_of(&html);
    let form = [("csrf", token.as_str()), ("qty.0", "1"), ("reason", "defective"), ("idem", "f1")];
    let r = finance.post(web.url(&format!("{counter_sale}/refund"))).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let decide = [("csrf", token.as_str()), ("decision", "approve")];
    let r = finance.post(web.url("/approvals/re_01a2187dbb2673fa9a60b0bd2979583e")).form(&decide).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // nobody logged in: every back-office page sends to the log-in page
    let anonymous = support::client();
    for (path, _) in table {
        let r = anonymous.get(web.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert!(r.headers()["location"].to_str().unwrap().starts_with("/login"), "{path}");
    }
}

#[tokio::test]
async fn a_forbidden_page_answers_in_the_users_language() {
    let web = support::spawn().await;
    let c = web.logged_in("cashier.wang", "zh-CN").await;
    let r = c.get(web.url("/approvals")).header("accept-language", "zh-CN").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("您的角色无权打开此页面"));
    let r = c.get(web.url("/approvals")).header("accept-language", "en").send().await.unwrap();
    assert!(r.text().await.unwrap().contains("Your role does not open this page"));
}

#[tokio::test]
async fn posts_without_the_right_csrf_token_are_refused_and_change_nothing() {
    let web = support::spawn().await;
    let c = web.logged_in("cashier.wang", "en").await;
    let path = format!("/counter/sales/{}/refund", web.big_sale.id);
    let form = [("qty.1", "1"), ("reason", "defective"), ("idem", "csrf-test")];
    let r = c.post(web.url(&path)).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("The form has expired"));
    let mut forged = form.to_vec();
    forged.push(("csrf", "0000000000000000000000000000000000000000000000000000000000000000"));
    assert_eq!(c.post(web.url(&path)).form(&forged).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    // a token from another visitor's session does not do either
    let other = web.logged_in("supervisor.li", "en").await;
    let html = other.get(web.url("/counter")).send().await.unwrap().text().await.unwrap();
    let mut stolen = form.to_vec();
    let token = csrf_of(&html);
    stolen.push(("csrf", &token));
    assert_eq!(c.post(web.url(&path)).form(&stolen).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    // the log-in form needs one too
    let anonymous = support::client();
    let form = [("username", "cashier.wang"), ("password", support::PASSWORD)];
    assert_eq!(anonymous.post(web.url("/login")).form(&form).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let actor = refundry_app::Actor::system(web.merchant, "test");
    let query = refundry_store::model::RefundQuery { limit: 10, ..Default::default() };
    assert!(web.app.list_refunds(&actor, query).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn the_browser_language_is_the_default_and_the_switch_sticks() {
    let web = support::spawn().await;
    let c = support::client();
    let zh = c.get(web.url("/login")).header("accept-language", "zh-CN,zh;q=0.9").send().await.unwrap();
    assert!(zh.text().await.unwrap().contains("<h1>登录</h1>"));
    let en = c.get(web.url("/login")).header("accept-language", "en-GB,en;q=0.9").send().await.unwrap();
    assert!(en.text().await.unwrap().contains("<h1>Log in</h1>"));
    let r = c.get(web.url("/lang?to=en")).header("referer", web.url("/login?next=%2Fsales")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login?next=%2Fsales");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("refundry_lang=en;") && cookie.contains("HttpOnly"), "{cookie}");
    let after = c.get(web.url("/login")).header("accept-language", "zh-CN").send().await.unwrap();
    assert!(after.text().await.unwrap().contains("<h1>Log in</h1>"), "the cookie wins over the browser");
    // a referer from elsewhere never sends the visitor off-site
    let r = c.get(web.url("/lang?to=zh-CN")).header("referer", "https://evil.example//x").send().await.unwrap();
    assert!(r.headers()["location"].to_str().unwrap().starts_with('/'));
}

#[tokio::test]
async fn log_in_sets_a_strict_http_only_session_cookie_and_log_out_ends_it() {
    let web = support::spawn_with(refundry_web::WebConfig { secure_cookies: true, self_service_per_minute: 0 }).await;
    let c = support::client();
    let html = c.get(web.url("/login")).send().await.unwrap().text().await.unwrap();
    let wrong = [("csrf", csrf_of(&html)), ("username", "cashier.wang".into()), ("password", "wrong-password".into())];
    let r = c.post(web.url("/login")).header("accept-language", "en").form(&wrong).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.text().await.unwrap();
    assert!(body.contains("id=\"password-error\"") && body.contains("Wrong username or password"), "{body}");
    let right = [("csrf", csrf_of(&html)), ("username", "cashier.wang".into()), ("password", support::PASSWORD.into())];
    let r = c.post(web.url("/login")).form(&right).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for part in ["refundry_session=rs_", "HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
}

#[tokio::test]
async fn log_out_ends_the_session() {
    let web = support::spawn().await;
    let c = web.logged_in("cashier.wang", "en").await;
    let html = c.get(web.url("/")).send().await.unwrap().text().await.unwrap();
    let r = c.post(web.url("/logout")).form(&[("csrf", csrf_of(&html))]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(c.get(web.url("/")).send().await.unwrap().status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn counter_refund_over_the_limit_waits_for_a_supervisor_and_a_double_submit_makes_one_refund() {
    let web = support::spawn().await;
    let c = web.logged_in("cashier.wang", "en").await;
    // one match opens the sale at once
    let r = c.get(web.url(&format!("/counter?voucher={}", web.big_sale.voucher))).send().await.unwrap();
    assert_eq!(r.headers()["location"], format!("/counter/sales/{}", web.big_sale.id).as_str());
    let sale_path = format!("/counter/sales/{}", web.big_sale.id);
    let html = c.get(web.url(&sale_path)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("羊毛大衣 Wool coat") && html.contains("¥630.00"));
    let (csrf, idem) = (csrf_of(&html), field_of(&html, "idem"));
    let form =
        [("csrf", csrf.as_str()), ("idem", idem.as_str()), ("qty.0", "1"), ("amount", ""), ("reason", "defective")];
    let preview = c
        .post(web.url(&format!("{sale_path}/preview")))
        .header("x-csrf-token", &csrf)
        .form(&form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(preview.contains("data-outcome=\"requires_approval\""), "{preview}");
    assert!(preview.contains("¥600.00"));
    let first = c.post(web.url(&format!("{sale_path}/refund"))).form(&form).send().await.unwrap();
    let second = c.post(web.url(&format!("{sale_path}/refund"))).form(&form).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    assert_eq!(first.headers()["location"], second.headers()["location"], "the same refund both times");
    let refund_path = first.headers()["location"].to_str().unwrap().to_owned();
    let page = c.get(web.url(&refund_path)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("data-status=\"requires_approval\"") && page.contains("hx-trigger=\"every 2s\""));
    let actor = refundry_app::Actor::system(web.merchant, "test");
    let query = refundry_store::model::RefundQuery { limit: 10, ..Default::default() };
    assert_eq!(web.app.list_refunds(&actor, query).await.unwrap().items.len(), 1);
}

#[tokio::test]
async fn counter_errors_show_next_to_their_field() {
    let web = support::spawn().await;
    let c = web.logged_in("cashier.wang", "en").await;
    let sale_path = format!("/counter/sales/{}", web.small_sale.id);
    let html = c.get(web.url(&sale_path)).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_of(&html);
    let form = [("csrf", csrf.as_str()), ("idem", "e1"), ("amount", "1.234"), ("reason", "defective")];
    let r = c.post(web.url(&format!("{sale_path}/refund"))).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = r.text().await.unwrap();
    assert!(body.contains("<p class=\"error\" id=\"amount-error\">At most two decimals (fen).</p>"), "{body}");
    let form = [("csrf", csrf.as_str()), ("idem", "e2"), ("amount", "99.00"), ("reason", "defective")];
    let body = c.post(web.url(&format!("{sale_path}/refund"))).form(&form).send().await.unwrap().text().await.unwrap();
    assert!(body.contains("id=\"amount-error\">The refund exceeds what is left to refund"), "{body}");
}

#[tokio::test]
async fn a_supervisor_approves_and_the_requester_cannot() {
    let web = support::spawn().await;
    let cashier = web.logged_in("supervisor.li", "en").await;
    let sale_path = format!("/counter/sales/{}", web.big_sale.id);
    let html = cashier.get(web.url(&sale_path)).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", csrf_of(&html)), ("idem", "a1".into()), ("qty.0", "1".into()), ("reason", "defective".into())];
    let r = cashier.post(web.url(&format!("{sale_path}/refund"))).form(&form).send().await.unwrap();
    let refund_id = r.headers()["location"].to_str().unwrap().trim_start_matches("/refunds/").to_owned();
    // the same supervisor may not approve their own request
    let queue = cashier.get(web.url("/approvals")).send().await.unwrap().text().await.unwrap();
    assert!(queue.contains(&refund_id) && queue.contains("above the"), "the reason it waits is shown");
    let decide = [("csrf", csrf_of(&queue)), ("decision", "approve".into()), ("note", "ok".into())];
    let r = cashier.post(web.url(&format!("/approvals/{refund_id}"))).form(&decide).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body = r.text().await.unwrap();
    assert!(body.contains(&format!("id=\"error-{refund_id}\"")) && body.contains("cannot approve their own"), "{body}");
    // another supervisor (the admin) may
    let admin = web.logged_in("admin.zhao", "en").await;
    let queue = admin.get(web.url("/approvals")).send().await.unwrap().text().await.unwrap();
    let decide = [("csrf", csrf_of(&queue)), ("decision", "approve".into()), ("note", "checked".into())];
    let r = admin.post(web.url(&format!("/approvals/{refund_id}"))).form(&decide).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let id = refundry_core::ids::RefundId::parse(&refund_id).unwrap();
    let actor = refundry_app::Actor::system(web.merchant, "test");
    for _ in 0..100 {
        if web.app.refund(&actor, id).await.unwrap().status == RefundStatus::Succeeded {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let page = admin.get(web.url(&format!("/refunds/{refund_id}"))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("data-status=\"succeeded\""), "{page}");
    for step in ["Refund requested", "Approved", "Sent to the acquirer", "Acquirer call #1", "Succeeded"] {
        assert!(page.contains(step), "the timeline lacks {step}");
    }
    let slip = admin.get(web.url(&format!("/refunds/{refund_id}/slip"))).send().await.unwrap().text().await.unwrap();
    assert!(slip.contains("622202******4321") && slip.contains("REFUND SLIP"));
    let pdf = admin.get(web.url(&format!("/refunds/{refund_id}/slip/slip.pdf"))).send().await.unwrap();
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    assert!(pdf.bytes().await.unwrap().starts_with(b"%PDF"));
}

async fn look_up(web: &TestWeb, c: &reqwest::Client, facts: &[(&str, &str)]) -> (StatusCode, String) {
    let html = c.get(web.url("/self-service")).send().await.unwrap().text().await.unwrap();
    let mut form: Vec<(&str, String)> = facts.iter().map(|(k, v)| (*k, v.to_string())).collect();
    form.push(("csrf", csrf_of(&html)));
    let r = c.post(web.url("/self-service")).header("accept-language", "en").form(&form).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test]
async fn self_service_reveals_nothing_without_all_four_facts_and_its_request_waits_for_a_supervisor() {
    let web = support::spawn().await;
    let c = support::client();
    let s = web.small_sale.clone();
    let right = [("reference", s.voucher.as_str()), ("date", &s.date), ("amount", s.amount), ("last4", &s.last4)];
    let (status, found) = look_up(&web, &c, &right).await;
    assert_eq!(status, StatusCode::OK);
    assert!(found.contains("data-testid=\"self-found\"") && found.contains("¥22.00"), "{found}");
    let by_rrn = [("reference", s.rrn.as_str()), ("date", &s.date), ("amount", s.amount), ("last4", &s.last4)];
    assert!(look_up(&web, &c, &by_rrn).await.1.contains("data-testid=\"self-found\""));
    // one wrong fact and no such sale read the same
    let problem = |html: &str| {
        html.split("data-testid=\"self-problem\">").nth(1).map(|p| p.split('<').next().unwrap().to_owned())
    };
    let wrong_last4 = [("reference", s.voucher.as_str()), ("date", &s.date), ("amount", s.amount), ("last4", "0000")];
    let wrong_amount = [("reference", s.voucher.as_str()), ("date", &s.date), ("amount", "22.01"), ("last4", &s.last4)];
    let no_sale = [("reference", "999999"), ("date", &s.date), ("amount", s.amount), ("last4", &s.last4)];
    let answers = [
        look_up(&web, &c, &wrong_last4).await.1,
        look_up(&web, &c, &wrong_amount).await.1,
        look_up(&web, &c, &no_sale).await.1,
    ];
    for a in &answers {
        assert!(!a.contains("self-found") && !a.contains("Latte"), "nothing about the sale shows");
        assert_eq!(problem(a), problem(&answers[0]));
    }
    assert!(problem(&answers[0]).is_some());
    // ask
    let html = found;
    let mut form: Vec<(&str, String)> = right.iter().map(|(k, v)| (*k, v.to_string())).collect();
    form.extend([
        ("csrf", csrf_of(&html)),
        ("idem", field_of(&html, "idem")),
        ("reason", "defective".into()),
        ("email", "customer@example.cn".into()),
    ]);
    let r = c.post(web.url("/self-service/request")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let status_path = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(status_path.starts_with("/self-service/status/") && !status_path.contains("re_"), "{status_path}");
    // a resent form asks once (checked below) and links to the same refund
    let again = c.post(web.url("/self-service/request")).form(&form).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    let again_path = again.headers()["location"].to_str().unwrap().to_owned();
    let token = |p: &str| p.trim_start_matches("/self-service/status/").to_owned();
    let (first, second) =
        (web.app.refund_by_token(&token(&status_path)).await, web.app.refund_by_token(&token(&again_path)).await);
    assert_eq!(first.unwrap().id, second.unwrap().id);
    let page = c.get(web.url(&status_path)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("data-status=\"requires_approval\""), "{page}");
    // a changed token finds nothing
    let forged = format!("{}x", status_path);
    assert_eq!(c.get(web.url(&forged)).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let actor = refundry_app::Actor::system(web.merchant, "test");
    let query = refundry_store::model::RefundQuery { limit: 10, ..Default::default() };
    let refunds = web.app.list_refunds(&actor, query).await.unwrap().items;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].status, RefundStatus::RequiresApproval);
    assert_eq!(refunds[0].requested_by, "system:self-service");
    assert!(refunds[0].decision.contains("customer_self_service"));
}

#[tokio::test]
async fn self_service_is_rate_limited_per_address() {
    let web = support::spawn_with(refundry_web::WebConfig { secure_cookies: false, self_service_per_minute: 4 }).await;
    let c = support::client();
    let facts = [("reference", "1"), ("date", "2030-01-01"), ("amount", "1.00"), ("last4", "1234")];
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(look_up(&web, &c, &facts).await.0);
    }
    assert_eq!(statuses[0], StatusCode::OK);
    assert_eq!(*statuses.last().unwrap(), StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
}

#[tokio::test]
async fn assets_are_served_with_a_content_hash_and_long_cache() {
    let web = support::spawn().await;
    let c = support::client();
    let html = c.get(web.url("/login")).send().await.unwrap().text().await.unwrap();
    let at = html.find("/assets/").unwrap();
    let css = html[at..].split('"').next().unwrap();
    let r = c.get(web.url(css)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "public, max-age=31536000, immutable");
    let etag = r.headers()["etag"].clone();
    let again = c.get(web.url(css)).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let csp = r.headers().get("content-security-policy").cloned();
    let page = c.get(web.url("/login")).send().await.unwrap();
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(csp.is_some());
}

#[tokio::test]
async fn card_numbers_typed_into_a_page_are_refused_and_nothing_is_kept() {
    let web = support::spawn().await;
    let c = web.logged_in("cashier.wang", "en").await;
    let r = c.get(web.url("/counter?rrn=4111111111111111")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = r.text().await.unwrap();
    assert!(body.contains("(rrn)") && !body.contains("4111111111111111"), "{body}");
    let sale_path = format!("/counter/sales/{}", web.small_sale.id);
    let html = c.get(web.url(&sale_path)).send().await.unwrap().text().await.unwrap();
    let form = [
        ("csrf", csrf_of(&html)),
        ("idem", "pan1".into()),
        ("amount", "1.00".into()),
        ("reason", "defective".into()),
        ("note", "card 4111 1111 1111 1111".into()),
    ];
    let r = c.post(web.url(&format!("{sale_path}/refund"))).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let actor = refundry_app::Actor::system(web.merchant, "test");
    let query = refundry_store::model::RefundQuery { limit: 10, ..Default::default() };
    assert!(web.app.list_refunds(&actor, query).await.unwrap().items.is_empty());
}
