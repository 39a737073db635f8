//! The Markdown report: one section per database, between markers, so a
//! new run replaces the section of its database and keeps the others.

use std::path::Path;

use anyhow::Context;

const HEADER: &str = "# Benchmarks\n\n\
Written by `refundry-bench load` (crates/refundry-bench): one section per database, \
each replaced by the next run on that database. Every number in a section was measured \
in the same run on the same machine.\n";

fn markers(database: &str) -> (String, String) {
    (format!("<!-- refundry-bench:{database}:start -->"), format!("<!-- refundry-bench:{database}:end -->"))
}

/// `document` with the section for `database` set to `section`.
pub fn upsert(document: &str, database: &str, section: &str) -> String {
    let (start, end) = markers(database);
    let block = format!("{start}\n{}\n{end}", section.trim_end());
    if let (Some(s), Some(e)) = (document.find(&start), document.find(&end))
        && s < e
    {
        return format!("{}{block}{}", &document[..s], &document[e + end.len()..]);
    }
    let mut out =
        if document.trim().is_empty() { HEADER.trim_end().to_owned() } else { document.trim_end().to_owned() };
    out.push_str("\n\n");
    out.push_str(&block);
    out.push('\n');
    out
}

/// Writes or updates the report file.
pub fn write(path: &Path, database: &str, section: &str) -> anyhow::Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    std::fs::write(path, upsert(&old, database, section)).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_added_then_replaced_and_others_are_kept() {
        let one = upsert("", "sqlite", "## SQLite\nfirst");
        assert!(one.starts_with("# Benchmarks"));
        let two = upsert(&one, "postgres", "## PostgreSQL\npg");
        let three = upsert(&two, "sqlite", "## SQLite\nsecond");
        assert!(three.contains("second") && !three.contains("first") && three.contains("pg"));
        assert!(three.find("second").unwrap() < three.find("pg").unwrap(), "the section keeps its place");
        assert_eq!(three.matches("refundry-bench:sqlite:start").count(), 1);
    }
}
