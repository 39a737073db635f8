-- What a sale's refunds hold, summed by status (and by SKU for refunds of
-- items). Every new refund asks it; summing every refund the sale has had
-- grew with each one. Triggers keep the sums in step with the refunds in
-- the same statement, whichever code path inserts or moves a refund, so the
-- sums cannot drift from the rows they add up. A sum that falls to zero is
-- kept (a later refund may use it again) and skipped when read. A command
-- that changes a sale's refunds holds the sale's row lock, so the sums of
-- one sale change one transaction at a time.

CREATE TABLE sale_holdings (
    merchant_id  TEXT NOT NULL,
    sale_id      TEXT NOT NULL,
    status       TEXT NOT NULL,
    amount_minor BIGINT NOT NULL CHECK (amount_minor >= 0),
    PRIMARY KEY (merchant_id, sale_id, status)
);

CREATE TABLE sale_item_holdings (
    merchant_id TEXT NOT NULL,
    sale_id     TEXT NOT NULL,
    status      TEXT NOT NULL,
    sku         TEXT NOT NULL,
    quantity    BIGINT NOT NULL CHECK (quantity >= 0),
    PRIMARY KEY (merchant_id, sale_id, status, sku)
);

INSERT INTO sale_holdings (merchant_id, sale_id, status, amount_minor)
SELECT merchant_id, sale_id, status, SUM(amount_minor) FROM refunds GROUP BY merchant_id, sale_id, status;

INSERT INTO sale_item_holdings (merchant_id, sale_id, status, sku, quantity)
SELECT r.merchant_id, r.sale_id, r.status, i.sku, SUM(i.quantity)
FROM refunds r JOIN refund_items i ON i.refund_id = r.id
GROUP BY r.merchant_id, r.sale_id, r.status, i.sku;

CREATE FUNCTION refund_holds() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        UPDATE sale_holdings SET amount_minor = amount_minor - OLD.amount_minor
        WHERE merchant_id = OLD.merchant_id AND sale_id = OLD.sale_id AND status = OLD.status;
        UPDATE sale_item_holdings h SET quantity = h.quantity - i.quantity
        FROM refund_items i
        WHERE i.refund_id = OLD.id AND h.merchant_id = OLD.merchant_id AND h.sale_id = OLD.sale_id
          AND h.status = OLD.status AND h.sku = i.sku;
        INSERT INTO sale_item_holdings (merchant_id, sale_id, status, sku, quantity)
        SELECT NEW.merchant_id, NEW.sale_id, NEW.status, sku, quantity FROM refund_items WHERE refund_id = NEW.id
        ON CONFLICT (merchant_id, sale_id, status, sku)
        DO UPDATE SET quantity = sale_item_holdings.quantity + EXCLUDED.quantity;
    END IF;
    INSERT INTO sale_holdings (merchant_id, sale_id, status, amount_minor)
    VALUES (NEW.merchant_id, NEW.sale_id, NEW.status, NEW.amount_minor)
    ON CONFLICT (merchant_id, sale_id, status)
    DO UPDATE SET amount_minor = sale_holdings.amount_minor + EXCLUDED.amount_minor;
    RETURN NULL;
END
$$;

CREATE TRIGGER refund_holds AFTER INSERT ON refunds FOR EACH ROW EXECUTE FUNCTION refund_holds();
CREATE TRIGGER refund_moves AFTER UPDATE OF status ON refunds
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION refund_holds();

-- a refund's items are written just after it, under the status it has then
CREATE FUNCTION refund_item_holds() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sale_item_holdings (merchant_id, sale_id, status, sku, quantity)
    SELECT merchant_id, sale_id, status, NEW.sku, NEW.quantity FROM refunds WHERE id = NEW.refund_id
    ON CONFLICT (merchant_id, sale_id, status, sku)
    DO UPDATE SET quantity = sale_item_holdings.quantity + EXCLUDED.quantity;
    RETURN NULL;
END
$$;

CREATE TRIGGER refund_item_holds AFTER INSERT ON refund_items FOR EACH ROW EXECUTE FUNCTION refund_item_holds();

-- the sums hold for a refund's sale, amount and items as they were
-- written; all are fixed once a refund exists
CREATE FUNCTION refund_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a refund''s merchant, sale, amount and items are fixed once it exists';
END
$$;

CREATE TRIGGER refund_fixed BEFORE UPDATE OF merchant_id, sale_id, amount_minor ON refunds
FOR EACH ROW WHEN (OLD.merchant_id IS DISTINCT FROM NEW.merchant_id OR OLD.sale_id IS DISTINCT FROM NEW.sale_id
                   OR OLD.amount_minor IS DISTINCT FROM NEW.amount_minor)
EXECUTE FUNCTION refund_fixed();
CREATE TRIGGER refund_item_fixed BEFORE UPDATE ON refund_items FOR EACH ROW EXECUTE FUNCTION refund_fixed();

-- a sale's refunds are listed by this index, no longer summed from it: the
-- status and amount it carried for that made every change of status rewrite
-- its entry
DROP INDEX refunds_by_sale;
CREATE INDEX refunds_by_sale ON refunds (merchant_id, sale_id, id);
