-- Three indexes only ever answer "rows from this time to that": the audit
-- viewer's window, the refunds of a reporting period, and the idempotency
-- keys old enough to prune. Their rows are written in time order, so a
-- block-range index (the smallest and largest time of every 128 pages)
-- finds them; a B-tree entry per row cost every refund three more index
-- insertions and their WAL. A range that rows of other times later share
-- (a refund updated long after it was made, a key written into pages a
-- prune emptied) is only read more than needed: results never change.
-- autosummarize: new ranges are summed up as they fill, not at the next
-- vacuum.
DROP INDEX audit_events_by_time;
CREATE INDEX audit_events_by_time ON audit_events USING brin (at) WITH (autosummarize = on);
DROP INDEX refunds_by_created;
CREATE INDEX refunds_by_created ON refunds USING brin (created_at) WITH (autosummarize = on);
DROP INDEX idempotency_by_age;
CREATE INDEX idempotency_by_age ON idempotency_keys USING brin (created_at) WITH (autosummarize = on);
