//! The dashboard and the audit log over plain HTTP: who may open them, the
//! dashboard's totals for a known set of sales and refunds, the audit
//! filters and the chain check.

use std::time::Duration;

use jiff::Timestamp;
use refundry_app::Actor;
use refundry_app::sales::NewSale;
use refundry_core::money::{Currency, Money};
use refundry_core::refund::RefundStatus;
use refundry_core::sale::{PaymentMethod, Wallet};
use refundry_store::model::RefundQuery;
use reqwest::StatusCode;

use crate::support::{self, TestWeb, csrf_of};

#[tokio::test]
async fn the_dashboard_and_audit_log_open_for_those_who_read_reports() {
    let web = support::spawn().await;
    // cashier, supervisor, finance, risk, admin
    let allowed = [false, true, true, true, true];
    for (i, (username, _)) in support::PEOPLE.iter().enumerate() {
        let c = web.logged_in(username, "en").await;
        for path in ["/dashboard", "/audit", "/audit?verify=1"] {
            let status = c.get(web.url(path)).send().await.unwrap().status();
            let expected = if allowed[i] { StatusCode::OK } else { StatusCode::FORBIDDEN };
            assert_eq!(status, expected, "{username} on {path}");
        }
        let home = c.get(web.url("/")).send().await.unwrap().text().await.unwrap();
        assert_eq!(home.contains("href=\"/dashboard\""), allowed[i], "{username}: the bar shows the dashboard");
        assert_eq!(home.contains("href=\"/audit\""), allowed[i], "{username}: the bar shows the audit log");
    }
    let anonymous = support::client();
    for path in ["/dashboard", "/audit"] {
        let r = anonymous.get(web.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
    }
}

/// A cash sale captured now, so "today" has sales to compare refunds with.
async fn sale_today(web: &TestWeb, amount_minor: i64) -> String {
    let new = NewSale {
        amount: Money::new(amount_minor, Currency::CNY),
        payment_method: PaymentMethod::Wallet { wallet: Wallet::Alipay },
        voucher_no: Some("700099".into()),
        rrn: Some("123456780099".into()),
        auth_code: None,
        terminal_id: "T0001".into(),
        batch_no: Some("000001".into()),
        captured_at: Timestamp::now(),
        store_id: None,
        card_token: None,
        order_ref: None,
        items: Vec::new(),
    };
    let system = Actor::system(web.merchant, "test");
    match web.app.record_sale(&system, new, None).await.unwrap() {
        refundry_app::idempotency::Replay::Fresh(v) => v.sale.id.to_string(),
        refundry_app::idempotency::Replay::Stored(_) => unreachable!("no key given"),
    }
}

async fn refund_at_counter(c: &reqwest::Client, web: &TestWeb, sale: &str, fields: &[(&str, &str)]) {
    let path = format!("/counter/sales/{sale}");
    let html = c.get(web.url(&path)).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_of(&html);
    let mut form = vec![("csrf", csrf.as_str()), ("idem", sale)];
    form.extend_from_slice(fields);
    let r = c.post(web.url(&format!("{path}/refund"))).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the refund of {sale} was taken");
}

async fn until_all_succeeded(web: &TestWeb, n: usize) {
    let actor = Actor::system(web.merchant, "test");
    for _ in 0..200 {
        let page = web.app.list_refunds(&actor, RefundQuery { limit: 50, ..RefundQuery::default() }).await.unwrap();
        if page.items.len() == n && page.items.iter().all(|r| r.status == RefundStatus::Succeeded) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the refunds did not all succeed");
}

/// The text of the table row whose header cell is `name`, tags removed.
fn row(html: &str, testid: &str, name: &str) -> String {
    let table = html.split(&format!("data-testid=\"{testid}\"")).nth(1).expect("the table is on the page");
    let table = table.split("</table>").next().unwrap();
    let at = table.find(&format!(">{name}</th>")).unwrap_or_else(|| panic!("no row {name} in {testid}:\n{table}"));
    let rest = &table[at..];
    let cells = rest.split("</tr>").next().unwrap();
    let mut text = String::new();
    let mut in_tag = false;
    for ch in cells.chars() {
        match ch {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn the_dashboard_adds_up_a_known_day_of_refunds() {
    let web = support::spawn().await;
    let today_sale = sale_today(&web, 10_000).await;
    let cashier = web.logged_in("cashier.wang", "en").await;
    // 22.00 of the latte, 10.00 of today's 100.00 sale: both within policy
    refund_at_counter(&cashier, &web, &web.small_sale.id, &[("qty.0", "1"), ("reason", "customer_request")]).await;
    refund_at_counter(&cashier, &web, &today_sale, &[("amount", "10.00"), ("reason", "defective")]).await;
    until_all_succeeded(&web, 2).await;

    let finance = web.logged_in("finance.zhou", "en").await;
    let html = finance.get(web.url("/dashboard")).send().await.unwrap().text().await.unwrap();
    // today: 2 refunds of ¥32.00 against one sale of ¥100.00
    let periods = html
        .split("data-testid=\"dashboard-periods\"")
        .nth(1)
        .unwrap_or_else(|| panic!("{html}"))
        .split("</ul>")
        .next()
        .unwrap();
    let today = periods.split("<li").nth(1).unwrap();
    assert!(today.contains("¥32.00") && today.contains("2 refunds"), "{today}");
    assert!(today.contains("<strong>32.00 %</strong>") && today.contains("by count 200.00 %"), "{today}");
    assert!(today.contains("Sales: ¥100.00 · 1"), "{today}");
    assert_eq!(row(&html, "dashboard-reasons", "Customer changed their mind"), "Customer changed their mind 1 ¥22.00");
    assert_eq!(row(&html, "dashboard-reasons", "Defective item"), "Defective item 1 ¥10.00");
    assert_eq!(row(&html, "dashboard-cashiers", "cashier.wang"), "cashier.wang 2 ¥32.00");
    assert_eq!(row(&html, "dashboard-stores", "人民广场店"), "人民广场店 2 ¥32.00");
    let day = Timestamp::now().to_zoned(web.app.config.business_tz.clone()).date().to_string();
    assert_eq!(row(&html, "dashboard-days", &day), format!("{day} 2 ¥32.00"));
    let timed = row(&html, "dashboard-timing", "Request → acquirer confirmed");
    assert!(timed.starts_with("Request → acquirer confirmed 2 "), "{timed}");
    assert!(html.contains("Mastercard ECP") && html.contains("Visa VAMP"), "the chargeback ratios are shown");
    // the charts get the same figures, from a JSON block and a script file
    assert!(html.contains("<script type=\"application/json\" id=\"dashboard-data\">"));
    assert!(html.contains("\"value\":\"22.00\"") && html.contains("/dashboard.js\""), "chart data and script");
    assert!(!html.contains("<script>"), "no inline script");
    // and the page reads in Chinese
    let zh = web.logged_in("finance.zhou", "zh-CN").await;
    let html = zh.get(web.url("/dashboard")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("今日") && html.contains("退款率") && html.contains("按原因"));
}

#[tokio::test]
async fn the_audit_log_filters_and_verifies_its_chain() {
    let web = support::spawn().await;
    let c = web.logged_in("supervisor.li", "en").await;
    let get = |path: String| {
        let c = c.clone();
        let url = web.url(&path);
        async move { c.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let all = get("/audit".into()).await;
    assert!(all.contains("Sale recorded") && all.contains("user.created"), "newest first, every kind");
    let first = all.find(&format!(">{}</a>", web.small_sale.id)).expect("the newer sale is listed");
    let second = all.find(&format!(">{}</a>", web.big_sale.id)).expect("the older sale is listed");
    assert!(first < second, "newest first");
    // a sale links to its page
    assert!(all.contains(&format!("href=\"/sales/{}\"", web.big_sale.id)));

    let sales = get("/audit?action=sale.recorded".into()).await;
    assert_eq!(sales.matches("class=\"audit-event\"").count(), 2, "only the two sales");
    assert!(!sales.contains("user.created"));

    let one = get(format!("/audit?subject={}", web.big_sale.id)).await;
    assert_eq!(one.matches("class=\"audit-event\"").count(), 1);
    assert!(one.contains(&format!(">{}</a>", web.big_sale.id)));

    let by_nobody = get("/audit?actor=user%3Ausr_00000000000000000000000000000000".into()).await;
    assert!(by_nobody.contains("No events match."));

    let future = get("/audit?from=2030-01-01&to=2030-01-31".into()).await;
    assert!(future.contains("No events match."), "nothing in 2030");
    let today = Timestamp::now().to_zoned(web.app.config.business_tz.clone()).date();
    let yesterday = today.yesterday().unwrap();
    let recent = get(format!("/audit?action=sale.recorded&from={yesterday}&to={today}")).await;
    assert_eq!(recent.matches("class=\"audit-event\"").count(), 2);

    let bad = get("/audit?from=tomorrow".into()).await;
    assert!(bad.contains("id=\"from-error\"") && bad.contains("Type a day as YYYY-MM-DD"), "{bad}");
    let backwards = get("/audit?from=2030-02-01&to=2030-01-01".into()).await;
    assert!(backwards.contains("id=\"to-error\""));

    let checked = get("/audit?verify=1".into()).await;
    let count = all.matches("class=\"audit-event\"").count();
    assert!(checked.contains(&format!("The chain is intact: {count} events verified.")), "{checked}");
    let zh = web.logged_in("supervisor.li", "zh-CN").await;
    let html = zh.get(web.url("/audit?verify=1")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("哈希链完整：已校验 ") && html.contains(" 条事件。"), "{html}");
}

#[tokio::test]
async fn the_chain_check_names_an_altered_event() {
    let web = support::spawn().await;
    let c = web.logged_in("finance.zhou", "en").await;
    assert_eq!(web.tamper("UPDATE audit_events SET data = '{\"forged\":true}' WHERE seq = 2"), 1);
    let html = c.get(web.url("/audit?verify=1")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("class=\"panel chain broken\""), "{html}");
    assert!(html.contains("The chain breaks at event #2: its content no longer matches its hash."), "{html}");
}
