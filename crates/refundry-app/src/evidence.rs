//! Evidence on a dispute case: typed items (receipt, signature, refund
//! proof, …), each with an optional note and an optional file.
//!
//! Files are kept in the database beside the case (one backup holds both).
//! Before one is stored it must be small enough, of an allowed type as
//! sniffed from its bytes (PDF, PNG, JPEG or UTF-8 plain text; what the
//! caller says the type is counts for nothing), free of full card numbers
//! when it is text, and its name is reduced to a harmless one. Its SHA-256
//! is stored with it and checked again on every download, so a file altered
//! at rest is refused instead of being submitted to the network.

use refundry_core::dispute::{CaseFacts, DisputeCategory, EvidenceKind, RefundRecord, SummaryLocale};
use refundry_core::ids::{DisputeId, EvidenceId};
use refundry_store::model::{EvidenceFile, EvidenceRecord};
use sha2::{Digest, Sha256};

use crate::disputes::{network_of, state_of};
use crate::{Actor, App, AppError, ErrorCode, audit};

/// The default largest file: a scanned slip or a few pages of PDF.
pub const DEFAULT_MAX_FILE_BYTES: usize = 5 * 1024 * 1024;

/// The longest note.
const MAX_NOTE_CHARS: usize = 1000;

/// The longest file name kept, in characters.
const MAX_FILE_NAME_CHARS: usize = 100;

/// An item as the caller gives it.
#[derive(Debug, Clone)]
pub struct NewEvidence {
    pub kind: EvidenceKind,
    pub note: Option<String>,
    /// The file's name as the caller gave it (sanitised before it is kept)
    /// and its bytes.
    pub file: Option<(String, Vec<u8>)>,
}

/// The content types a file may have, sniffed from its first bytes.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    match infer::get(bytes).map(|t| t.mime_type()) {
        Some(mime @ ("application/pdf" | "image/png" | "image/jpeg")) => Some(mime),
        Some(_) => None,
        None => is_plain_text(bytes).then_some("text/plain; charset=utf-8"),
    }
}

/// UTF-8 with no control characters but tab and line ends: what a pasted
/// e-mail or chat log is, and not a binary with an unknown signature.
fn is_plain_text(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes)
        .is_ok_and(|text| text.chars().all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r')))
}

/// The last path component, without control or shell-special characters,
/// leading dots or surrounding blanks, at most 100 characters; `evidence`
/// when nothing is left.
pub fn sanitize_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let kept: String = base
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\'' | '<' | '>' | ':' | '|' | '?' | '*' | '`' | '$' | ';'))
        .collect();
    let trimmed: String = kept.trim().trim_start_matches('.').trim().chars().take(MAX_FILE_NAME_CHARS).collect();
    if trimmed.is_empty() { "evidence".to_owned() } else { trimmed }
}

/// Checks the item; its file (if any) with what is kept about it.
fn check_new(new: &mut NewEvidence, max_file_bytes: usize) -> Result<Option<(EvidenceFile, Vec<u8>)>, AppError> {
    if let Some(note) = &new.note {
        if note.chars().count() > MAX_NOTE_CHARS {
            return Err(AppError::validation("note", "note must be at most 1000 characters"));
        }
        refuse_card_number("note", note)?;
    }
    let Some((name, bytes)) = new.file.take() else { return Ok(None) };
    refuse_card_number("file.name", &name)?;
    if bytes.is_empty() {
        return Err(AppError::validation("file", "the file is empty"));
    }
    if bytes.len() > max_file_bytes {
        return Err(AppError::new(
            ErrorCode::EvidenceFileTooLarge,
            format!("the file has {} bytes; at most {max_file_bytes} are taken", bytes.len()),
        )
        .with("max_file_bytes", max_file_bytes));
    }
    let content_type = sniff(&bytes).ok_or_else(|| {
        AppError::new(ErrorCode::EvidenceFileTypeNotAllowed, "send a PDF, PNG, JPEG or UTF-8 plain-text file")
    })?;
    if content_type.starts_with("text/") {
        // a pasted conversation may hold the card; it must not be kept
        refuse_card_number("file", std::str::from_utf8(&bytes).unwrap_or(""))?;
    }
    let file = EvidenceFile {
        name: sanitize_file_name(&name),
        content_type: content_type.to_owned(),
        size_bytes: bytes.len() as i64,
        sha256: hex::encode(Sha256::digest(&bytes)),
    };
    Ok(Some((file, bytes)))
}

fn refuse_card_number(field: &str, text: &str) -> Result<(), AppError> {
    if refundry_core::card::contains_card_number(text) {
        // never echoed: the field says where
        return Err(AppError::new(ErrorCode::SensitiveCardData, format!("{field} holds a full card number"))
            .with("field", field.to_owned()));
    }
    Ok(())
}

fn no_case(id: DisputeId) -> AppError {
    AppError::new(ErrorCode::DisputeNotFound, format!("no dispute {id}"))
}

impl App {
    /// Adds an item of evidence to a case that can still take it
    /// (`dispute.evidence_added` in the audit log, and so to webhooks).
    pub async fn add_evidence(
        &self,
        actor: &Actor,
        dispute: DisputeId,
        mut new: NewEvidence,
    ) -> Result<EvidenceRecord, AppError> {
        let file = check_new(&mut new, self.config.disputes.evidence_max_file_bytes)?;
        let actor = actor.clone();
        refundry_store::write(&self.store, move |tx| {
            let found = tx.find_dispute(actor.merchant_id, dispute)?.ok_or_else(|| no_case(dispute))?;
            // the sale's row, as moving the case takes it: evidence never
            // lands on a case that has just been closed
            tx.lock_sale(actor.merchant_id, found.sale_id)?;
            let case = tx.find_dispute(actor.merchant_id, dispute)?.ok_or_else(|| no_case(dispute))?;
            let state = state_of(&case)?;
            if !state.takes_evidence() {
                return Err(AppError::new(
                    ErrorCode::DisputeClosedToEvidence,
                    format!("the case is {state}; evidence is taken while it needs a response or is submitted"),
                )
                .with("stage", case.stage.clone())
                .with("dispute_status", case.status.clone()));
            }
            let now = crate::now();
            let record = EvidenceRecord {
                id: EvidenceId::generate(),
                merchant_id: actor.merchant_id,
                dispute_id: dispute,
                kind: new.kind.as_str().to_owned(),
                note: new.note.clone(),
                file: file.as_ref().map(|(f, _)| f.clone()),
                added_by: actor.identity(),
                added_at: now,
            };
            tx.insert_evidence(&record, file.as_ref().map(|(_, b)| b.as_slice()))?;
            let data = serde_json::json!({
                "evidence_id": record.id.to_string(), "kind": record.kind, "note": record.note,
                "file": record.file.as_ref().map(|f| serde_json::json!({
                    "name": f.name, "content_type": f.content_type, "size_bytes": f.size_bytes, "sha256": f.sha256,
                })),
            });
            audit::record(tx, &actor, "dispute.evidence_added", &dispute.to_string(), data, now)?;
            Ok(record)
        })
        .await
    }

    /// The case's evidence, oldest first.
    pub async fn evidence(&self, actor: &Actor, dispute: DisputeId) -> Result<Vec<EvidenceRecord>, AppError> {
        let merchant = actor.merchant_id;
        refundry_store::read(&self.store, move |tx| {
            tx.find_dispute(merchant, dispute)?.ok_or_else(|| no_case(dispute))?;
            Ok(tx.evidence_of(merchant, dispute)?)
        })
        .await
    }

    /// An item's file, checked against the checksum stored with it.
    pub async fn evidence_file(
        &self,
        actor: &Actor,
        dispute: DisputeId,
        id: EvidenceId,
    ) -> Result<(EvidenceFile, Vec<u8>), AppError> {
        let merchant = actor.merchant_id;
        let missing = move || AppError::new(ErrorCode::EvidenceNotFound, format!("no evidence file {id} on {dispute}"));
        let (record, bytes) = refundry_store::read(&self.store, move |tx| {
            tx.evidence_with_file(merchant, dispute, id)?.ok_or_else(missing)
        })
        .await?;
        let (Some(file), Some(bytes)) = (record.file, bytes) else { return Err(missing()) };
        if hex::encode(Sha256::digest(&bytes)) != file.sha256 || bytes.len() as i64 != file.size_bytes {
            tracing::error!(evidence = %id, "an evidence file no longer matches its checksum");
            return Err(AppError::new(
                ErrorCode::EvidenceFileCorrupt,
                "the stored file no longer matches its checksum; it was altered at rest",
            ));
        }
        Ok((file, bytes))
    }

    /// The case summary for submission to the network, with its evidence
    /// listed with checksums.
    pub async fn evidence_summary(
        &self,
        actor: &Actor,
        dispute: DisputeId,
        locale: SummaryLocale,
    ) -> Result<String, AppError> {
        let merchant = actor.merchant_id;
        let tz = self.config.business_tz.clone();
        refundry_store::read(&self.store, move |tx| {
            let case = tx.find_dispute(merchant, dispute)?.ok_or_else(|| no_case(dispute))?;
            let sale = tx.find_sale(merchant, case.sale_id)?.ok_or_else(|| no_case(dispute))?;
            let merchant_name =
                tx.all_merchants()?.into_iter().find(|m| m.id == merchant).map(|m| m.name).unwrap_or_default();
            let refunds: Vec<RefundRecord> =
                tx.refunds_of_sale(merchant, sale.id)?.iter().map(crate::disputes::refund_record).collect();
            let items: Vec<refundry_core::dispute::Evidence> = tx
                .evidence_of(merchant, dispute)?
                .into_iter()
                .map(|e| refundry_core::dispute::Evidence {
                    kind: EvidenceKind::parse(&e.kind).unwrap_or(EvidenceKind::Other),
                    description: e.note.unwrap_or_default(),
                    file_name: e.file.as_ref().map(|f| f.name.clone()).unwrap_or_else(|| "-".into()),
                    checksum: e.file.as_ref().map(|f| format!("sha256:{}", f.sha256)).unwrap_or_else(|| "-".into()),
                    added_at: e.added_at,
                })
                .collect();
            let facts = CaseFacts {
                case_ref: &case.case_ref,
                merchant_name: &merchant_name,
                network: network_of(&case),
                reason_code: &case.reason_code,
                category: case.category.as_deref().and_then(DisputeCategory::parse),
                state: state_of(&case)?,
                amount: case.amount,
                opened_at: case.opened_at,
                due_by: case.due_by,
                sale: &sale,
                refunds: &refunds,
                time_zone: &tz,
            };
            Ok(refundry_core::dispute::evidence_summary(&facts, &items, locale))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_their_path_and_anything_a_shell_or_header_would_read() {
        assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_file_name("C:\\Users\\a\\签购单.pdf"), "签购单.pdf");
        assert_eq!(sanitize_file_name("a\"b\r\nc;.pdf"), "abc.pdf");
        assert_eq!(sanitize_file_name("..."), "evidence");
        assert_eq!(sanitize_file_name(".hidden"), "hidden");
        assert_eq!(sanitize_file_name(&"x".repeat(300)).chars().count(), 100);
    }

    #[test]
    fn only_pdf_png_jpeg_and_plain_text_pass_the_sniffer() {
        assert_eq!(sniff(b"%PDF-1.7\n..."), Some("application/pdf"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some("image/png"));
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\0\x10JFIF\0"), Some("image/jpeg"));
        assert_eq!(sniff("顾客来信：已收到货物。\r\n".as_bytes()), Some("text/plain; charset=utf-8"));
        assert_eq!(sniff(b"MZ\x90\0\x03\0\0\0"), None, "a Windows executable");
        assert_eq!(sniff(b"PK\x03\x04\x14\0"), None, "a zip");
        assert_eq!(sniff(b"GIF89a"), None);
        assert_eq!(sniff(b"\0\x01\x02binary"), None);
    }
}
