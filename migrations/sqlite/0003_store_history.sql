-- Recording a sale compares its amount with the store's last 500 sales
-- (the amount-outlier check). With the amount in the store index, those
-- are read from the index alone, in order, instead of one lookup of the
-- sale row each.
DROP INDEX sales_by_store;
CREATE INDEX sales_by_store ON sales (merchant_id, store_id, id, amount_minor);
