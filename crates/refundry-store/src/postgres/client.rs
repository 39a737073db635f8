//! A blocking PostgreSQL connection for the store's threads, which can send
//! several statements in one round trip.
//!
//! The `postgres` crate's blocking client waits for each statement's answer
//! before it sends the next. This one drives a `tokio-postgres` connection
//! on a runtime of its own, on the calling thread, and adds
//! [`Client::query_many`]: statements sent together. The server still
//! runs them one after the other, each as a statement of its own (under
//! READ COMMITTED, with a snapshot taken once the one before is done);
//! what is saved is the wait between them: the system calls and the
//! switches between the writer and the server's process, which cost a
//! small statement more CPU than running it (BENCHMARKS.md).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use futures_util::future::join_all;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Config, Error, NoTls, Row, SimpleQueryMessage, Statement, ToStatement};

use crate::StoreError;

pub type Param<'a> = &'a (dyn ToSql + Sync);

type Connection = tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>;

pub struct Client {
    /// Declared before the driver: dropped first, so the connection knows
    /// no request is left to come when the driver says goodbye.
    inner: tokio_postgres::Client,
    driver: Driver,
}

/// The connection, polled by every call while it waits, on the calling
/// thread: no task of its own to wake and switch to for each message.
struct Driver {
    /// Dropped once it has ended, which fails the requests it had taken and
    /// every one after.
    connection: Option<Pin<Box<Connection>>>,
    runtime: tokio::runtime::Runtime,
}

impl Driver {
    /// Runs `f` to its end, driving the connection meanwhile: first what
    /// the connection has to send or has received, then `f`.
    fn wait<F: Future>(&mut self, f: F) -> F::Output {
        let connection = &mut self.connection;
        let mut f = std::pin::pin!(f);
        self.runtime.block_on(std::future::poll_fn(|cx| {
            if let Some(live) = connection
                && let Poll::Ready(ended) = live.as_mut().poll(cx)
            {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "PostgreSQL connection ended");
                }
                *connection = None;
            }
            f.as_mut().poll(cx)
        }))
    }
}

/// How long a closing connection may take to send its `Terminate`.
const GOODBYE: std::time::Duration = std::time::Duration::from_millis(250);

impl Drop for Driver {
    /// Ends the session as the protocol asks: once its client is gone, the
    /// connection sends `Terminate` and closes, if it is polled. Dropped
    /// unpolled, it would close the socket without a word, which the
    /// server logs as a client that vanished.
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            let _ = self.runtime.block_on(async { tokio::time::timeout(GOODBYE, connection).await });
        }
    }
}

impl Client {
    pub fn connect(config: &Config) -> Result<Client, StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| StoreError::Backend { message: e.to_string(), retryable: true })?;
        let (inner, connection) = runtime.block_on(config.connect(NoTls))?;
        Ok(Client { inner, driver: Driver { connection: Some(Box::pin(connection)), runtime } })
    }

    /// Runs statements without parameters, in the simple protocol.
    pub fn batch_execute(&mut self, sql: &str) -> Result<(), Error> {
        self.driver.wait(self.inner.batch_execute(sql))
    }

    pub fn simple_query(&mut self, sql: &str) -> Result<Vec<SimpleQueryMessage>, Error> {
        self.driver.wait(self.inner.simple_query(sql))
    }

    pub fn prepare(&mut self, sql: &str) -> Result<Statement, Error> {
        self.driver.wait(self.inner.prepare(sql))
    }

    pub fn query<T: ?Sized + ToStatement>(&mut self, statement: &T, params: &[Param<'_>]) -> Result<Vec<Row>, Error> {
        self.driver.wait(self.inner.query(statement, params))
    }

    pub fn query_opt<T: ?Sized + ToStatement>(
        &mut self,
        statement: &T,
        params: &[Param<'_>],
    ) -> Result<Option<Row>, Error> {
        self.driver.wait(self.inner.query_opt(statement, params))
    }

    pub fn query_one<T: ?Sized + ToStatement>(&mut self, statement: &T, params: &[Param<'_>]) -> Result<Row, Error> {
        self.driver.wait(self.inner.query_one(statement, params))
    }

    pub fn execute<T: ?Sized + ToStatement>(&mut self, statement: &T, params: &[Param<'_>]) -> Result<u64, Error> {
        self.driver.wait(self.inner.execute(statement, params))
    }

    /// Statements in one round trip: all are sent before any answer is
    /// read. The server runs each once the one before is done (after any
    /// lock that one waits for); if one fails inside a transaction, those
    /// after it fail too, as the transaction is aborted.
    pub fn query_many(&mut self, statements: &[(&Statement, &[Param<'_>])]) -> Vec<Result<Vec<Row>, Error>> {
        // join_all polls its futures in order on its first poll: each
        // queues its messages for the connection before the next does, and
        // all go out in one write
        let inner = &self.inner;
        self.driver.wait(join_all(statements.iter().map(|(statement, params)| inner.query(*statement, params))))
    }

    pub fn is_closed(&self) -> bool {
        self.driver.connection.is_none() || self.inner.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use tokio_postgres::error::SqlState;

    use super::*;

    /// The test run's PostgreSQL, if it has one (these tests need no schema).
    fn connect() -> Option<Client> {
        let url = crate::testing::postgres_url()?;
        Some(Client::connect(&url.parse().expect("a PostgreSQL URL")).expect("PostgreSQL for tests"))
    }

    fn int(rows: &[Row]) -> i32 {
        rows[0].get(0)
    }

    #[test]
    fn statements_sent_together_answer_in_order_and_fail_after_the_first_failure() {
        let Some(mut client) = connect() else { return };
        let (one, two) = (client.prepare("SELECT 1").unwrap(), client.prepare("SELECT $1::int + 1").unwrap());
        let three = client.prepare("SELECT $1::int * 3").unwrap();
        let answers = client.query_many(&[(&one, &[]), (&two, &[&41i32]), (&three, &[&5i32])]);
        let answers: Vec<i32> = answers.into_iter().map(|rows| int(&rows.unwrap())).collect();
        assert_eq!(answers, [1, 42, 15]);

        // inside a transaction a failed statement aborts it, and the ones
        // sent after it fail with it
        let divide = client.prepare("SELECT 1 / $1::int").unwrap();
        client.batch_execute("BEGIN").unwrap();
        let mut answers = client.query_many(&[(&one, &[]), (&divide, &[&0i32]), (&two, &[&1i32])]).into_iter();
        let (first, second, third) = (answers.next().unwrap(), answers.next().unwrap(), answers.next().unwrap());
        assert!(answers.next().is_none(), "one answer per statement");
        let code = |e: Error| e.as_db_error().map(|d| d.code().clone());
        assert_eq!(int(&first.unwrap()), 1);
        assert_eq!(code(second.unwrap_err()), Some(SqlState::DIVISION_BY_ZERO));
        assert_eq!(code(third.unwrap_err()), Some(SqlState::IN_FAILED_SQL_TRANSACTION));
        client.batch_execute("ROLLBACK").unwrap();
        assert_eq!(int(&client.query(&one, &[]).unwrap()), 1, "the connection serves on after the rollback");
    }

    /// A dropped client ends its session with `Terminate`; a stand-in
    /// server (no PostgreSQL needed) records what it receives.
    #[test]
    fn a_dropped_client_says_goodbye_before_it_closes() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut len = [0u8; 4];
            socket.read_exact(&mut len).unwrap();
            let mut startup = vec![0u8; u32::from_be_bytes(len) as usize - 4];
            socket.read_exact(&mut startup).unwrap();
            // AuthenticationOk, then ReadyForQuery (idle)
            socket.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 0, b'Z', 0, 0, 0, 5, b'I']).unwrap();
            let mut rest = Vec::new();
            socket.read_to_end(&mut rest).unwrap();
            rest
        });
        let client = Client::connect(&format!("postgres://refundry@127.0.0.1:{port}/test").parse().unwrap()).unwrap();
        drop(client);
        assert_eq!(server.join().unwrap(), [b'X', 0, 0, 0, 4], "Terminate, then the end");
    }

    #[test]
    fn a_connection_the_server_ends_fails_its_calls_instead_of_waiting() {
        let Some(mut client) = connect() else { return };
        let ended = client.batch_execute("SELECT pg_terminate_backend(pg_backend_pid())");
        assert!(ended.is_err(), "the server ended the connection while answering");
        // the end is learned by the next call, which fails at once
        let again = client.prepare("SELECT 1");
        assert!(again.unwrap_err().is_closed());
        assert!(client.is_closed(), "so the store opens a new connection");
    }
}
