//! Sales: a searchable list and a page per sale with its items, its
//! refunds and the timeline of everything that happened to it.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use refundry_core::ids::SaleId;
use refundry_store::model::RefundQuery;

use super::counter::SaleSearch;
use super::views::{RefundRow, SaleRow, Step, steps};
use crate::Web;
use crate::format;
use crate::nav::Area;
use crate::page::{Ctx, FieldErrors, PageResult, Staff, render};

const PAGE: u32 = 25;

#[derive(Template)]
#[template(path = "sales/list.html")]
struct ListPage<'a> {
    ctx: &'a Ctx,
    search: SaleSearch,
    sales: Vec<SaleRow>,
    next: Option<String>,
    errors: FieldErrors,
}

pub async fn list(State(web): State<Web>, mut staff: Staff, Query(search): Query<SaleSearch>) -> PageResult {
    staff.enter(Area::Sales)?;
    let ctx = &staff.ctx;
    let mut page =
        ListPage { ctx, search: search.clone(), sales: Vec::new(), next: None, errors: FieldErrors::default() };
    match search.query(ctx, PAGE) {
        Err(errors) => {
            page.errors = errors;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
        }
        Ok(q) => {
            let found = web.app.search_sales(&staff.actor, q).await.map_err(|e| ctx.app_error(&e))?;
            page.sales = found.items.iter().map(|v| SaleRow::of(ctx, v)).collect();
            if found.has_more
                && let Some(last) = found.items.last()
            {
                page.next = Some(search.next_page(&last.sale.id.to_string()));
            }
        }
    }
    Ok(render(&page))
}

pub struct ItemRow {
    pub name: String,
    pub sku: String,
    pub quantity: u32,
    pub unit: String,
}

#[derive(Template)]
#[template(path = "sales/detail.html")]
struct DetailPage<'a> {
    ctx: &'a Ctx,
    sale: SaleRow,
    batch: String,
    auth_code: String,
    items: Vec<ItemRow>,
    refunds: Vec<RefundRow>,
    steps: Vec<Step>,
    may_refund: bool,
}

pub async fn detail(State(web): State<Web>, mut staff: Staff, Path(id): Path<String>) -> PageResult {
    staff.enter(Area::Sales)?;
    let ctx = &staff.ctx;
    let id = ctx.id(&id, SaleId::parse)?;
    let view = web.app.sale(&staff.actor, id).await.map_err(|e| ctx.app_error(&e))?;
    let query = RefundQuery { sale_id: Some(id), limit: 100, ..RefundQuery::default() };
    let refunds = web.app.list_refunds(&staff.actor, query).await.map_err(|e| ctx.app_error(&e))?.items;
    let timeline = web.app.sale_timeline(&staff.actor, id).await.map_err(|e| ctx.app_error(&e))?;
    let cur = view.sale.amount.currency;
    let page = DetailPage {
        ctx,
        sale: SaleRow::of(ctx, &view),
        batch: view.sale.batch_no.clone().unwrap_or_default(),
        auth_code: view.sale.auth_code.clone().unwrap_or_default(),
        items: view
            .sale
            .items
            .iter()
            .map(|i| ItemRow {
                name: i.name.clone(),
                sku: i.sku.clone(),
                quantity: i.quantity,
                unit: format::major(i.unit_amount_minor, cur),
            })
            .collect(),
        refunds: refunds.iter().map(|r| RefundRow::of(ctx, r)).collect(),
        steps: steps(ctx, &timeline),
        may_refund: staff.may(Area::Counter) && view.refundable_minor > 0,
    };
    Ok(render(&page))
}
