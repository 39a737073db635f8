-- Refundry schema, version 1. Times are integer microseconds since the Unix
-- epoch (UTC); money is integer minor units beside a lower-case ISO 4217 code.
--
-- Tables that every refund reads or writes and whose key is text or several
-- columns are WITHOUT ROWID: the row lives in its key's b-tree, so a lookup
-- by key is one descent and an insert one b-tree fewer. Checks list their
-- values with OR: an IN list of more than two constants is checked through a
-- temporary b-tree built again each time a statement runs.

CREATE TABLE merchants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE stores (
    id          TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX stores_by_merchant ON stores (merchant_id, id);

CREATE TABLE terminals (
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    terminal_id TEXT NOT NULL,
    store_id    TEXT NOT NULL REFERENCES stores(id),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, terminal_id)
);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    merchant_id   TEXT NOT NULL REFERENCES merchants(id),
    name          TEXT NOT NULL,
    secret_sha256 BLOB NOT NULL CHECK (length(secret_sha256) = 32),
    scopes        TEXT NOT NULL,
    store_id      TEXT REFERENCES stores(id),
    terminal_id   TEXT,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    merchant_id   TEXT NOT NULL REFERENCES merchants(id),
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('cashier', 'supervisor', 'finance', 'risk', 'admin')),
    password_hash TEXT NOT NULL,
    store_id      TEXT REFERENCES stores(id),
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until  INTEGER,
    created_at    INTEGER NOT NULL,
    disabled_at   INTEGER
);
CREATE INDEX users_by_merchant ON users (merchant_id, id);

CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id),
    secret_sha256 BLOB NOT NULL CHECK (length(secret_sha256) = 32),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE refund_policies (
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    version     INTEGER NOT NULL,
    store_id    TEXT REFERENCES stores(id),
    body        TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, version)
);
CREATE INDEX refund_policies_by_store ON refund_policies (merchant_id, store_id, version);

CREATE TABLE sales (
    id            TEXT PRIMARY KEY,
    merchant_id   TEXT NOT NULL REFERENCES merchants(id),
    store_id      TEXT NOT NULL REFERENCES stores(id),
    terminal_id   TEXT NOT NULL,
    amount_minor  INTEGER NOT NULL CHECK (amount_minor > 0),
    currency      TEXT NOT NULL CHECK (length(currency) = 3),
    method        TEXT NOT NULL CHECK (method = 'card' OR method = 'wallet' OR method = 'cash'),
    card_brand    TEXT,
    card_first6   TEXT CHECK (card_first6 IS NULL OR length(card_first6) = 6),
    card_last4    TEXT CHECK (card_last4 IS NULL OR length(card_last4) = 4),
    entry_mode    TEXT,
    wallet        TEXT,
    voucher_no    TEXT,
    rrn           TEXT,
    auth_code     TEXT,
    batch_no      TEXT,
    cashier       TEXT,
    captured_at   INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sales_by_merchant ON sales (merchant_id, id);
CREATE INDEX sales_by_voucher ON sales (merchant_id, voucher_no, id);
CREATE INDEX sales_by_rrn ON sales (merchant_id, rrn, id);
CREATE INDEX sales_by_last4 ON sales (merchant_id, card_last4, id);
CREATE INDEX sales_by_amount ON sales (merchant_id, amount_minor, id);
CREATE INDEX sales_by_terminal ON sales (merchant_id, terminal_id, id);
CREATE INDEX sales_by_batch ON sales (merchant_id, terminal_id, batch_no);
CREATE INDEX sales_by_captured ON sales (merchant_id, captured_at, id);
CREATE INDEX sales_by_store ON sales (merchant_id, store_id, id);

CREATE TABLE sale_items (
    sale_id           TEXT NOT NULL REFERENCES sales(id),
    line_no           INTEGER NOT NULL,
    sku               TEXT NOT NULL,
    name              TEXT NOT NULL,
    quantity          INTEGER NOT NULL CHECK (quantity > 0),
    unit_amount_minor INTEGER NOT NULL CHECK (unit_amount_minor > 0),
    PRIMARY KEY (sale_id, line_no)
) WITHOUT ROWID;

CREATE TABLE batches (
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    terminal_id TEXT NOT NULL,
    batch_no    TEXT NOT NULL,
    settled_at  INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, terminal_id, batch_no)
) WITHOUT ROWID;

CREATE TABLE refunds (
    id                 TEXT PRIMARY KEY,
    merchant_id        TEXT NOT NULL REFERENCES merchants(id),
    sale_id            TEXT NOT NULL REFERENCES sales(id),
    type               TEXT NOT NULL CHECK (type IN ('void', 'refund')),
    status             TEXT NOT NULL,
    amount_minor       INTEGER NOT NULL CHECK (amount_minor > 0),
    currency           TEXT NOT NULL,
    reason             TEXT NOT NULL,
    note               TEXT,
    failure_reason     TEXT,
    acquirer_reference TEXT,
    attempts           INTEGER NOT NULL DEFAULT 0,
    requested_by       TEXT NOT NULL,
    policy_version     INTEGER NOT NULL,
    decision           TEXT NOT NULL,
    approval_expires_at INTEGER,
    decided_by         TEXT,
    decision_note      TEXT,
    stan               INTEGER,
    expected_arrival_at INTEGER,
    arrived_at         INTEGER,
    -- sealed (XChaCha20-Poly1305) JSON of the customer's email/phone/locale
    customer_contact   TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    completed_at       INTEGER
) WITHOUT ROWID;
-- every index a list filters on ends in id, so "newest first" needs no
-- sort and the planner never prefers walking all of a merchant's rows
-- status and amount ride along: what a sale's refunds hold is read for
-- every new refund, from the index alone
CREATE INDEX refunds_by_sale ON refunds (merchant_id, sale_id, id, status, amount_minor);
CREATE INDEX refunds_by_merchant ON refunds (merchant_id, id);
-- the dashboard adds up a period of refunds
CREATE INDEX refunds_by_created ON refunds (merchant_id, created_at);
CREATE INDEX refunds_by_status ON refunds (merchant_id, status, id);
CREATE INDEX refunds_by_requester ON refunds (merchant_id, requested_by, id);
-- only refunds waiting for a supervisor: the rest never change it
CREATE INDEX refunds_by_approval ON refunds (approval_expires_at) WHERE status = 'requires_approval';

CREATE TABLE refund_items (
    refund_id    TEXT NOT NULL REFERENCES refunds(id),
    sku          TEXT NOT NULL,
    quantity     INTEGER NOT NULL CHECK (quantity > 0),
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    PRIMARY KEY (refund_id, sku)
) WITHOUT ROWID;

CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    merchant_id TEXT,
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state = 'ready' OR state = 'running' OR state = 'done' OR state = 'dead'),
    attempts    INTEGER NOT NULL DEFAULT 0,
    run_after   INTEGER NOT NULL,
    lease_until INTEGER,
    last_error  TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
-- the runner claims among ready and running jobs, oldest first; done jobs,
-- nearly the whole table, are left out so a claim never walks past them
-- (ordered by id alone, a planner would rather walk the primary key)
CREATE INDEX outbox_due ON outbox (id) WHERE state IN ('ready', 'running');
-- operators list the dead jobs, newest first
CREATE INDEX outbox_dead ON outbox (id) WHERE state = 'dead';

CREATE TABLE idempotency_keys (
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    endpoint    TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    body        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, endpoint, key)
);
CREATE INDEX idempotency_by_age ON idempotency_keys (created_at);

CREATE TABLE audit_events (
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    seq         INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    source      TEXT NOT NULL,
    action      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    data        TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    PRIMARY KEY (merchant_id, seq)
) WITHOUT ROWID;
-- a record's timeline (sale, refund) without walking the whole chain
CREATE INDEX audit_events_by_subject ON audit_events (merchant_id, subject, seq);
-- the audit viewer filters by action and by time
CREATE INDEX audit_events_by_action ON audit_events (merchant_id, action, seq);
CREATE INDEX audit_events_by_time ON audit_events (merchant_id, at);

-- The newest link of each merchant's audit chain, written in the same
-- transaction as the event: removing the last events shows as a mismatch.
CREATE TABLE audit_heads (
    merchant_id TEXT PRIMARY KEY REFERENCES merchants(id),
    seq         INTEGER NOT NULL,
    hash        TEXT NOT NULL
) WITHOUT ROWID;

-- The terminal's system trace audit number (STAN, 流水号), one per message.
CREATE TABLE terminal_counters (
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    terminal_id TEXT NOT NULL,
    last_stan   INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, terminal_id)
) WITHOUT ROWID;

-- Every call to the acquirer about a refund: what was sent (masked), what
-- came back, how long it took.
CREATE TABLE acquirer_calls (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    refund_id     TEXT NOT NULL REFERENCES refunds(id),
    attempt       INTEGER NOT NULL,
    stan          INTEGER NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('submit', 'inquire')),
    processor     TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    duration_ms   INTEGER NOT NULL,
    outcome       TEXT NOT NULL CHECK (outcome = 'approved' OR outcome = 'declined' OR outcome = 'timeout'
                                 OR outcome = 'unavailable' OR outcome = 'not_received'),
    response_code TEXT,
    detail        TEXT NOT NULL
);
CREATE INDEX acquirer_calls_by_refund ON acquirer_calls (refund_id, id);

CREATE TABLE webhook_endpoints (
    id          TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,
    secret      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    disabled_at INTEGER
);
CREATE INDEX webhook_endpoints_by_merchant ON webhook_endpoints (merchant_id);

CREATE TABLE webhook_deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id  TEXT NOT NULL REFERENCES webhook_endpoints(id),
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    payload      TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    status_code  INTEGER,
    duration_ms  INTEGER NOT NULL,
    error        TEXT
);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id);

-- What each person (or key) holds in refunds per business day, kept in step
-- with every refund's status so the cashier's daily limit is one row away
-- instead of a sum over the day's refunds.
CREATE TABLE daily_refund_totals (
    merchant_id  TEXT NOT NULL REFERENCES merchants(id),
    requested_by TEXT NOT NULL,
    day          TEXT NOT NULL,
    held_minor   INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, requested_by, day)
) WITHOUT ROWID;

-- Chargebacks and retrieval requests (退单/拒付, 调单). The acquirer's case
-- number is unique per merchant, so importing a case twice is one case.
CREATE TABLE disputes (
    id           TEXT PRIMARY KEY,
    merchant_id  TEXT NOT NULL REFERENCES merchants(id),
    sale_id      TEXT NOT NULL REFERENCES sales(id),
    case_ref     TEXT NOT NULL,
    network      TEXT NOT NULL,
    reason_code  TEXT NOT NULL,
    category     TEXT,
    stage        TEXT NOT NULL,
    status       TEXT NOT NULL,
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    currency     TEXT NOT NULL,
    due_by       INTEGER NOT NULL,
    note         TEXT,
    opened_at    INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (merchant_id, case_ref)
);
CREATE INDEX disputes_by_sale ON disputes (merchant_id, sale_id, id);
CREATE INDEX disputes_by_merchant ON disputes (merchant_id, id);
CREATE INDEX disputes_by_deadline ON disputes (status, due_by);

-- Evidence on a case. The file's bytes live in the database beside the case,
-- so one backup holds both and no second store can drift from the first.
-- Listing reads dispute_evidence only; the bytes are read when downloaded.
CREATE TABLE dispute_evidence (
    id           TEXT PRIMARY KEY,
    merchant_id  TEXT NOT NULL REFERENCES merchants(id),
    dispute_id   TEXT NOT NULL REFERENCES disputes(id),
    kind         TEXT NOT NULL,
    note         TEXT,
    file_name    TEXT,
    content_type TEXT,
    size_bytes   INTEGER,
    sha256       TEXT,
    added_by     TEXT NOT NULL,
    added_at     INTEGER NOT NULL
);
CREATE INDEX dispute_evidence_by_case ON dispute_evidence (merchant_id, dispute_id, id);
CREATE TABLE dispute_evidence_files (
    evidence_id TEXT PRIMARY KEY REFERENCES dispute_evidence(id),
    bytes       BLOB NOT NULL
);

-- Notices sent once: a deadline reminder per case and threshold, a ratio
-- alert per month, programme and level. The primary key is the "once":
-- a second instance or a restart finds the row and sends nothing.
CREATE TABLE notices_sent (
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    subject     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    sent_at     INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, subject, kind)
);

-- What the wrong-charge detectors need of a sale beyond the sale itself:
-- the keyed HMAC of the card (never the card or the token it came from)
-- and the till's order reference.
CREATE TABLE sale_signals (
    sale_id          TEXT PRIMARY KEY REFERENCES sales(id),
    merchant_id      TEXT NOT NULL REFERENCES merchants(id),
    card_fingerprint TEXT,
    order_ref        TEXT,
    captured_at      INTEGER NOT NULL
);
CREATE INDEX sale_signals_by_card ON sale_signals (merchant_id, card_fingerprint, captured_at);

-- Correction cases (错收): a likely wrong charge, its evidence, cause and
-- responsible party, resolved by a refund made from the case or dismissed.
-- One case per sale and kind, so a detector run twice opens one case.
CREATE TABLE corrections (
    id                TEXT PRIMARY KEY,
    merchant_id       TEXT NOT NULL REFERENCES merchants(id),
    store_id          TEXT NOT NULL,
    sale_id           TEXT NOT NULL REFERENCES sales(id),
    kind              TEXT NOT NULL,
    evidence          TEXT NOT NULL,
    cause             TEXT NOT NULL,
    responsible_party TEXT,
    status            TEXT NOT NULL,
    refund_id         TEXT,
    resolution_note   TEXT,
    opened_by         TEXT NOT NULL,
    summary_zh        TEXT NOT NULL,
    summary_en        TEXT NOT NULL,
    opened_at         INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (merchant_id, sale_id, kind)
);
CREATE INDEX corrections_by_merchant ON corrections (merchant_id, id);
CREATE INDEX corrections_by_status ON corrections (merchant_id, status, id);
