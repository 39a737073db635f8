//! Merchants, their stores and terminals.

use refundry_core::ids::{MerchantId, StoreId};
use refundry_store::model::{Merchant, StoreRecord};

use crate::{Actor, App, AppError, audit};

impl App {
    /// The merchant of a single-merchant install, made on first use with one
    /// store, so that `refundry keys create` works on a fresh database.
    pub async fn default_merchant(&self) -> Result<(Merchant, StoreRecord), AppError> {
        refundry_store::write(&self.store, |tx| {
            if let Some(m) = tx.first_merchant()? {
                let store = tx.stores_of(m.id)?.into_iter().next();
                if let Some(store) = store {
                    return Ok((m, store));
                }
            }
            create_merchant_tx(tx, "Default merchant", "Main store")
        })
        .await
    }

    /// A new merchant with its first store.
    pub async fn create_merchant(&self, name: &str, store_name: &str) -> Result<(Merchant, StoreRecord), AppError> {
        let (name, store_name) = (name.to_owned(), store_name.to_owned());
        refundry_store::write(&self.store, move |tx| create_merchant_tx(tx, &name, &store_name)).await
    }

    pub async fn create_store(&self, actor: &Actor, name: &str) -> Result<StoreRecord, AppError> {
        let store = StoreRecord {
            id: StoreId::generate(),
            merchant_id: actor.merchant_id,
            name: name.to_owned(),
            created_at: crate::now(),
        };
        let actor = actor.clone();
        refundry_store::write(&self.store, move |tx| {
            tx.insert_store(&store)?;
            audit::record(
                tx,
                &actor,
                "store.created",
                &store.id.to_string(),
                serde_json::json!({"name": store.name}),
                store.created_at,
            )?;
            Ok(store.clone())
        })
        .await
    }
}

fn create_merchant_tx(
    tx: &mut dyn refundry_store::Tx,
    name: &str,
    store_name: &str,
) -> Result<(Merchant, StoreRecord), AppError> {
    let now = crate::now();
    let merchant = Merchant { id: MerchantId::generate(), name: name.to_owned(), created_at: now };
    let store =
        StoreRecord { id: StoreId::generate(), merchant_id: merchant.id, name: store_name.to_owned(), created_at: now };
    tx.insert_merchant(&merchant)?;
    tx.insert_store(&store)?;
    let actor = Actor::system(merchant.id, "setup");
    audit::record(tx, &actor, "merchant.created", &merchant.id.to_string(), serde_json::json!({"name": name}), now)?;
    audit::record(tx, &actor, "store.created", &store.id.to_string(), serde_json::json!({"name": store_name}), now)?;
    Ok((merchant, store))
}
