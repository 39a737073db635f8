//! Demo data: one merchant (a café), one store, two terminals and a few
//! days of realistic sales, so the API can be tried at once.

use jiff::{Timestamp, ToSpan, tz::TimeZone};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use refundry_core::card::{First6, Last4};
use refundry_core::money::{Currency, Money};
use refundry_core::refund::{ItemQuantity, RefundAsk, RefundReason};
use refundry_core::sale::{CardBrand, EntryMode, LineItem, PaymentMethod, Wallet};

use crate::keys::{ALL_SCOPES, NewKey};
use crate::refunds::RefundRequest;
use crate::sales::NewSale;
use crate::users::{NewUser, Role};
use crate::{Actor, App, AppError};

const MENU: &[(&str, &str, i64)] = &[
    ("6901234567892", "美式咖啡 Americano", 1800),
    ("6901234567908", "拿铁 Latte", 2200),
    ("6901234567915", "燕麦拿铁 Oat latte", 2600),
    ("6901234567922", "三明治 Sandwich", 1500),
    ("6901234567939", "牛角包 Croissant", 1200),
    ("6901234567946", "矿泉水 Water", 300),
];

const TERMINALS: &[&str] = &["T0001", "T0002"];

/// The demo's people; all share [`DEMO_PASSWORD`]. Demo data only.
pub const DEMO_PEOPLE: &[(&str, &str, Role)] = &[
    ("wang.fang", "王芳 (cashier)", Role::Cashier),
    ("li.qiang", "李强 (supervisor)", Role::Supervisor),
    ("zhao.min", "赵敏 (admin)", Role::Admin),
];
pub const DEMO_PASSWORD: &str = "refundry-demo";

pub struct DemoSummary {
    pub merchant_name: String,
    pub key: NewKey,
    pub sales: usize,
    pub refunds: usize,
}

/// Fills an empty database. `days` of trading up to `now`, Shanghai time;
/// every day but today has its batches settled.
pub async fn seed(app: &App, days: u32, now: Timestamp) -> Result<DemoSummary, AppError> {
    let (merchant, _store) = app.create_merchant("蓝山咖啡 Blue Mountain Café", "人民广场店 People's Square").await?;
    let actor = Actor::system(merchant.id, "demo");
    let key = app.create_key(&actor, "demo terminal key", ALL_SCOPES).await?;
    for (username, display_name, role) in DEMO_PEOPLE {
        let new = NewUser {
            username: username.to_string(),
            display_name: display_name.to_string(),
            role: *role,
            password: DEMO_PASSWORD.to_owned(),
            store_id: None,
        };
        app.create_user(&actor, new).await?;
    }
    let mut rng = StdRng::seed_from_u64(8583);
    let tz = TimeZone::get("Asia/Shanghai").unwrap_or(TimeZone::UTC);
    let today = now.to_zoned(tz.clone()).date();
    let mut sales = Vec::new();
    let mut voucher = 100u32;
    for back in (0..days).rev() {
        let day = today.checked_sub((back as i64).days()).unwrap_or(today);
        let batch_no = format!("{:06}", days - back);
        let mut minutes: Vec<i32> =
            (0..rng.random_range(25..40)).map(|_| rng.random_range(7 * 60 + 30..21 * 60)).collect();
        // recorded in the order they happened, as terminals report them
        minutes.sort_unstable();
        for minute in minutes {
            let at = day
                .at((minute / 60) as i8, (minute % 60) as i8, rng.random_range(0..60), 0)
                .to_zoned(tz.clone())
                .map(|z| z.timestamp())
                .unwrap_or(now);
            if at > now {
                continue;
            }
            voucher += 1;
            let new = demo_sale(&mut rng, at, voucher, &batch_no);
            if let crate::idempotency::Replay::Fresh(view) = app.record_sale(&actor, new, None).await? {
                sales.push(view.sale);
            }
        }
        if back > 0 {
            for terminal in TERMINALS {
                app.settle_batch(&actor, terminal, &batch_no).await?;
            }
        }
    }
    let mut refunds = 0;
    for sale in sales.iter().step_by(17) {
        let ask = match sale.items.first() {
            Some(item) => RefundAsk::Items(vec![ItemQuantity { sku: item.sku.clone(), quantity: 1 }]),
            None => RefundAsk::Amount(sale.amount.minor / 2),
        };
        let request = RefundRequest {
            sale_id: sale.id,
            ask,
            reason: RefundReason::Defective,
            note: Some("demo".into()),
            customer: None,
            card_token: None,
        };
        app.request_refund(&actor, request, None).await?;
        refunds += 1;
    }
    Ok(DemoSummary { merchant_name: merchant.name, key, sales: sales.len(), refunds })
}

fn demo_sale(rng: &mut StdRng, captured_at: Timestamp, voucher: u32, batch_no: &str) -> NewSale {
    let mut items: Vec<LineItem> = Vec::new();
    for _ in 0..rng.random_range(1..4) {
        let (sku, name, unit) = MENU[rng.random_range(0..MENU.len())];
        match items.iter_mut().find(|l| l.sku == sku) {
            Some(line) => line.quantity += 1,
            None => items.push(LineItem { sku: sku.into(), name: name.into(), quantity: 1, unit_amount_minor: unit }),
        }
    }
    let amount: i64 = items.iter().map(|l| l.unit_amount_minor * i64::from(l.quantity)).sum();
    let roll = rng.random_range(0..100);
    let payment_method = if roll < 35 {
        let bins = ["622202", "621700", "625807", "622848"];
        PaymentMethod::Card {
            brand: CardBrand::UnionPay,
            first6: First6::parse(bins[rng.random_range(0..bins.len())]).expect("six digits"),
            last4: Last4::parse(&format!("{:04}", rng.random_range(0..10_000))).expect("four digits"),
            entry_mode: if rng.random_bool(0.7) { EntryMode::Contactless } else { EntryMode::Chip },
        }
    } else if roll < 85 {
        PaymentMethod::Wallet { wallet: if rng.random_bool(0.55) { Wallet::WechatPay } else { Wallet::Alipay } }
    } else {
        PaymentMethod::Cash
    };
    let card = payment_method.is_card();
    NewSale {
        amount: Money::new(amount, Currency::CNY),
        payment_method,
        voucher_no: Some(format!("{voucher:06}")),
        rrn: card.then(|| format!("{:012}", rng.random_range(100_000_000_000u64..999_999_999_999))),
        auth_code: card.then(|| format!("{:06}", rng.random_range(0..1_000_000))),
        terminal_id: TERMINALS[rng.random_range(0..TERMINALS.len())].into(),
        batch_no: Some(batch_no.to_owned()),
        captured_at,
        store_id: None,
        items,
        card_token: None,
        order_ref: None,
    }
}
