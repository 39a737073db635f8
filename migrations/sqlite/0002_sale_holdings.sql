-- What a sale's refunds hold, summed by status (and by SKU for refunds of
-- items). Every new refund asks it; summing every refund the sale has had
-- grew with each one. Triggers keep the sums in step with the refunds in
-- the same statement, whichever code path inserts or moves a refund, so the
-- sums cannot drift from the rows they add up. A sum that falls to zero is
-- kept (a later refund may use it again) and skipped when read.

CREATE TABLE sale_holdings (
    merchant_id  TEXT NOT NULL,
    sale_id      TEXT NOT NULL,
    status       TEXT NOT NULL,
    amount_minor INTEGER NOT NULL CHECK (amount_minor >= 0),
    PRIMARY KEY (merchant_id, sale_id, status)
) WITHOUT ROWID;

CREATE TABLE sale_item_holdings (
    merchant_id TEXT NOT NULL,
    sale_id     TEXT NOT NULL,
    status      TEXT NOT NULL,
    sku         TEXT NOT NULL,
    quantity    INTEGER NOT NULL CHECK (quantity >= 0),
    PRIMARY KEY (merchant_id, sale_id, status, sku)
) WITHOUT ROWID;

INSERT INTO sale_holdings (merchant_id, sale_id, status, amount_minor)
SELECT merchant_id, sale_id, status, SUM(amount_minor) FROM refunds GROUP BY merchant_id, sale_id, status;

INSERT INTO sale_item_holdings (merchant_id, sale_id, status, sku, quantity)
SELECT r.merchant_id, r.sale_id, r.status, i.sku, SUM(i.quantity)
FROM refunds r JOIN refund_items i ON i.refund_id = r.id
GROUP BY r.merchant_id, r.sale_id, r.status, i.sku;

CREATE TRIGGER refund_holds AFTER INSERT ON refunds
BEGIN
    INSERT INTO sale_holdings (merchant_id, sale_id, status, amount_minor)
    VALUES (new.merchant_id, new.sale_id, new.status, new.amount_minor)
    ON CONFLICT DO UPDATE SET amount_minor = amount_minor + excluded.amount_minor;
END;

-- a refund's items are written just after it, under the status it has then
CREATE TRIGGER refund_item_holds AFTER INSERT ON refund_items
BEGIN
    INSERT INTO sale_item_holdings (merchant_id, sale_id, status, sku, quantity)
    SELECT merchant_id, sale_id, status, new.sku, new.quantity FROM refunds WHERE id = new.refund_id
    ON CONFLICT DO UPDATE SET quantity = quantity + excluded.quantity;
END;

CREATE TRIGGER refund_moves AFTER UPDATE OF status ON refunds WHEN old.status <> new.status
BEGIN
    UPDATE sale_holdings SET amount_minor = amount_minor - old.amount_minor
    WHERE merchant_id = old.merchant_id AND sale_id = old.sale_id AND status = old.status;
    INSERT INTO sale_holdings (merchant_id, sale_id, status, amount_minor)
    VALUES (new.merchant_id, new.sale_id, new.status, new.amount_minor)
    ON CONFLICT DO UPDATE SET amount_minor = amount_minor + excluded.amount_minor;
    UPDATE sale_item_holdings
    SET quantity = quantity - (SELECT i.quantity FROM refund_items i
                               WHERE i.refund_id = new.id AND i.sku = sale_item_holdings.sku)
    WHERE merchant_id = old.merchant_id AND sale_id = old.sale_id AND status = old.status
      AND sku IN (SELECT sku FROM refund_items WHERE refund_id = new.id);
    INSERT INTO sale_item_holdings (merchant_id, sale_id, status, sku, quantity)
    SELECT new.merchant_id, new.sale_id, new.status, sku, quantity FROM refund_items WHERE refund_id = new.id
    ON CONFLICT DO UPDATE SET quantity = quantity + excluded.quantity;
END;

-- the sums hold for a refund's sale and amount as they were written; both
-- are fixed once a refund exists
CREATE TRIGGER refund_fixed BEFORE UPDATE OF merchant_id, sale_id, amount_minor ON refunds
WHEN old.merchant_id <> new.merchant_id OR old.sale_id <> new.sale_id OR old.amount_minor <> new.amount_minor
BEGIN
    SELECT RAISE(ABORT, 'a refund''s merchant, sale and amount are fixed once it exists');
END;

CREATE TRIGGER refund_item_fixed BEFORE UPDATE ON refund_items
BEGIN
    SELECT RAISE(ABORT, 'a refund''s items are fixed once it exists');
END;

-- a sale's refunds are listed by this index, no longer summed from it: the
-- status and amount it carried for that made every change of status rewrite
-- its entry
DROP INDEX refunds_by_sale;
CREATE INDEX refunds_by_sale ON refunds (merchant_id, sale_id, id);
