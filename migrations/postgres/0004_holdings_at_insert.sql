-- A new refund adds itself to its sale's sums in the statement that
-- inserts it (`insert_refund`, the only place a refund or its items are
-- inserted): one statement whose common table expressions insert the
-- refund, its items and their sums together, instead of a PL/pgSQL trigger
-- call per row and a round trip per item. Moving a refund between statuses
-- stays with the trigger `refund_moves`, whichever code path does it.
DROP TRIGGER refund_holds ON refunds;
DROP TRIGGER refund_item_holds ON refund_items;
DROP FUNCTION refund_item_holds();
