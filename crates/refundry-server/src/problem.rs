//! RFC 9457 problem details. Every error the API returns is rendered here,
//! from one table: code → HTTP status and titles in English and Simplified
//! Chinese.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use refundry_app::{AppError, ErrorCode};
use serde::Serialize;
use utoipa::ToSchema;

/// The single table of API errors. A new code does not compile until it
/// has a row here.
pub fn describe(code: ErrorCode) -> (StatusCode, &'static str, &'static str) {
    use ErrorCode as C;
    use StatusCode as S;
    match code {
        C::InvalidRequest => (S::BAD_REQUEST, "The request is malformed", "请求格式错误"),
        C::ValidationFailed => (S::UNPROCESSABLE_ENTITY, "A field is not valid", "字段校验未通过"),
        C::SensitiveCardData => (
            S::UNPROCESSABLE_ENTITY,
            "Full card numbers, CVV, track data and PINs are refused",
            "拒绝接收完整卡号、CVV、磁道数据或 PIN",
        ),
        C::Unauthorized => (S::UNAUTHORIZED, "A valid API key or session is required", "需要有效的 API 密钥或登录会话"),
        C::Forbidden => (S::FORBIDDEN, "Not allowed for this caller", "当前身份无此权限"),
        C::InvalidCredentials => (S::UNAUTHORIZED, "Wrong username or password", "用户名或密码错误"),
        C::AccountLocked => (S::LOCKED, "The account is locked for a while", "账户已暂时锁定"),
        C::UsernameTaken => (S::CONFLICT, "The username is taken", "用户名已被占用"),
        C::NotFound => (S::NOT_FOUND, "No such resource", "资源不存在"),
        C::MethodNotAllowed => (S::METHOD_NOT_ALLOWED, "Method not allowed here", "不支持该请求方法"),
        C::PayloadTooLarge => (S::PAYLOAD_TOO_LARGE, "The request body is too large", "请求体过大"),
        C::RateLimited => (S::TOO_MANY_REQUESTS, "Too many requests; slow down", "请求过于频繁，请稍后再试"),
        C::UnsupportedMediaType => {
            (S::UNSUPPORTED_MEDIA_TYPE, "Send the body as application/json", "请求体须为 application/json")
        }
        C::SaleNotFound => (S::NOT_FOUND, "Sale not found", "未找到该笔交易"),
        C::RefundNotFound => (S::NOT_FOUND, "Refund not found", "未找到该笔退款"),
        C::UnknownStore => (S::UNPROCESSABLE_ENTITY, "Unknown store", "门店不存在"),
        C::TerminalStoreMismatch => {
            (S::UNPROCESSABLE_ENTITY, "The terminal belongs to another store", "该终端属于其他门店")
        }
        C::RefundExceedsRefundable => {
            (S::UNPROCESSABLE_ENTITY, "The refund exceeds what is left to refund", "退款金额超过可退金额")
        }
        C::SaleDisputed => (
            S::UNPROCESSABLE_ENTITY,
            "The sale has an open dispute and cannot be refunded",
            "该交易存在未结案争议，不能退款",
        ),
        C::DisputeNotFound => (S::NOT_FOUND, "Dispute not found", "未找到该争议案件"),
        C::DisputeTransitionNotAllowed => {
            (S::CONFLICT, "The dispute cannot move that way from where it is", "该争议案件当前状态不允许此操作")
        }
        C::DisputeClosedToEvidence => (S::CONFLICT, "The case takes no more evidence", "该争议案件已不再接收证据"),
        C::EvidenceNotFound => (S::NOT_FOUND, "Evidence not found", "未找到该证据"),
        C::EvidenceFileTooLarge => (S::PAYLOAD_TOO_LARGE, "The evidence file is too large", "证据文件过大"),
        C::EvidenceFileTypeNotAllowed => (
            S::UNPROCESSABLE_ENTITY,
            "Evidence files must be PDF, PNG, JPEG or plain text",
            "证据文件须为 PDF、PNG、JPEG 或纯文本",
        ),
        C::EvidenceFileCorrupt => (
            S::INTERNAL_SERVER_ERROR,
            "The stored evidence file no longer matches its checksum",
            "已存证据文件与其校验值不符",
        ),
        C::CorrectionNotFound => (S::NOT_FOUND, "Correction case not found", "未找到该错收案件"),
        C::CorrectionNotOpen => (S::CONFLICT, "The correction case is already closed", "该错收案件已结案"),
        C::RefundRejectedByPolicy => {
            (S::UNPROCESSABLE_ENTITY, "The refund policy does not allow this refund", "退款政策不允许此笔退款")
        }
        C::ApproverIsRequester => {
            (S::FORBIDDEN, "The requester cannot approve their own refund", "申请人不能审批自己的退款")
        }
        C::RefundNotAwaitingApproval => (S::CONFLICT, "The refund is not waiting for approval", "该退款不在待审批状态"),
        C::ApprovalExpired => (S::CONFLICT, "The approval time ran out", "审批已超时"),
        C::InvalidPolicy => (S::UNPROCESSABLE_ENTITY, "The refund policy is not valid", "退款政策设置无效"),
        C::RefundNotRetryable => (S::CONFLICT, "Only a failed refund can be sent again", "只有失败的退款可以重新提交"),
        C::RefundNotSucceeded => (S::CONFLICT, "The refund has not succeeded", "该退款尚未成功"),
        C::JobNotFound => (S::NOT_FOUND, "No such dead job", "未找到该失败任务"),
        C::WebhookEndpointNotFound => (S::NOT_FOUND, "Webhook endpoint not found", "未找到该 Webhook 地址"),
        C::WebhookDeliveryNotFound => (S::NOT_FOUND, "Webhook delivery not found", "未找到该 Webhook 投递记录"),
        C::ItemNotOnSale => (S::UNPROCESSABLE_ENTITY, "The item is not on this sale", "该商品不在原交易中"),
        C::ItemQuantityExceedsRefundable => {
            (S::UNPROCESSABLE_ENTITY, "More of the item than is left to refund", "退货数量超过可退数量")
        }
        C::SaleHasNoItems => {
            (S::UNPROCESSABLE_ENTITY, "The sale has no items; refund by amount", "原交易无商品明细，请按金额退款")
        }
        C::CurrencyMismatch => (S::UNPROCESSABLE_ENTITY, "Currencies do not match", "币种不一致"),
        C::IdempotencyKeyRequired => {
            (S::BAD_REQUEST, "An Idempotency-Key header is required", "需要 Idempotency-Key 请求头")
        }
        C::IdempotencyKeyReused => {
            (S::CONFLICT, "The Idempotency-Key was used for another request", "该幂等键已用于其他请求")
        }
        C::IdempotencyRequestInProgress => {
            (S::CONFLICT, "A request with this Idempotency-Key is still running", "使用该幂等键的请求仍在处理中")
        }
        C::Overloaded => (S::SERVICE_UNAVAILABLE, "Busy; try again shortly", "系统繁忙，请稍后重试"),
        C::Unavailable => (S::SERVICE_UNAVAILABLE, "Temporarily unavailable", "服务暂不可用"),
        C::Internal => (S::INTERNAL_SERVER_ERROR, "Internal error; nothing was changed", "内部错误，未做任何更改"),
    }
}

/// The body of every error answer (`application/problem+json`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `/problems/{code}`, documented in
    /// docs/api.md.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine code; match on this, never on the title.
    pub code: String,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locale {
    En,
    ZhCn,
}

impl Locale {
    /// The first language of `Accept-Language` that we speak; English
    /// otherwise.
    pub fn from_headers(headers: &HeaderMap) -> Locale {
        let Some(value) = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()) else {
            return Locale::En;
        };
        for lang in value.split(',') {
            let tag = lang.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            if tag.starts_with("zh") {
                return Locale::ZhCn;
            }
            if tag.starts_with("en") {
                return Locale::En;
            }
        }
        Locale::En
    }
}

pub fn problem_of(e: &AppError, locale: Locale) -> (StatusCode, Problem) {
    let (status, en, zh) = describe(e.code);
    let problem = Problem {
        type_uri: format!("/problems/{}", e.code.as_str()),
        title: match locale {
            Locale::En => en,
            Locale::ZhCn => zh,
        }
        .to_owned(),
        status: status.as_u16(),
        detail: e.detail.clone(),
        code: e.code.as_str().to_owned(),
        // the standard members win: an extra named like one would be a bug
        extra: e
            .extra
            .iter()
            .filter(|(k, _)| !matches!(*k, "type" | "title" | "status" | "detail" | "code"))
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    };
    (status, problem)
}

fn render(e: &AppError, locale: Locale) -> Response {
    let (status, problem) = problem_of(e, locale);
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    response
}

/// An application error on its way out as HTTP.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(e: AppError) -> ApiError {
        ApiError(e)
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> ApiError {
        ApiError(AppError::new(code, detail))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = render(&self.0, Locale::En);
        response.extensions_mut().insert(self.0);
        response
    }
}

/// Gives every error answer the problem shape and the caller's language,
/// including the ones the framework makes (unknown route, wrong method,
/// body too large).
pub async fn localize(request: Request, next: Next) -> Response {
    let locale = Locale::from_headers(request.headers());
    let response = next.run(request).await;
    if let Some(e) = response.extensions().get::<AppError>() {
        return if locale == Locale::En { response } else { with_headers_of(render(e, locale), &response) };
    }
    let code = match response.status() {
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::INTERNAL_SERVER_ERROR => ErrorCode::Internal,
        _ => return response,
    };
    // problems already, or a web page's own error page in the visitor's language
    let is_own = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(b"application/problem+json") || v.as_bytes().starts_with(b"text/html")
    });
    if is_own {
        return response;
    }
    let detail = describe(code).1;
    with_headers_of(render(&AppError::new(code, detail), locale), &response)
}

fn with_headers_of(mut rendered: Response, original: &Response) -> Response {
    for name in [header::ALLOW, header::HeaderName::from_static("x-request-id")] {
        if let Some(v) = original.headers().get(&name) {
            rendered.headers_mut().insert(name, v.clone());
        }
    }
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_client_or_server_error_status_and_both_titles() {
        for code in ErrorCode::ALL {
            let (status, en, zh) = describe(*code);
            assert!(status.is_client_error() || status.is_server_error(), "{code:?}");
            assert!(!en.is_empty() && !zh.is_empty(), "{code:?}");
        }
    }

    #[test]
    fn chinese_is_chosen_by_accept_language() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("zh-CN,zh;q=0.9,en;q=0.8"));
        assert_eq!(Locale::from_headers(&h), Locale::ZhCn);
        h.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("en-US,zh;q=0.5"));
        assert_eq!(Locale::from_headers(&h), Locale::En);
        assert_eq!(Locale::from_headers(&HeaderMap::new()), Locale::En);
    }
}

#[cfg(test)]
mod docs_tests {
    use super::*;

    /// docs/api.md lists every code with its status, so the guide cannot
    /// drift from this table.
    #[test]
    fn the_api_guide_lists_every_error_code() {
        let guide = include_str!("../../../docs/api.md");
        for code in ErrorCode::ALL {
            let status = describe(*code).0.as_u16();
            let row = format!("| `{}` | {status} |", code.as_str());
            assert!(guide.contains(&row), "docs/api.md lacks the row {row}");
        }
    }
}
