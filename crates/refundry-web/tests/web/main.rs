//! The web pages against a real server: plain HTTP (roles, CSRF, language,
//! the counter and self-service flows) and a headless Chromium.

mod browser;
mod cases;
mod http;
mod reports;
mod support;
