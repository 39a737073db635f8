-- A new refund adds itself to its sale's sums in the store's own insert
-- (`insert_refund`, the only place a refund or its items are inserted),
-- not in a trigger. An INSERT that fires a trigger writes more than one
-- b-tree and may abort, so SQLite kept a statement journal for it: a copy
-- of every page the insert touched, some 5 % of the single writer's time
-- per refund. Moving a refund between statuses stays with the trigger
-- `refund_moves`, whichever code path does it.
DROP TRIGGER refund_holds;
DROP TRIGGER refund_item_holds;
