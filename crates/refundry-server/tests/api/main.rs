//! API tests over real HTTP against a real server on a random port, with a
//! fresh SQLite database and the sandbox acquirer.

mod support;

mod auth;
mod concurrency;
mod errors;
mod refunds;
mod sales;
