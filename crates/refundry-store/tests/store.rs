//! The store on the backend of this test run (SQLite, or PostgreSQL when
//! REFUNDRY_TEST_DATABASE names one): group commit keeps each write's
//! all-or-nothing, data survives reopening, and outbox leases behave.

use std::sync::Arc;

use jiff::{Timestamp, ToSpan};
use refundry_core::ids::{MerchantId, StoreId};
use refundry_store::model::{Merchant, NewJob, StoreRecord};
use refundry_store::postgres::{PgOptions, PgStore};
use refundry_store::repo::KeyOrSale;
use refundry_store::sqlite::{SqliteOptions, SqliteStore};
use refundry_store::testing::{self, TestStore};
use refundry_store::{Store, StoreError, read, write};

fn merchant(name: &str) -> Merchant {
    Merchant { id: MerchantId::generate(), name: name.into(), created_at: refundry_store::time::now() }
}

fn open(dir: &tempfile::TempDir) -> TestStore {
    testing::open(dir.path())
}

/// A store of its own with one merchant in it, and the merchant's id. The
/// directory and the test store hold the database: keep them to the end.
async fn store_with_merchant(name: &str) -> (tempfile::TempDir, TestStore, Arc<dyn Store>, MerchantId) {
    let dir = tempfile::tempdir().unwrap();
    let t = open(&dir);
    let store = Arc::clone(&t.store);
    let m = merchant(name);
    let id = m.id;
    write(&store, move |tx| tx.insert_merchant(&m)).await.unwrap();
    (dir, t, store, id)
}

#[derive(Debug)]
enum E {
    Store(StoreError),
    Refused,
}

impl From<StoreError> for E {
    fn from(e: StoreError) -> E {
        E::Store(e)
    }
}

impl refundry_store::AsStoreError for E {
    fn as_store_error(&self) -> Option<&StoreError> {
        match self {
            E::Store(e) => Some(e),
            E::Refused => None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_in_a_group_commit_leaves_its_neighbours_intact() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(&dir);
    let store = Arc::clone(&t.store);
    let writes = (0..200).map(|i| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            write(&store, move |tx| {
                let m = merchant(&format!("m{i}"));
                // odd writes are refused: the first hundred after changing
                // something, which must vanish while even ones commit; the
                // rest after only a read (on PostgreSQL a batch of such
                // writes needs no savepoint each)
                if i % 2 == 1 && i >= 100 {
                    tx.all_merchants()?;
                    return Err(E::Refused);
                }
                tx.insert_merchant(&m)?;
                if i % 2 == 1 { Err(E::Refused) } else { Ok(m.id) }
            })
            .await
        })
    });
    let results = futures::future::join_all(writes).await;
    let kept: Vec<MerchantId> = results.into_iter().filter_map(|r| r.unwrap().ok()).collect();
    assert_eq!(kept.len(), 100);
    let stored = read(&store, |tx| tx.all_merchants()).await.unwrap();
    assert_eq!(stored.len(), 100);
    assert!(stored.iter().all(|m| kept.contains(&m.id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_panics_leaves_nothing_and_its_neighbours_commit() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(&dir);
    let store = Arc::clone(&t.store);
    let writes = (0..120).map(|i| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            write(&store, move |tx| {
                // a third panic before writing, a third after, a third commit
                if i % 3 == 0 {
                    panic!("before writing");
                }
                let m = merchant(&format!("p{i}"));
                tx.insert_merchant(&m)?;
                if i % 3 == 1 {
                    panic!("after writing");
                }
                Ok::<_, E>(m.id)
            })
            .await
        })
    });
    let results = futures::future::join_all(writes).await;
    let mut kept = Vec::new();
    for r in results {
        match r.unwrap() {
            Ok(id) => kept.push(id),
            Err(E::Store(StoreError::JobPanicked)) => {}
            Err(e) => panic!("unexpected answer {e:?}"),
        }
    }
    assert_eq!(kept.len(), 40);
    let stored = read(&store, |tx| tx.all_merchants()).await.unwrap();
    assert_eq!(stored.len(), 40, "a panicked write left a row");
    assert!(stored.iter().all(|m| kept.contains(&m.id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpointer_copies_commits_into_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.db");
    let store: Arc<dyn refundry_store::Store> = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    // one commit each: enough commits for the checkpointer to run
    for i in 0..200 {
        write(&store, move |tx| tx.insert_merchant(&merchant(&format!("c{i}")))).await.unwrap();
    }
    // the database file alone (no WAL beside it) holds them once copied
    let copy = dir.path().join("alone.db");
    let mut found = 0;
    for _ in 0..100 {
        std::fs::copy(&path, &copy).unwrap();
        // a copy taken while a checkpoint writes can be torn: look again
        let counted = rusqlite::Connection::open(&copy)
            .and_then(|conn| conn.query_row("SELECT count(*) FROM merchants", [], |r| r.get::<_, i64>(0)));
        if let Ok(n) = counted {
            found = n;
        }
        if found >= 150 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(found >= 150, "only {found} of 200 commits reached the database file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_starts_over_under_steady_writes_and_keeps_every_commit() {
    const WRITERS: usize = 16;
    const EACH: usize = 600;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("restart.db");
    let wal = dir.path().join("restart.db-wal");
    // a tiny restart size: the WAL must start over many times in this run
    let options = SqliteOptions { wal_restart_frames: 64, ..SqliteOptions::default() };
    let store: Arc<dyn refundry_store::Store> = Arc::new(SqliteStore::open(&path, options).unwrap());
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in 0..EACH {
                    write(&store, move |tx| tx.insert_merchant(&merchant(&format!("w{w}-{i}")))).await.unwrap();
                }
            })
        })
        .collect();
    // short reads back to back meanwhile, as API calls make them: each
    // holds a snapshot that a checkpoint must not copy past
    let reading = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (store, reading) = (Arc::clone(&store), Arc::clone(&reading));
            tokio::spawn(async move {
                while reading.load(std::sync::atomic::Ordering::Relaxed) {
                    read(&store, |tx| tx.first_merchant()).await.unwrap();
                }
            })
        })
        .collect();
    let mut largest = 0;
    while !writers.iter().all(|w| w.is_finished()) {
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    for w in writers {
        w.await.unwrap();
    }
    reading.store(false, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    // never started over, the WAL holds every commit's pages (10.6 MB when
    // the writer's part is taken out); starting over, it stayed under 1 MB
    assert!(largest < 4 * 1024 * 1024, "the WAL grew to {largest} bytes");
    drop(store);
    let store: Arc<dyn refundry_store::Store> = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    let stored = read(&store, |tx| tx.all_merchants()).await.unwrap();
    assert_eq!(stored.len(), WRITERS * EACH, "a commit was lost across the WAL's restarts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_error_rolls_back_only_that_write() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(&dir);
    let store = Arc::clone(&t.store);
    let m = merchant("dup");
    let first = m.clone();
    write(&store, move |tx| tx.insert_merchant(&first)).await.unwrap();
    let again = m.clone();
    let err = write(&store, move |tx| {
        tx.insert_merchant(&merchant("collateral"))?;
        tx.insert_merchant(&again)
    })
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Duplicate(_)), "{err:?}");
    assert_eq!(read(&store, |tx| tx.all_merchants()).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_data_survives_reopening_and_migrations_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let m = merchant("durable");
    let t = open(&dir);
    {
        let store = Arc::clone(&t.store);
        let m = m.clone();
        write(&store, move |tx| {
            tx.insert_merchant(&m)?;
            tx.insert_store(&StoreRecord {
                id: StoreId::generate(),
                merchant_id: m.id,
                name: "s".into(),
                created_at: m.created_at,
            })
        })
        .await
        .unwrap();
    }
    drop(t.store);
    let store: Arc<dyn Store> = match &t.scratch {
        Some(scratch) => {
            assert!(PgStore::migrate(&scratch.url).unwrap().is_empty());
            Arc::new(PgStore::open(&scratch.url, PgOptions::default()).unwrap())
        }
        None => {
            assert!(SqliteStore::migrate(dir.path().join("test.db")).unwrap().is_empty());
            Arc::new(SqliteStore::open(dir.path().join("test.db"), SqliteOptions::default()).unwrap())
        }
    };
    let found = read(&store, |tx| tx.first_merchant()).await.unwrap().unwrap();
    assert_eq!(found, m);
    assert_eq!(read(&store, move |tx| tx.stores_of(m.id)).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leased_job_is_taken_once_until_its_lease_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(&dir);
    let store = Arc::clone(&t.store);
    let now = Timestamp::now();
    write(&store, move |tx| {
        for i in 0..3 {
            tx.enqueue(&NewJob { merchant_id: None, kind: "k".into(), payload: format!("{i}"), run_after: now })?;
        }
        tx.enqueue(&NewJob { merchant_id: None, kind: "later".into(), payload: "x".into(), run_after: now + 1.hour() })
    })
    .await
    .unwrap();
    let lease = now + 30.seconds();
    let first = write(&store, move |tx| tx.claim_jobs(now, lease, 10)).await.unwrap();
    assert_eq!(first.iter().map(|j| j.payload.as_str()).collect::<Vec<_>>(), ["0", "1", "2"]);
    assert!(first.iter().all(|j| j.attempts == 1));
    let second = write(&store, move |tx| tx.claim_jobs(now, lease, 10)).await.unwrap();
    assert!(second.is_empty(), "leased jobs are not handed out twice");
    let done = first[0].id;
    write(&store, move |tx| tx.complete_job(done, now)).await.unwrap();
    // the runner holding jobs 1 and 2 died: after the lease they come back
    let later = now + 31.seconds();
    let retaken = write(&store, move |tx| tx.claim_jobs(later, later + 30.seconds(), 10)).await.unwrap();
    assert_eq!(retaken.iter().map(|j| (j.payload.as_str(), j.attempts)).collect::<Vec<_>>(), [("1", 2), ("2", 2)]);
    assert_eq!(read(&store, |tx| tx.unfinished_jobs()).await.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_write_queue_sheds_load_instead_of_waiting_forever() {
    let dir = tempfile::tempdir().unwrap();
    let t = testing::open_with(
        dir.path(),
        SqliteOptions { write_queue: 1, ..SqliteOptions::default() },
        PgOptions { write_queue: 1, writers: 1, ..PgOptions::default() },
    );
    let store = Arc::clone(&t.store);
    let writes = (0..64).map(|i| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { write(&store, move |tx| tx.insert_merchant(&merchant(&format!("{i}")))).await })
    });
    let results: Vec<_> = futures::future::join_all(writes).await.into_iter().map(|r| r.unwrap()).collect();
    let shed = results.iter().filter(|r| matches!(r, Err(StoreError::Overloaded))).count();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok + shed, 64);
    assert!(ok >= 1);
    assert_eq!(read(&store, |tx| tx.all_merchants()).await.unwrap().len(), ok);
}

/// Daily totals and audit events are applied as the batch commits: writes
/// in one batch still count each other's totals, a refused write's total
/// and events vanish with it, and the chain stays one unbroken line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_totals_and_audit_events_commit_with_their_write_or_not_at_all() {
    let (_dir, _t, store, mid) = store_with_merchant("busy").await;
    let writes = (0..60).map(|i| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            write(&store, move |tx| {
                let before = tx.daily_total(mid, "wang", "2030-01-02")?;
                tx.add_daily_total(mid, "wang", "2030-01-02", 100)?;
                tx.append_audit(refundry_store::model::AuditEvent {
                    merchant_id: mid,
                    seq: 0,
                    at: Timestamp::from_second(1_900_000_000 + i).unwrap(),
                    actor: "user:wang".into(),
                    source: "test".into(),
                    action: "refund.requested".into(),
                    subject: format!("w{i}"),
                    data: "{}".into(),
                    prev_hash: String::new(),
                    hash: String::new(),
                })?;
                // every third write is refused after queuing its changes
                if i % 3 == 2 { Err(E::Refused) } else { Ok(before) }
            })
            .await
        })
    });
    let results = futures::future::join_all(writes).await;
    let mut seen: Vec<i64> = results.into_iter().filter_map(|r| r.unwrap().ok()).collect();
    assert_eq!(seen.len(), 40);
    let total = read(&store, move |tx| tx.daily_total(mid, "wang", "2030-01-02")).await.unwrap();
    assert_eq!(total, 4000, "only the kept writes count");
    if testing::postgres_url().is_none() {
        // one writer: each write saw every write kept before it, batch or not
        seen.sort();
        assert_eq!(seen, (0..40).map(|n| n * 100).collect::<Vec<_>>());
    }
    let events = read(&store, move |tx| tx.audit_events(mid, 0, 100)).await.unwrap();
    assert_eq!(events.len(), 40);
    let mut prev = refundry_store::deferred::GENESIS_HASH.to_owned();
    for (n, e) in events.iter().enumerate() {
        assert_eq!(e.seq, n as i64 + 1);
        assert_eq!(e.prev_hash, prev);
        assert_eq!(refundry_store::deferred::event_hash(e), e.hash);
        assert_ne!(e.subject.trim_start_matches('w').parse::<i64>().unwrap() % 3, 2, "a refused write's event");
        prev = e.hash.clone();
    }
    let head = read(&store, move |tx| tx.audit_head(mid)).await.unwrap();
    assert_eq!(head, Some((40, prev)));
}

/// The two time-ranged reads whose indexes follow the order rows are
/// written in (block ranges on PostgreSQL, migration 0006): the audit
/// viewer's window holds exactly the events inside it, newest first, and
/// pruning removes exactly the keys older than the cutoff, whatever order
/// they were written in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_windows_and_pruning_take_exactly_the_rows_inside_them() {
    use refundry_store::model::{AuditEvent, AuditQuery, IdempotencyRecord};
    let (_dir, _t, store, mid) = store_with_merchant("windows").await;
    let base = 1_900_000_000;
    // written out of time order, so neither read can lean on row order
    let seconds: Vec<i64> = (0..300).map(|i| (i * 7919) % 300).collect();
    for chunk in seconds.chunks(50) {
        let chunk = chunk.to_vec();
        write(&store, move |tx| {
            for s in &chunk {
                let at = Timestamp::from_second(base + s).unwrap();
                tx.append_audit(AuditEvent {
                    merchant_id: mid,
                    seq: 0,
                    at,
                    actor: "user:wang".into(),
                    source: "test".into(),
                    action: "refund.requested".into(),
                    subject: format!("s{s}"),
                    data: "{}".into(),
                    prev_hash: String::new(),
                    hash: String::new(),
                })?;
                tx.insert_idempotency(&IdempotencyRecord {
                    merchant_id: mid,
                    endpoint: "POST /v1/refunds".into(),
                    key: format!("k{s}"),
                    fingerprint: "f".into(),
                    status_code: 201,
                    body: "{}".into(),
                    created_at: at,
                })?;
            }
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
    }

    let window = AuditQuery {
        from: Some(Timestamp::from_second(base + 100).unwrap()),
        to: Some(Timestamp::from_second(base + 150).unwrap()),
        limit: 500,
        ..AuditQuery::default()
    };
    let found = read(&store, move |tx| tx.search_audit(mid, &window)).await.unwrap();
    let mut inside: Vec<i64> = found.iter().map(|e| e.at.as_second() - base).collect();
    assert!(found.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
    inside.sort();
    assert_eq!(inside, (100..150).collect::<Vec<_>>(), "from is inclusive, to exclusive");

    let cutoff = Timestamp::from_second(base + 120).unwrap();
    let pruned = write(&store, move |tx| tx.prune_idempotency(cutoff)).await.unwrap();
    assert_eq!(pruned, 120);
    let left: Vec<bool> = read(&store, move |tx| {
        (0..300)
            .map(|s| Ok::<_, StoreError>(tx.find_idempotency(mid, "POST /v1/refunds", &format!("k{s}"))?.is_some()))
            .collect()
    })
    .await
    .unwrap();
    assert!(left[..120].iter().all(|kept| !kept), "a key older than the cutoff was kept");
    assert!(left[120..].iter().all(|kept| *kept), "a key at or after the cutoff was pruned");
}

/// The policy in force is read once a batch, and a write of one makes the
/// rest of the batch read it afresh: writes racing with new versions each
/// see the newest committed before them, and the version they just wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_reads_the_newest_policy_though_its_batch_reads_it_once() {
    use refundry_store::model::PolicyRecord;

    let dir = tempfile::tempdir().unwrap();
    let t = open(&dir);
    let store = Arc::clone(&t.store);
    let m = merchant("policies");
    let (mid, sid) = (m.id, StoreId::generate());
    write(&store, move |tx| {
        tx.insert_merchant(&m)?;
        tx.insert_store(&StoreRecord { id: sid, merchant_id: mid, name: "s".into(), created_at: Timestamp::now() })
    })
    .await
    .unwrap();
    let writes = (0..60).map(|i| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            write(&store, move |tx| {
                let version = |p: Option<PolicyRecord>| p.map_or(0, |p| p.version);
                let seen = version(tx.current_policy(mid, Some(sid))?);
                let latest = tx.latest_policy_version(mid)?;
                if i % 4 == 0 {
                    tx.insert_policy(&PolicyRecord {
                        merchant_id: mid,
                        version: latest + 1,
                        store_id: None,
                        body: "{}".into(),
                        created_by: "user:wang".into(),
                        created_at: Timestamp::now(),
                    })?;
                    let own = version(tx.current_policy(mid, Some(sid))?);
                    assert_eq!(own, latest + 1, "a write reads the policy it wrote");
                }
                // every fifth write is refused after it wrote: its policy is
                // gone, and so is anything it made the batch keep
                if i % 5 == 4 { Err(E::Refused) } else { Ok((seen, latest)) }
            })
            .await
        })
    });
    let results = futures::future::join_all(writes).await;
    let seen: Vec<(i64, i64)> = results.into_iter().filter_map(|r| r.unwrap().ok()).collect();
    assert_eq!(seen.len(), 48);
    if testing::postgres_url().is_none() {
        // one writer: the batch's copy is never behind the table
        assert!(seen.iter().all(|(seen, latest)| seen == latest), "{seen:?}");
    }
    let kept = (0..60).filter(|i| i % 4 == 0 && i % 5 != 4).count() as i64;
    let last = read(&store, move |tx| tx.current_policy(mid, Some(sid))).await.unwrap().unwrap();
    assert_eq!(last.version, kept);
}

/// Writes racing to store the same idempotency key: exactly one stores it
/// and every other finds that one's record, whether it was stored in the
/// same batch (and is still queued, on PostgreSQL) or committed by another
/// writer; writes of other keys beside them all commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writes_store_a_key_once_and_the_rest_find_it() {
    use refundry_store::model::IdempotencyRecord;
    let (_dir, _t, store, mid) = store_with_merchant("keys").await;
    let writes = (0..192).map(|i| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            // two of every three race for one key; the third has its own
            let key = if i % 3 == 2 { format!("own-{i}") } else { "shared".to_owned() };
            write(&store, move |tx| {
                if let Some(found) = tx.find_idempotency(mid, "POST /v1/refunds", &key)? {
                    return Ok::<_, StoreError>((false, key.clone(), found.body));
                }
                tx.insert_idempotency(&IdempotencyRecord {
                    merchant_id: mid,
                    endpoint: "POST /v1/refunds".into(),
                    key: key.clone(),
                    fingerprint: "f".into(),
                    status_code: 201,
                    body: format!("answer {i}"),
                    created_at: refundry_store::time::now(),
                })?;
                // a write reads back the record it stored
                let mine = tx.find_idempotency(mid, "POST /v1/refunds", &key)?.map(|r| r.body);
                assert_eq!(mine.as_deref(), Some(format!("answer {i}").as_str()));
                Ok((true, key.clone(), format!("answer {i}")))
            })
            .await
        })
    });
    let results: Vec<(bool, String, String)> =
        futures::future::join_all(writes).await.into_iter().map(|r| r.unwrap().unwrap()).collect();
    let shared: Vec<&(bool, String, String)> = results.iter().filter(|(_, key, _)| key == "shared").collect();
    let stored: Vec<&String> = shared.iter().filter(|(stored, ..)| *stored).map(|(_, _, body)| body).collect();
    assert_eq!(stored.len(), 1, "the shared key was stored by {stored:?}");
    assert!(shared.iter().all(|(_, _, body)| body == stored[0]), "{shared:?}");
    assert!(results.iter().filter(|(_, key, _)| key != "shared").all(|(stored, ..)| *stored));
    let on_disk = read(&store, move |tx| tx.find_idempotency(mid, "POST /v1/refunds", "shared")).await.unwrap();
    assert_eq!(on_disk.map(|r| r.body).as_ref(), Some(stored[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_is_claimed_once_even_by_writers_racing_for_it() {
    let (_dir, _t, store, id) = store_with_merchant("notices").await;
    let now = refundry_store::time::now();
    let claims = (0..20).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            write(&store, move |tx| tx.claim_notice(id, "dp_case", "deadline_reminder_3d", now)).await.unwrap()
        })
    });
    let won: Vec<bool> = futures::future::join_all(claims).await.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    let other = write(&store, move |tx| tx.claim_notice(id, "dp_case", "deadline_reminder_1d", now)).await.unwrap();
    assert!(other, "another kind about the same subject is its own notice");
}

#[tokio::test]
async fn a_merchants_keys_are_listed_oldest_first_and_no_one_elses() {
    use refundry_core::ids::KeyId;
    use refundry_store::model::ApiKeyRecord;
    let dir = tempfile::tempdir().unwrap();
    let t = open(&dir);
    let (ours, theirs) = (merchant("ours"), merchant("theirs"));
    let key = |m: &Merchant, name: &str, terminal: Option<&str>| ApiKeyRecord {
        id: KeyId::generate(),
        merchant_id: m.id,
        name: name.into(),
        secret_sha256: [7; 32],
        scopes: vec!["sales:write".into(), "refunds:write".into()],
        store_id: None,
        terminal_id: terminal.map(str::to_owned),
        created_at: "2030-01-02T03:04:05Z".parse().unwrap(),
        revoked_at: None,
    };
    let keys = [key(&ours, "till 1", Some("T0001")), key(&theirs, "other", None), key(&ours, "till 2", None)];
    let (a, c) = (keys[0].clone(), keys[2].clone());
    write(&t.store, move |tx| {
        tx.insert_merchant(&ours)?;
        tx.insert_merchant(&theirs)?;
        keys.iter().try_for_each(|k| tx.insert_key(k))?;
        Ok::<_, StoreError>(())
    })
    .await
    .unwrap();
    let merchant_id = a.merchant_id;
    let listed = read(&t.store, move |tx| tx.keys_of(merchant_id)).await.unwrap();
    assert_eq!(listed, vec![a, c]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_looks_only_at_due_jobs_however_many_are_done() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(&dir);
    let store = Arc::clone(&t.store);
    let now = Timestamp::now();
    let lease = now + 30.seconds();
    write(&store, move |tx| {
        for i in 0..2_000 {
            tx.enqueue(&NewJob { merchant_id: None, kind: "k".into(), payload: format!("{i}"), run_after: now })?;
        }
        for job in tx.claim_jobs(now, lease, 2_000)? {
            tx.complete_job(job.id, now)?;
        }
        tx.enqueue(&NewJob { merchant_id: None, kind: "k".into(), payload: "due".into(), run_after: now })
    })
    .await
    .unwrap();
    let due = write(&store, move |tx| tx.claim_jobs(now, lease, 128)).await.unwrap();
    assert_eq!(due.iter().map(|j| j.payload.as_str()).collect::<Vec<_>>(), ["due"]);

    // the claim's plan: through the index of due jobs, never walking the
    // 2,000 done ones by primary key
    let claim = "SELECT id FROM outbox WHERE state IN ('ready', 'running')
        AND ((state = 'ready' AND run_after <= 0) OR (state = 'running' AND lease_until <= 0)) ORDER BY id LIMIT 128";
    let plan = match &t.scratch {
        Some(scratch) => on_postgres(scratch, move |client| {
            client.batch_execute("ANALYZE outbox").unwrap();
            let rows = client.query(&format!("EXPLAIN {claim}"), &[]).unwrap();
            rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>().join("\n")
        }),
        None => {
            let conn = rusqlite::Connection::open(dir.path().join("test.db")).unwrap();
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {claim}")).unwrap();
            let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
            rows.collect::<Result<Vec<_>, _>>().unwrap().join("\n")
        }
    };
    assert!(plan.contains("outbox_due"), "the claim should use outbox_due:\n{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "the due jobs come in id order:\n{plan}");
}

/// A burst of reads takes turns on the pool's connections instead of
/// opening a connection per read that the pool would then throw away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_reads_runs_no_more_at_once_than_the_pool_keeps() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let readers = 3;
    let t = testing::open_with(
        dir.path(),
        SqliteOptions { readers, ..SqliteOptions::default() },
        PgOptions { readers, writers: 1, ..PgOptions::default() },
    );
    let store = Arc::clone(&t.store);
    write(&store, |tx| tx.insert_merchant(&merchant("one"))).await.unwrap();
    let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let reads = (0..32).map(|_| {
        let (store, running, most) = (Arc::clone(&store), Arc::clone(&running), Arc::clone(&most));
        tokio::spawn(async move {
            read(&store, move |tx| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(10));
                let seen = tx.all_merchants();
                running.fetch_sub(1, Ordering::SeqCst);
                seen
            })
            .await
        })
    });
    for answer in futures::future::join_all(reads).await {
        assert_eq!(answer.unwrap().unwrap().len(), 1, "every read answered");
    }
    let most = most.load(Ordering::SeqCst);
    assert!(most <= readers, "{most} reads ran at once with {readers} connections");
    assert!(most > 1, "reads still run side by side");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stan_runs_reserved_at_once_never_overlap_and_skip_to_one_at_the_wrap() {
    let (_dir, _t, store, id) = store_with_merchant("stans").await;
    let reservations = (0..24).map(|i| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { write(&store, move |tx| tx.reserve_stans(id, "T1", 1 + i % 5 * 50)).await.unwrap() })
    });
    let mut runs: Vec<_> = futures::future::join_all(reservations).await.into_iter().map(|r| r.unwrap()).collect();
    runs.sort_by_key(|r| *r.start());
    assert_eq!(*runs[0].start(), 1, "a terminal counts from 1");
    for pair in runs.windows(2) {
        assert_eq!(*pair[1].start(), pair[0].end() + 1, "runs follow each other without overlap: {pair:?}");
    }
    let other = write(&store, move |tx| tx.reserve_stans(id, "T2", 3)).await.unwrap();
    assert_eq!(other, 1..=3, "each terminal has its own counter");
    // close to the end: a run that would pass 999999 starts again at 1
    let last = *runs.last().unwrap().end();
    let near_end = write(&store, move |tx| tx.reserve_stans(id, "T1", 999_990 - last)).await.unwrap();
    assert_eq!(near_end, last + 1..=999_990);
    assert_eq!(write(&store, move |tx| tx.reserve_stans(id, "T1", 9)).await.unwrap(), 999_991..=999_999);
    assert_eq!(write(&store, move |tx| tx.reserve_stans(id, "T1", 2)).await.unwrap(), 1..=2);
    assert_eq!(write(&store, move |tx| tx.reserve_stans(id, "T1", 5)).await.unwrap(), 3..=7);
    let skipped = write(&store, move |tx| tx.reserve_stans(id, "T1", 999_995)).await.unwrap();
    assert_eq!(skipped, 1..=999_995, "8 to 999999 would pass the end: they are skipped");
}

/// Runs SQL on a direct connection to the test's PostgreSQL schema, off
/// the async threads (the client drives its own runtime).
fn on_postgres<T: Send + 'static>(
    scratch: &testing::Scratch,
    f: impl FnOnce(&mut postgres::Client) -> T + Send + 'static,
) -> T {
    let mut client = scratch.client();
    std::thread::spawn(move || f(&mut client)).join().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_commit_went_unanswered_runs_again_if_it_did_not_take_effect() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(&dir);
    // PostgreSQL only: SQLite commits in the process, with no answer to lose
    let Some(scratch) = &t.scratch else { return };
    // the first merchant so named makes its backend kill itself while
    // committing: the writer's COMMIT gets no answer, and nothing took effect
    on_postgres(scratch, |c| {
        c.batch_execute(
            "CREATE SEQUENCE dies_once;
             CREATE FUNCTION die_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF nextval('dies_once') = 1 THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;
                 RETURN NULL;
             END $$;
             CREATE CONSTRAINT TRIGGER die_at_commit AFTER INSERT ON merchants DEFERRABLE INITIALLY DEFERRED
                 FOR EACH ROW WHEN (NEW.name = 'dies at commit') EXECUTE FUNCTION die_at_commit();",
        )
        .unwrap()
    });
    let m = merchant("dies at commit");
    let id = m.id.to_string();
    let made = write(&t.store, move |tx| tx.insert_merchant(&m)).await;
    assert!(made.is_ok(), "the write ran again once its transaction was known to be rolled back: {made:?}");
    let (tries, rows) = on_postgres(scratch, move |c| {
        let tries: i64 = c.query_one("SELECT last_value FROM dies_once", &[]).unwrap().get(0);
        let rows: i64 = c.query_one("SELECT count(*) FROM merchants WHERE id = $1", &[&id]).unwrap().get(0);
        (tries, rows)
    });
    assert_eq!(tries, 2, "the write's first commit was the one cut off");
    assert_eq!(rows, 1, "made once");
}

/// A cash sale of 10,000.00 yuan at terminal T1 of `store`.
fn cash_sale(
    merchant: MerchantId,
    store: StoreId,
    items: Vec<refundry_core::sale::LineItem>,
) -> refundry_store::model::Sale {
    use refundry_core::money::{Currency, Money};
    let now = refundry_store::time::now();
    refundry_store::model::Sale {
        id: refundry_core::ids::SaleId::generate(),
        merchant_id: merchant,
        store_id: store,
        terminal_id: "T1".into(),
        amount: Money::new(1_000_000, Currency::CNY),
        payment_method: refundry_core::sale::PaymentMethod::Cash,
        voucher_no: None,
        rrn: None,
        auth_code: None,
        batch_no: None,
        captured_at: now,
        created_at: now,
        items,
        cashier: None,
    }
}

/// A refund of part of `sale`, as written before it is sent.
fn refund_of(
    sale: &refundry_store::model::Sale,
    status: refundry_core::refund::RefundStatus,
    amount_minor: i64,
    items: Vec<refundry_core::refund::PlannedItem>,
) -> refundry_store::model::Refund {
    use refundry_core::refund::{RefundReason, RefundType};
    let now = refundry_store::time::now();
    refundry_store::model::Refund {
        id: refundry_core::ids::RefundId::generate(),
        merchant_id: sale.merchant_id,
        sale_id: sale.id,
        refund_type: RefundType::Refund,
        status,
        amount: refundry_core::money::Money::new(amount_minor, sale.amount.currency),
        reason: RefundReason::CustomerRequest,
        note: None,
        items,
        failure_reason: None,
        acquirer_reference: None,
        attempts: 0,
        requested_by: "user:wang".into(),
        policy_version: 0,
        decision: "{}".into(),
        approval_expires_at: None,
        decided_by: None,
        decision_note: None,
        stan: None,
        expected_arrival_at: None,
        arrived_at: None,
        customer_contact: None,
        created_at: now,
        updated_at: now,
        completed_at: None,
    }
}

/// A chargeback of `amount_minor` on `sale`, waiting for the merchant.
fn dispute_of(
    sale: &refundry_store::model::Sale,
    case_ref: &str,
    amount_minor: i64,
) -> refundry_store::model::DisputeRecord {
    let now = refundry_store::time::now();
    refundry_store::model::DisputeRecord {
        id: refundry_core::ids::DisputeId::generate(),
        merchant_id: sale.merchant_id,
        sale_id: sale.id,
        case_ref: case_ref.into(),
        network: "cup".into(),
        reason_code: "4514".into(),
        category: Some("fraud".into()),
        stage: "chargeback".into(),
        status: "needs_response".into(),
        amount: refundry_core::money::Money::new(amount_minor, sale.amount.currency),
        due_by: now,
        note: None,
        opened_at: now,
        updated_at: now,
    }
}

/// The merchant, its store with terminal T1, and `sales` there.
async fn seed_sales(store: &Arc<dyn Store>, m: Merchant, sid: StoreId, sales: Vec<refundry_store::model::Sale>) {
    let now = refundry_store::time::now();
    let mid = m.id;
    write(store, move |tx| {
        tx.insert_merchant(&m)?;
        tx.insert_store(&StoreRecord { id: sid, merchant_id: mid, name: "s".into(), created_at: now })?;
        let terminal = refundry_store::model::Terminal {
            merchant_id: mid,
            terminal_id: "T1".into(),
            store_id: sid,
            created_at: now,
        };
        tx.insert_terminal(&terminal)?;
        sales.iter().try_for_each(|s| tx.insert_sale(s))
    })
    .await
    .unwrap();
}

/// Acquirer calls are written with their batch's commit: a write reads
/// back the calls it made, a refused write leaves none, and they read back
/// in the order they were made, across writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquirer_calls_are_kept_with_their_write_and_read_back_in_order() {
    use refundry_core::refund::RefundStatus;
    use refundry_store::model::AcquirerCall;
    let dir = tempfile::tempdir().unwrap();
    let t = open(&dir);
    let store = Arc::clone(&t.store);
    let m = merchant("calls");
    let sale = cash_sale(m.id, StoreId::generate(), Vec::new());
    let sid = sale.store_id;
    seed_sales(&store, m, sid, vec![sale.clone()]).await;
    let refund = refund_of(&sale, RefundStatus::Processing, 100, Vec::new());
    let id = refund.id;
    let call = move |attempt: u32, kind: &str, outcome: &str| AcquirerCall {
        refund_id: id,
        attempt,
        stan: 40 + attempt,
        kind: kind.into(),
        processor: "sandbox".into(),
        started_at: refundry_store::time::now(),
        duration_ms: 12,
        outcome: outcome.into(),
        response_code: None,
        detail: format!("{kind} {attempt}"),
    };
    let seen = write(&store, move |tx| {
        tx.insert_refund(&refund)?;
        tx.record_call(&call(1, "submit", "timeout"))?;
        tx.record_call(&call(1, "inquire", "approved"))?;
        Ok::<_, E>(tx.calls_of(id)?.len())
    })
    .await
    .unwrap();
    assert_eq!(seen, 2, "a write sees the calls it recorded");
    let refused = write(&store, move |tx| {
        tx.record_call(&call(2, "submit", "declined"))?;
        Err::<(), E>(E::Refused)
    })
    .await;
    assert!(matches!(refused, Err(E::Refused)));
    write(&store, move |tx| tx.record_call(&call(3, "submit", "approved"))).await.unwrap();
    let calls = read(&store, move |tx| tx.calls_of(id)).await.unwrap();
    let details: Vec<&str> = calls.iter().map(|c| c.detail.as_str()).collect();
    assert_eq!(details, ["submit 1", "inquire 1", "submit 3"], "the refused write's call is not kept");
    assert_eq!(calls[0], AcquirerCall { started_at: calls[0].started_at, ..call(1, "submit", "timeout") });
}

/// What a sale's refunds hold is summed as refunds are written (by the
/// insert itself on SQLite, by a trigger on PostgreSQL) and moved between
/// statuses (by a trigger). After a long random run of both, on a sale
/// of items and one without, the sums read are those of the refund rows
/// themselves, status by status and SKU by SKU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sales_holdings_stay_the_sum_of_its_refunds_through_inserts_and_moves() {
    use refundry_core::refund::{ItemQuantity, PlannedItem, PriorRefund, RefundStatus};
    use refundry_core::sale::LineItem;
    use refundry_store::model::Refund;

    const STATUSES: [RefundStatus; 8] = [
        RefundStatus::RequiresApproval,
        RefundStatus::Pending,
        RefundStatus::Processing,
        RefundStatus::Succeeded,
        RefundStatus::Failed,
        RefundStatus::Rejected,
        RefundStatus::Expired,
        RefundStatus::Canceled,
    ];
    let dir = tempfile::tempdir().unwrap();
    let t = open(&dir);
    let store = Arc::clone(&t.store);
    let m = merchant("holdings");
    let (mid, sid) = (m.id, StoreId::generate());
    let line = |sku: &str| LineItem { sku: sku.into(), name: sku.into(), quantity: 1000, unit_amount_minor: 1 };
    let plain = cash_sale(mid, sid, Vec::new());
    let itemised = cash_sale(mid, sid, vec![line("tea"), line("cup"), line("pot")]);
    seed_sales(&store, m, sid, vec![plain.clone(), itemised.clone()]).await;
    // disputes are read with the holdings: the plain sale has two, the
    // other none
    let disputes = vec![dispute_of(&plain, "CB-1", 300), dispute_of(&plain, "CB-2", 200)];
    let seeded = disputes.clone();
    write(&store, move |tx| seeded.iter().try_for_each(|d| tx.insert_dispute(d))).await.unwrap();

    // a small deterministic generator: the run is the same every time
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    let mut written: Vec<Refund> = Vec::new();
    for round in 0..40 {
        let mut changes = Vec::new();
        for _ in 0..8 {
            if written.is_empty() || next(3) > 0 {
                let on = if next(2) == 0 { &plain } else { &itemised };
                let items: Vec<PlannedItem> = if on.items.is_empty() {
                    Vec::new()
                } else {
                    let mut items = Vec::new();
                    for i in &on.items {
                        if next(2) == 0 {
                            items.push(PlannedItem {
                                sku: i.sku.clone(),
                                quantity: 1 + next(3) as u32,
                                amount_minor: 1,
                            });
                        }
                    }
                    items
                };
                let refund = refund_of(on, STATUSES[next(8) as usize], 1 + next(500) as i64, items);
                written.push(refund.clone());
                changes.push((true, refund));
            } else {
                let at = next(written.len() as u64) as usize;
                written[at].status = STATUSES[next(8) as usize];
                written[at].attempts += 1;
                changes.push((false, written[at].clone()));
            }
        }
        // the same refund inserted and moved in one transaction, too
        write(&store, move |tx| {
            changes.iter().try_for_each(|(new, r)| if *new { tx.insert_refund(r) } else { tx.update_refund(r) })
        })
        .await
        .unwrap();
        for on in [&plain, &itemised] {
            let mut expected: Vec<PriorRefund> = Vec::new();
            for r in written.iter().filter(|r| r.sale_id == on.id) {
                let at = match expected.iter().position(|p| p.status == r.status) {
                    Some(at) => at,
                    None => {
                        expected.push(PriorRefund { amount_minor: 0, status: r.status, items: Vec::new() });
                        expected.len() - 1
                    }
                };
                expected[at].amount_minor += r.amount.minor;
                for item in &r.items {
                    match expected[at].items.iter_mut().find(|i| i.sku == item.sku) {
                        Some(i) => i.quantity += item.quantity,
                        None => {
                            expected[at].items.push(ItemQuantity { sku: item.sku.clone(), quantity: item.quantity })
                        }
                    }
                }
            }
            expected.sort_by_key(|p| p.status.as_str());
            expected.iter_mut().for_each(|p| p.items.sort_by(|a, b| a.sku.cmp(&b.sku)));
            let on = on.clone();
            let disputes_of_on: Vec<_> = disputes.iter().filter(|d| d.sale_id == on.id).cloned().collect();
            let (sale_id, read_on) = (on.id, on.clone());
            let (held, disputes_held) = read(&store, move |tx| tx.holdings_and_disputes(&read_on)).await.unwrap();
            assert_eq!(held, expected, "round {round}");
            assert_eq!(disputes_held, disputes_of_on, "round {round}");
            // the same, read with the sale's lock as a new refund reads it,
            // and with the lookup of a key never used beside the lock
            let (locked, keyed) = write(&store, move |tx| {
                let locked = tx.lock_sale_with_holdings(mid, sale_id)?;
                Ok::<_, StoreError>((locked, tx.find_key_or_lock_sale(mid, KEYED, "never-used", sale_id)?))
            })
            .await
            .unwrap();
            let KeyOrSale::New(Some(keyed)) = keyed else {
                panic!("round {round}: a new key reads the sale: {keyed:?}")
            };
            assert_eq!(Some(&keyed), locked.as_ref(), "round {round}, with the key");
            let (locked, (held, disputes_held)) = keyed;
            assert_eq!(locked, on, "round {round}");
            assert_eq!(held, expected, "round {round}, with the lock");
            assert_eq!(disputes_held, disputes_of_on, "round {round}, with the lock");
        }
    }

    // the sums follow a refund's sale and amount as written: changing
    // either afterwards is refused rather than leaving the sums wrong
    let first = written[0].id.to_string();
    let changed =
        on_backend_sql(&t, &dir, &format!("UPDATE refunds SET amount_minor = amount_minor + 1 WHERE id = '{first}'"));
    assert!(changed.is_err(), "changing a written refund's amount must be refused");
}

/// A write sees the refunds made before it in its batch, its own among
/// them: on PostgreSQL new refunds wait in the batch's queue until it
/// commits, a sale's holdings add what is queued, and a read that could
/// miss a queued refund makes the batch run again with savepoints, where
/// nothing waits.
/// Each write holds the sale, so the writes take turns and each must count
/// every refund before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_sees_the_refunds_made_before_it_in_its_batch() {
    use refundry_core::refund::RefundStatus;
    let dir = tempfile::tempdir().unwrap();
    let t = open(&dir);
    let store = Arc::clone(&t.store);
    let m = merchant("queued");
    let (mid, sid) = (m.id, StoreId::generate());
    let sale = cash_sale(mid, sid, Vec::new());
    seed_sales(&store, m, sid, vec![sale.clone()]).await;
    let held = |holdings: &[refundry_core::refund::PriorRefund]| holdings.iter().map(|p| p.amount_minor).sum::<i64>();
    let writes = (0..48).map(|_| {
        let (store, sale) = (Arc::clone(&store), sale.clone());
        tokio::spawn(async move {
            write(&store, move |tx| {
                tx.lock_sale(mid, sale.id)?.expect("the sale");
                let before = tx.refunds_of_sale(mid, sale.id)?.len();
                assert_eq!(held(&tx.holdings_and_disputes(&sale)?.0), before as i64);
                let refund = refund_of(&sale, RefundStatus::Succeeded, 1, Vec::new());
                tx.insert_refund(&refund)?;
                assert_eq!(held(&tx.holdings_and_disputes(&sale)?.0), before as i64 + 1, "holdings with the new one");
                let found = tx.find_refund(mid, refund.id)?;
                assert_eq!(found.map(|r| r.id), Some(refund.id), "a write reads back its own refund");
                assert_eq!(tx.refunds_of_sale(mid, sale.id)?.len(), before + 1);
                Ok::<_, StoreError>(before)
            })
            .await
        })
    });
    let mut seen: Vec<usize> =
        futures::future::join_all(writes).await.into_iter().map(|r| r.unwrap().unwrap()).collect();
    seen.sort();
    assert_eq!(seen, (0..48).collect::<Vec<_>>(), "each write counted every refund made before it");
    let (holdings, _) = read(&store, move |tx| tx.holdings_and_disputes(&sale)).await.unwrap();
    assert_eq!(held(&holdings), 48);
}

/// Runs one statement on the test's database behind the store's back.
fn on_backend_sql(t: &TestStore, dir: &tempfile::TempDir, sql: &str) -> Result<(), String> {
    match &t.scratch {
        Some(scratch) => {
            let mut client = scratch.client();
            let sql = sql.to_owned();
            std::thread::spawn(move || client.batch_execute(&sql).map_err(|e| e.to_string())).join().unwrap()
        }
        None => {
            let conn = rusqlite::Connection::open(dir.path().join("test.db")).map_err(|e| e.to_string())?;
            conn.execute_batch(sql).map_err(|e| e.to_string())
        }
    }
}

/// A second instance on the same PostgreSQL schema locks the sale, runs
/// `work` and commits 400 ms later; answers once the lock is held, with
/// the holder's task to wait for.
async fn held_elsewhere(
    scratch: &testing::Scratch,
    merchant: MerchantId,
    sale: refundry_core::ids::SaleId,
    work: impl Fn(&mut dyn refundry_store::Tx) -> Result<(), StoreError> + Send + 'static,
) -> tokio::task::JoinHandle<Result<(), StoreError>> {
    let other: Arc<dyn Store> = Arc::new(PgStore::open(&scratch.url, PgOptions::default()).unwrap());
    let (locked, held_now) = tokio::sync::oneshot::channel();
    let mut locked = Some(locked);
    let holder = tokio::spawn(async move {
        write(&other, move |tx| {
            tx.lock_sale(merchant, sale)?.expect("the sale");
            work(tx)?;
            // a job may run again: only its first run tells
            if let Some(locked) = locked.take() {
                locked.send(()).expect("the test waits for the lock");
            }
            std::thread::sleep(std::time::Duration::from_millis(400));
            Ok::<_, StoreError>(())
        })
        .await
    });
    held_now.await.unwrap();
    holder
}

/// On PostgreSQL a new refund sends the lock of its sale and the read of
/// what holds part of it together. A refund that another instance commits
/// while the lock waits must be counted: the holdings are read once the
/// lock is held, not when they reached the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holdings_read_with_the_lock_count_a_refund_committed_while_it_waited() {
    use refundry_core::refund::RefundStatus;
    let dir = tempfile::tempdir().unwrap();
    let t = open(&dir);
    // SQLite has one writer: there is no lock to wait for
    let Some(scratch) = &t.scratch else { return };
    let store = Arc::clone(&t.store);
    let m = merchant("waits");
    let (mid, sid) = (m.id, StoreId::generate());
    let sale = cash_sale(mid, sid, Vec::new());
    seed_sales(&store, m, sid, vec![sale.clone()]).await;

    // the other instance holds the sale while it makes a refund of 250,
    // and commits only after the statement below has begun waiting
    let refund = refund_of(&sale, RefundStatus::Succeeded, 250, Vec::new());
    let holder = held_elsewhere(scratch, mid, sale.id, move |tx| tx.insert_refund(&refund)).await;
    let (_, (held, _)) =
        write(&store, move |tx| tx.lock_sale_with_holdings(mid, sale.id)).await.unwrap().expect("the sale");
    holder.await.unwrap().unwrap();
    assert_eq!(held.iter().map(|p| p.amount_minor).sum::<i64>(), 250, "the refund committed while waiting counts");
}

/// The endpoint the keys of these tests are stored under.
const KEYED: &str = "POST /v1/refunds";

fn key_record(merchant: MerchantId, key: &str, body: &str) -> refundry_store::model::IdempotencyRecord {
    refundry_store::model::IdempotencyRecord {
        merchant_id: merchant,
        endpoint: KEYED.into(),
        key: key.into(),
        fingerprint: format!("fingerprint of {body}"),
        status_code: 201,
        body: body.into(),
        created_at: refundry_store::time::now(),
    }
}

/// A used key is answered with its record whatever sale the request names,
/// whether it was committed or stored earlier in the same write (queued
/// with its batch, on PostgreSQL); a new key reads the sale, or finds none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refunds_key_is_answered_before_its_sale_and_a_new_key_reads_the_sale() {
    use refundry_core::ids::SaleId;
    let dir = tempfile::tempdir().unwrap();
    let t = open(&dir);
    let store = Arc::clone(&t.store);
    let m = merchant("keyed");
    let (mid, sid) = (m.id, StoreId::generate());
    let sale = cash_sale(mid, sid, Vec::new());
    seed_sales(&store, m, sid, vec![sale.clone()]).await;
    let stored = key_record(mid, "k-used", "the first answer");
    let kept = stored.clone();
    write(&store, move |tx| tx.insert_idempotency(&kept)).await.unwrap();

    let (sale_id, unknown) = (sale.id, SaleId::generate());
    let (on_sale, on_unknown, fresh, no_sale, same_write) = write(&store, move |tx| {
        let on_sale = tx.find_key_or_lock_sale(mid, KEYED, "k-used", sale_id)?;
        let on_unknown = tx.find_key_or_lock_sale(mid, KEYED, "k-used", unknown)?;
        let fresh = tx.find_key_or_lock_sale(mid, KEYED, "k-new", sale_id)?;
        let no_sale = tx.find_key_or_lock_sale(mid, KEYED, "k-new", unknown)?;
        tx.insert_idempotency(&key_record(mid, "k-now", "this write's answer"))?;
        let same_write = tx.find_key_or_lock_sale(mid, KEYED, "k-now", sale_id)?;
        Ok::<_, StoreError>((on_sale, on_unknown, fresh, no_sale, same_write))
    })
    .await
    .unwrap();
    for used in [on_sale, on_unknown] {
        let KeyOrSale::Used(found) = used else { panic!("a used key is answered: {used:?}") };
        assert_eq!(
            (found.fingerprint.as_str(), found.body.as_str()),
            (stored.fingerprint.as_str(), "the first answer")
        );
        assert_eq!((found.status_code, found.endpoint.as_str(), found.key.as_str()), (201, KEYED, "k-used"));
    }
    let KeyOrSale::New(Some((read, (held, disputes)))) = fresh else { panic!("a new key reads the sale: {fresh:?}") };
    assert_eq!(read, sale);
    assert!(held.is_empty() && disputes.is_empty());
    assert!(matches!(no_sale, KeyOrSale::New(None)), "{no_sale:?}");
    let KeyOrSale::Used(found) = same_write else { panic!("a key stored in the same write is used: {same_write:?}") };
    assert_eq!(found.body, "this write's answer");
    // another merchant's key of the same name is not this one's
    let other = write(&store, move |tx| tx.find_key_or_lock_sale(MerchantId::generate(), KEYED, "k-used", sale_id))
        .await
        .unwrap();
    assert!(matches!(other, KeyOrSale::New(None)), "{other:?}");
}

/// The same refund sent twice at once, to two instances: the second's key
/// is read once it holds the sale, so it finds the key the first committed
/// while it waited, and replays it instead of refunding again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_committed_while_the_sales_lock_waited_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(&dir);
    // SQLite has one writer: there is no lock to wait for
    let Some(scratch) = &t.scratch else { return };
    let store = Arc::clone(&t.store);
    let m = merchant("twice");
    let (mid, sid) = (m.id, StoreId::generate());
    let sale = cash_sale(mid, sid, Vec::new());
    seed_sales(&store, m, sid, vec![sale.clone()]).await;

    let holder = held_elsewhere(scratch, mid, sale.id, move |tx| {
        tx.insert_idempotency(&key_record(mid, "twice", "the first's answer"))
    })
    .await;
    let sale_id = sale.id;
    let found = write(&store, move |tx| tx.find_key_or_lock_sale(mid, KEYED, "twice", sale_id)).await.unwrap();
    holder.await.unwrap().unwrap();
    let KeyOrSale::Used(found) = found else { panic!("the key committed while waiting is found: {found:?}") };
    assert_eq!(found.body, "the first's answer");
}

/// On PostgreSQL a refund's key names its sale and the sale's merchant
/// together (migration 0005): a refund filed under another merchant than
/// its sale's is refused, and a refund of an unknown sale too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_must_name_a_sale_of_its_own_merchant() {
    use refundry_core::refund::RefundStatus;
    let dir = tempfile::tempdir().unwrap();
    let t = open(&dir);
    // SQLite keeps a key on each column: its check is a lookup in the
    // writer's own process, with no lock to write
    if t.scratch.is_none() {
        return;
    }
    let store = Arc::clone(&t.store);
    let (owner, other) = (merchant("owner"), merchant("other"));
    let (sid, other_id) = (StoreId::generate(), other.id);
    let sale = cash_sale(owner.id, sid, Vec::new());
    seed_sales(&store, owner, sid, vec![sale.clone()]).await;
    write(&store, move |tx| tx.insert_merchant(&other)).await.unwrap();

    let mut misfiled = refund_of(&sale, RefundStatus::Pending, 100, Vec::new());
    misfiled.merchant_id = other_id;
    let refused = write(&store, move |tx| tx.insert_refund(&misfiled)).await;
    assert!(refused.is_err(), "a refund under another merchant than its sale's must be refused");

    let mut unknown = refund_of(&sale, RefundStatus::Pending, 100, Vec::new());
    unknown.sale_id = refundry_core::ids::SaleId::generate();
    let refused = write(&store, move |tx| tx.insert_refund(&unknown)).await;
    assert!(refused.is_err(), "a refund of an unknown sale must be refused");

    let rightful = refund_of(&sale, RefundStatus::Pending, 100, Vec::new());
    write(&store, move |tx| tx.insert_refund(&rightful)).await.unwrap();
    let (merchant_id, sale_id) = (sale.merchant_id, sale.id);
    let kept = read(&store, move |tx| tx.refunds_of_sale(merchant_id, sale_id)).await.unwrap();
    assert_eq!(kept.len(), 1, "only the rightful refund was written");
}
