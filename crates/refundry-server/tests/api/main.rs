//! API tests over real HTTP against a real server on a random port, with a
//! fresh SQLite database and the sandbox acquirer.

mod support;

mod abuse;
mod acquirer;
mod approvals;
mod auth;
mod authz;
mod concurrency;
mod corrections;
mod disputes;
mod errors;
mod evidence;
mod execution;
mod hostile;
mod notify;
mod people;
mod policy;
mod refunds;
mod sales;
mod watch;
mod web;
mod webhooks;
