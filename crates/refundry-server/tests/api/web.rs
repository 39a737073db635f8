//! The web pages are served by the same server, beside the API.

use crate::support;

#[tokio::test]
async fn the_back_office_is_served_beside_the_api() {
    let app = support::spawn().await;
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let home = plain.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(home.status(), 303);
    assert_eq!(home.headers()["location"], "/login");
    let login = plain.get(format!("{}/login", app.base)).header("accept-language", "en").send().await.unwrap();
    assert_eq!(login.status(), 200);
    assert!(login.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(login.text().await.unwrap().contains("<h1>Log in</h1>"));
    // the API is unchanged: problem+json, key required
    let api = plain.get(format!("{}/v1/sales", app.base)).send().await.unwrap();
    assert_eq!(api.status(), 401);
    assert_eq!(api.headers()["content-type"], "application/problem+json");
    let unknown = plain.get(format!("{}/no-such-page", app.base)).send().await.unwrap();
    assert_eq!(unknown.headers()["content-type"], "application/problem+json");
}
