//! Webhooks: the endpoints (a form to add one, whose signing secret is
//! shown once), and each endpoint's delivery log with a button to send a
//! delivery's event again.

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use refundry_store::model::{WebhookDelivery, WebhookEndpoint};
use serde::Deserialize;

use super::no_store;
use crate::Web;
use crate::nav::Area;
use crate::page::{Ctx, FieldErrors, PageResult, Staff, render};

pub struct EndpointRow {
    pub id: String,
    pub url: String,
    pub events: String,
    pub created: String,
    pub disabled: bool,
}

fn endpoint_row(ctx: &Ctx, e: &WebhookEndpoint) -> EndpointRow {
    EndpointRow {
        id: e.id.clone(),
        url: e.url.clone(),
        events: e.events.join(" "),
        created: ctx.time(e.created_at),
        disabled: e.disabled_at.is_some(),
    }
}

#[derive(Default, Deserialize)]
pub struct Typed {
    #[serde(default)]
    url: String,
    #[serde(default)]
    events: String,
}

#[derive(Template)]
#[template(path = "settings/webhooks.html")]
struct EndpointsPage<'a> {
    ctx: &'a Ctx,
    endpoints: Vec<EndpointRow>,
    form: Typed,
    errors: FieldErrors,
    /// The signing secret of the endpoint just added, shown this once.
    secret: Option<String>,
}

async fn page(web: &Web, staff: &Staff, form: Typed, errors: FieldErrors, secret: Option<String>) -> PageResult {
    let ctx = &staff.ctx;
    let endpoints = web.app.webhook_endpoints(&staff.actor).await.map_err(|e| ctx.app_error(&e))?;
    let endpoints = endpoints.iter().map(|e| endpoint_row(ctx, e)).collect();
    Ok(no_store(render(&EndpointsPage { ctx, endpoints, form, errors, secret })))
}

pub async fn list(State(web): State<Web>, mut staff: Staff) -> PageResult {
    staff.enter(Area::Settings)?;
    let form = Typed { events: "*".into(), ..Typed::default() };
    page(&web, &staff, form, FieldErrors::default(), None).await
}

pub async fn create(State(web): State<Web>, mut staff: Staff, Form(form): Form<Typed>) -> PageResult {
    staff.enter(Area::Settings)?;
    let events: Vec<String> =
        form.events.split([' ', ',', '\n']).filter(|e| !e.is_empty()).map(str::to_owned).collect();
    match web.app.create_webhook_endpoint(&staff.actor, form.url.trim(), events).await {
        Ok((_, secret)) => page(&web, &staff, Typed::default(), FieldErrors::default(), Some(secret)).await,
        Err(e) => {
            let errors = FieldErrors::from_app(&staff.ctx, &e, "url");
            let status = crate::page::status_of(e.code);
            Ok((status, page(&web, &staff, form, errors, None).await?).into_response())
        }
    }
}

pub struct DeliveryRow {
    pub id: i64,
    pub at: String,
    pub event_type: String,
    pub event_id: String,
    pub attempt: u32,
    /// The HTTP status the receiver answered, or the error.
    pub outcome: String,
    pub ok: bool,
    pub duration_ms: i64,
}

fn delivery_row(ctx: &Ctx, d: &WebhookDelivery) -> DeliveryRow {
    let ok = d.status_code.is_some_and(|s| (200..300).contains(&s));
    let outcome = match (d.status_code, &d.error) {
        (Some(code), _) => format!("HTTP {code}"),
        (None, Some(error)) => error.clone(),
        (None, None) => ctx.t("settings.no_answer").to_owned(),
    };
    DeliveryRow {
        id: d.id,
        at: ctx.time(d.at),
        event_type: d.event_type.clone(),
        event_id: d.event_id.clone(),
        attempt: d.attempt,
        outcome,
        ok,
        duration_ms: d.duration_ms,
    }
}

#[derive(Template)]
#[template(path = "settings/deliveries.html")]
struct DeliveriesPage<'a> {
    ctx: &'a Ctx,
    endpoint: EndpointRow,
    deliveries: Vec<DeliveryRow>,
    done: bool,
}

#[derive(Deserialize, Default)]
pub struct Done {
    #[serde(default)]
    redelivered: Option<i64>,
}

pub async fn deliveries(
    State(web): State<Web>,
    mut staff: Staff,
    Path(id): Path<String>,
    Query(q): Query<Done>,
) -> PageResult {
    staff.enter(Area::Settings)?;
    let ctx = &staff.ctx;
    let endpoints = web.app.webhook_endpoints(&staff.actor).await.map_err(|e| ctx.app_error(&e))?;
    let endpoint = endpoints.iter().find(|e| e.id == id).ok_or_else(|| ctx.not_found())?;
    let log = web.app.webhook_deliveries(&staff.actor, &id).await.map_err(|e| ctx.app_error(&e))?;
    let page = DeliveriesPage {
        ctx,
        endpoint: endpoint_row(ctx, endpoint),
        deliveries: log.iter().map(|d| delivery_row(ctx, d)).collect(),
        done: q.redelivered.is_some(),
    };
    Ok(render(&page))
}

pub async fn redeliver(
    State(web): State<Web>,
    mut staff: Staff,
    Path((endpoint, delivery)): Path<(String, i64)>,
) -> PageResult {
    staff.enter(Area::Settings)?;
    let ctx = &staff.ctx;
    // the delivery must be this endpoint's, so the page we return to shows it
    let log = web.app.webhook_deliveries(&staff.actor, &endpoint).await.map_err(|e| ctx.app_error(&e))?;
    if !log.iter().any(|d| d.id == delivery) {
        return Err(ctx.not_found());
    }
    web.app.redeliver(&staff.actor, delivery).await.map_err(|e| ctx.app_error(&e))?;
    let endpoint: String = form_urlencoded::byte_serialize(endpoint.as_bytes()).collect();
    Ok(Redirect::to(&format!("/settings/webhooks/{endpoint}?redelivered={delivery}")).into_response())
}
