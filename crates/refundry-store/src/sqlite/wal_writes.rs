//! A VFS over SQLite's own that hands a commit's WAL frames to the file in
//! a few large writes.
//!
//! SQLite writes every WAL frame with two system calls, its 24-byte header
//! and then the page, so a batch of 120 pages cost 250 `pwrite`s before the
//! commit's fsync, and the kernel touched each page of the file twice. This
//! VFS keeps appending writes to a WAL file in memory and writes them out,
//! up to 124 KiB a call, as soon as anything else reaches that file: above
//! all the commit's sync, but also a read, a size, a truncate, a close, or
//! a write somewhere other than the end of what is held.
//!
//! A crash loses nothing by it: nothing written before the sync is durable
//! anyway, and SQLite syncs before it answers a commit. Other connections
//! never see the held frames either, because with `synchronous=FULL` on a
//! device with power-safe overwrite (SQLite's default on unix), SQLite
//! syncs the WAL after the commit's last frame and only then makes the
//! frames visible to readers. The store sets FULL on every connection it
//! opens; a WAL on a device without power-safe overwrite is written
//! straight through.
//!
//! Files other than WALs are SQLite's own, opened in place and untouched.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::OnceLock;

use rusqlite::ffi;

use crate::StoreError;

/// The name connections open with to use this VFS.
pub const NAME: &CStr = c"refundry-wal-writes";

/// Held bytes past which they are written without waiting for the sync, so
/// that a transaction writing a great deal holds at most this much.
const MOST_HELD: usize = 8 * 1024 * 1024;

/// Bytes handed to the default VFS in one write: its unix writer takes
/// less than 128 KiB a call.
const MOST_PER_WRITE: usize = 124 * 1024;

/// Registers the VFS beside SQLite's default one (once per process).
pub fn register() -> Result<&'static CStr, StoreError> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    // SAFETY: runs once; the VFS object it registers is leaked, so it lives
    // as long as SQLite may use it
    let registered = REGISTERED.get_or_init(|| unsafe { register_once() });
    match registered {
        Ok(()) => Ok(NAME),
        Err(message) => Err(StoreError::Backend { message: message.clone(), retryable: false }),
    }
}

unsafe fn register_once() -> Result<(), String> {
    // SAFETY: sqlite3_vfs_find initialises SQLite if needed and returns the
    // default VFS, which SQLite keeps for the life of the process
    let base = unsafe { ffi::sqlite3_vfs_find(std::ptr::null()) };
    if base.is_null() {
        return Err("SQLite has no default VFS".into());
    }
    // SAFETY: base points at a live sqlite3_vfs
    let mut vfs = unsafe { *base };
    vfs.szOsFile = (REAL_AT + vfs.szOsFile as usize) as c_int;
    vfs.pNext = std::ptr::null_mut();
    vfs.zName = NAME.as_ptr();
    // the default VFS's own methods never read pAppData except its xOpen,
    // which is always called with the default VFS itself
    vfs.pAppData = base.cast::<c_void>();
    vfs.xOpen = Some(open);
    let vfs = Box::leak(Box::new(vfs));
    // SAFETY: vfs is 'static and fully initialised
    match unsafe { ffi::sqlite3_vfs_register(vfs, 0) } {
        ffi::SQLITE_OK => Ok(()),
        rc => Err(format!("registering SQLite's WAL-writes VFS failed (code {rc})")),
    }
}

/// A WAL file: the default VFS's file, and what is held for it.
#[repr(C)]
struct WalFile {
    /// Must come first: SQLite sees only this.
    methods: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    /// False on a device without power-safe overwrite: written through.
    holds: bool,
    held: Vec<u8>,
    /// Offset in the file of `held`'s first byte.
    held_at: i64,
}

/// Where the default VFS's file starts in the space SQLite gives a file.
const REAL_AT: usize = std::mem::size_of::<WalFile>().next_multiple_of(16);

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY (whole function): SQLite passes this VFS and a zeroed block of
    // szOsFile bytes, 8-aligned, for the file
    unsafe {
        let base = (*vfs).pAppData.cast::<ffi::sqlite3_vfs>();
        let base_open = (*base).xOpen.expect("every VFS opens files");
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            return base_open(base, name, file, flags, out_flags);
        }
        let real = file.cast::<u8>().add(REAL_AT).cast::<ffi::sqlite3_file>();
        let rc = base_open(base, name, real, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            // a file the default VFS half opened is closed by its own xClose
            let methods = (*real).pMethods;
            if !methods.is_null()
                && let Some(close) = (*methods).xClose
            {
                close(real);
            }
            // SQLite calls no method of a file whose open failed
            (*file).pMethods = std::ptr::null();
            return rc;
        }
        let characteristics = real_methods(real).xDeviceCharacteristics.map_or(0, |f| f(real));
        std::ptr::write(
            file.cast::<WalFile>(),
            WalFile {
                methods: ffi::sqlite3_file { pMethods: &WAL_METHODS },
                real,
                holds: characteristics & ffi::SQLITE_IOCAP_POWERSAFE_OVERWRITE != 0,
                held: Vec::new(),
                held_at: 0,
            },
        );
        ffi::SQLITE_OK
    }
}

/// SAFETY: `file` must be a WalFile that `open` initialised.
unsafe fn wal<'a>(file: *mut ffi::sqlite3_file) -> &'a mut WalFile {
    unsafe { &mut *file.cast::<WalFile>() }
}

/// SAFETY: `real` must be an open file of the default VFS.
unsafe fn real_methods<'a>(real: *mut ffi::sqlite3_file) -> &'a ffi::sqlite3_io_methods {
    unsafe { &*(*real).pMethods }
}

impl WalFile {
    /// Writes what is held, if anything. Held bytes that failed to be
    /// written are dropped: SQLite treats the error as a failed write, and
    /// a failed commit leaves the frames after its start unused.
    unsafe fn release(&mut self) -> c_int {
        if self.held.is_empty() {
            return ffi::SQLITE_OK;
        }
        // SAFETY: real is open while self is
        let write = unsafe { real_methods(self.real).xWrite.expect("every file is writable") };
        let mut rc = ffi::SQLITE_OK;
        let mut at = self.held_at;
        for chunk in self.held.chunks(MOST_PER_WRITE) {
            // SAFETY: chunk is live and shorter than c_int's range
            rc = unsafe { write(self.real, chunk.as_ptr().cast(), chunk.len() as c_int, at) };
            if rc != ffi::SQLITE_OK {
                break;
            }
            at += chunk.len() as i64;
        }
        self.held.clear();
        rc
    }
}

/// Writes what is held for `file`, then hands the default VFS's file to
/// `then`; a failed write is returned instead.
///
/// SAFETY: `file` must be a WalFile that `open` initialised.
unsafe fn released(
    file: *mut ffi::sqlite3_file,
    then: impl FnOnce(&ffi::sqlite3_io_methods, *mut ffi::sqlite3_file) -> c_int,
) -> c_int {
    unsafe {
        let wal = wal(file);
        match wal.release() {
            ffi::SQLITE_OK => then(real_methods(wal.real), wal.real),
            rc => rc,
        }
    }
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let wal = wal(file);
        let released = wal.release();
        let real = wal.real;
        let closed = real_methods(real).xClose.map_or(ffi::SQLITE_OK, |f| f(real));
        std::ptr::drop_in_place(wal as *mut WalFile);
        if released != ffi::SQLITE_OK { released } else { closed }
    }
}

unsafe extern "C" fn read(file: *mut ffi::sqlite3_file, buf: *mut c_void, amount: c_int, offset: i64) -> c_int {
    // SAFETY: SQLite calls it with the file `open` made
    unsafe {
        released(file, |methods, real| (methods.xRead.expect("every file is readable"))(real, buf, amount, offset))
    }
}

unsafe extern "C" fn write(file: *mut ffi::sqlite3_file, buf: *const c_void, amount: c_int, offset: i64) -> c_int {
    unsafe {
        let wal = wal(file);
        if !wal.holds || amount <= 0 {
            return (real_methods(wal.real).xWrite.expect("every file is writable"))(wal.real, buf, amount, offset);
        }
        if !wal.held.is_empty() && offset != wal.held_at + wal.held.len() as i64 {
            let rc = wal.release();
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        if wal.held.is_empty() {
            wal.held_at = offset;
        }
        // SAFETY: SQLite hands `amount` (> 0) readable bytes at buf
        wal.held.extend_from_slice(std::slice::from_raw_parts(buf.cast::<u8>(), amount as usize));
        if wal.held.len() >= MOST_HELD { wal.release() } else { ffi::SQLITE_OK }
    }
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    // SAFETY: SQLite calls it with the file `open` made
    unsafe { released(file, |methods, real| (methods.xTruncate.expect("every file truncates"))(real, size)) }
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    // SAFETY: SQLite calls it with the file `open` made
    unsafe { released(file, |methods, real| (methods.xSync.expect("every file syncs"))(real, flags)) }
}

unsafe extern "C" fn file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    // SAFETY: SQLite calls it with the file `open` made
    unsafe { released(file, |methods, real| (methods.xFileSize.expect("every file has a size"))(real, size)) }
}

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    unsafe {
        let real = wal(file).real;
        real_methods(real).xLock.map_or(ffi::SQLITE_OK, |f| f(real, level))
    }
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    unsafe {
        let real = wal(file).real;
        real_methods(real).xUnlock.map_or(ffi::SQLITE_OK, |f| f(real, level))
    }
}

unsafe extern "C" fn check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    unsafe {
        let real = wal(file).real;
        real_methods(real).xCheckReservedLock.map_or(ffi::SQLITE_OK, |f| f(real, out))
    }
}

unsafe extern "C" fn file_control(file: *mut ffi::sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    // whatever the control does to the file, it finds the file whole
    // SAFETY: SQLite calls it with the file `open` made
    unsafe { released(file, |methods, real| methods.xFileControl.map_or(ffi::SQLITE_NOTFOUND, |f| f(real, op, arg))) }
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let real = wal(file).real;
        real_methods(real).xSectorSize.map_or(4096, |f| f(real))
    }
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let real = wal(file).real;
        real_methods(real).xDeviceCharacteristics.map_or(0, |f| f(real))
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, OpenFlags};

    use super::*;

    fn open(path: &std::path::Path, through_vfs: bool) -> Connection {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        let conn = if through_vfs {
            Connection::open_with_flags_and_vfs(path, flags, register().unwrap()).unwrap()
        } else {
            Connection::open_with_flags(path, flags).unwrap()
        };
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "synchronous", "FULL").unwrap();
        conn
    }

    fn rows(conn: &Connection) -> (i64, i64) {
        conn.query_row("SELECT count(*), coalesce(sum(length(body)), 0) FROM t", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
    }

    #[test]
    fn the_store_writes_only_with_synchronous_full_which_holding_relies_on() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::open_connection(&dir.path().join("db.sqlite"), false, &Default::default()).unwrap();
        let synchronous: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(synchronous, 2, "FULL");
    }

    #[test]
    fn every_commit_is_whole_for_a_reader_on_its_own_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let writer = open(&path, true);
        writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        writer.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)").unwrap();
        let reader = open(&path, false);
        let body = "x".repeat(3000);
        for round in 1..=50_i64 {
            let tx = writer.unchecked_transaction().unwrap();
            for _ in 0..20 {
                tx.execute("INSERT INTO t (body) VALUES (?1)", [&body]).unwrap();
            }
            tx.commit().unwrap();
            // the reader reads the WAL through a file of its own: had any
            // frame still been held, it would find a short WAL or a torn page
            assert_eq!(rows(&reader), (round * 20, round * 20 * 3000));
        }
        let check: String = reader.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok");
    }

    #[test]
    fn a_transaction_larger_than_what_is_held_and_a_restarted_wal_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let writer = open(&path, true);
            writer.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)").unwrap();
            let body = "y".repeat(100_000);
            let tx = writer.unchecked_transaction().unwrap();
            // 20 MB: written out twice on the way, the rest at the sync
            for _ in 0..200 {
                tx.execute("INSERT INTO t (body) VALUES (?1)", [&body]).unwrap();
            }
            tx.commit().unwrap();
            // copies the WAL into the database and starts it over; the next
            // commit writes the WAL's header at offset 0 again
            writer.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())).unwrap();
            writer.execute("DELETE FROM t WHERE id % 2 = 0", []).unwrap();
        }
        let reopened = open(&path, false);
        assert_eq!(rows(&reopened), (100, 100 * 100_000));
        let check: String = reopened.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok");
    }
}
