//! A rate limit per client address: a terminal stuck in a retry loop, or a
//! script guessing ids, gets 429 instead of the database's attention.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use refundry_app::{AppError, ErrorCode};

use crate::ServerConfig;
use crate::problem::ApiError;

#[derive(Clone)]
pub struct Limiter(Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>);

impl Limiter {
    pub fn new(config: &ServerConfig) -> Limiter {
        let Some(rate) = NonZeroU32::new(config.rate_limit_per_second) else { return Limiter(None) };
        let burst = NonZeroU32::new(config.rate_limit_burst).unwrap_or(rate);
        Limiter(Some(Arc::new(RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)))))
    }
}

pub async fn limit(State(limiter): State<Limiter>, request: Request, next: Next) -> Response {
    if let Some(limiter) = &limiter.0 {
        let ip = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        if let Some(ip) = ip
            && limiter.check_key(&ip).is_err()
        {
            metrics::counter!("refundry_rate_limited_total").increment(1);
            let mut response =
                ApiError(AppError::new(ErrorCode::RateLimited, "too many requests from this address; slow down"))
                    .into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        }
    }
    next.run(request).await
}
