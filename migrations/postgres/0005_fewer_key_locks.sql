-- PostgreSQL checks a foreign key by locking the row it points to
-- (FOR KEY SHARE). Every refund wrote seven such locks, five of them on its
-- merchant's one row: a lock written to the WAL, and a MultiXact as soon as
-- two writers hold it. Where the row's parent is already guaranteed by
-- how it is written, the check goes; a refund's two checks become one
-- that is also stricter.

-- Events are appended only together with their merchant's audit head,
-- whose own key still names the merchant; merchants are never removed.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_merchant_id_fkey;
-- An idempotency record is written in the transaction of the change it
-- answers for, on behalf of an authenticated merchant, and expires.
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_merchant_id_fkey;
-- A call is recorded in the transaction that writes its refund, and refunds
-- are never removed.
ALTER TABLE acquirer_calls DROP CONSTRAINT acquirer_calls_refund_id_fkey;

-- A refund's sale must be a sale of the same merchant: one key on both
-- columns instead of one on each. The unique constraint serves the lists
-- the plain index on the same columns served.
ALTER TABLE sales ADD CONSTRAINT sales_merchant_id_id_key UNIQUE (merchant_id, id);
DROP INDEX sales_by_merchant;
ALTER TABLE refunds
    DROP CONSTRAINT refunds_merchant_id_fkey,
    DROP CONSTRAINT refunds_sale_id_fkey,
    ADD CONSTRAINT refunds_sale_fkey FOREIGN KEY (merchant_id, sale_id) REFERENCES sales (merchant_id, id) NOT VALID;
ALTER TABLE refunds VALIDATE CONSTRAINT refunds_sale_fkey;
