use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;

use crate::auth::Auth;
use crate::dto::{BatchDto, SettleBatch};
use crate::guard::parse_body;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

/// Mark a terminal's batch settled (批结算), as the terminal reports at the
/// day's end. From then on its sales are refunded, not voided. Settling a
/// settled batch again answers with the first settlement.
#[utoipa::path(
    post, path = "/v1/batches/settle", tag = "batches",
    request_body = SettleBatch,
    responses(
        (status = 200, body = BatchDto),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn settle_batch(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<BatchDto>, ApiError> {
    let actor = auth.require("sales:write")?;
    let req = parse_body::<SettleBatch>(&headers, &body)?;
    let batch = state.app.settle_batch(actor, &req.terminal_id, &req.batch_no).await?;
    Ok(Json(BatchDto::from(&batch)))
}
