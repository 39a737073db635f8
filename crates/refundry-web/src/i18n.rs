//! Messages in Simplified Chinese and English. Each language is one TOML
//! file under `i18n/`, nested tables flattened to dotted keys
//! (`[counter] title = …` is `counter.title`). Adding a message means adding
//! it to both files; a test keeps their keys identical.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::http::{HeaderMap, header};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    ZhCn,
    En,
}

impl Lang {
    pub const ALL: &'static [Lang] = &[Lang::ZhCn, Lang::En];

    /// The BCP 47 tag, as used in `<html lang>` and the `lang` cookie.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::ZhCn => "zh-CN",
            Lang::En => "en",
        }
    }

    pub fn parse(tag: &str) -> Option<Lang> {
        let tag = tag.trim().to_ascii_lowercase();
        if tag.starts_with("zh") {
            Some(Lang::ZhCn)
        } else if tag.starts_with("en") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The first language of `Accept-Language` that we speak; Chinese
    /// otherwise, the language of the counters Refundry is made for.
    pub fn from_accept_language(headers: &HeaderMap) -> Lang {
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').find_map(|part| Lang::parse(part.split(';').next().unwrap_or(""))))
            .unwrap_or(Lang::ZhCn)
    }

    /// The other language, for the switch on every page.
    pub fn other(self) -> Lang {
        match self {
            Lang::ZhCn => Lang::En,
            Lang::En => Lang::ZhCn,
        }
    }

    /// The language's own name.
    pub fn name(self) -> &'static str {
        match self {
            Lang::ZhCn => "中文",
            Lang::En => "English",
        }
    }

    pub fn is_zh(self) -> bool {
        self == Lang::ZhCn
    }

    /// A message; the key itself when missing (tests prevent that).
    pub fn t(self, key: &str) -> &'static str {
        catalogue(self).get(key).map(String::as_str).unwrap_or_else(|| {
            tracing::warn!(key, "message missing from the catalogue");
            Box::leak(key.to_owned().into_boxed_str())
        })
    }
}

const SOURCES: &[(Lang, &str)] =
    &[(Lang::ZhCn, include_str!("../i18n/zh-CN.toml")), (Lang::En, include_str!("../i18n/en.toml"))];

fn catalogue(lang: Lang) -> &'static HashMap<String, String> {
    static CATALOGUES: OnceLock<Vec<(Lang, HashMap<String, String>)>> = OnceLock::new();
    let all = CATALOGUES.get_or_init(|| {
        SOURCES
            .iter()
            .map(|(lang, text)| {
                let table: toml::Table = text.parse().expect("the message catalogues are valid TOML (tested)");
                let mut flat = HashMap::new();
                flatten("", &table, &mut flat);
                (*lang, flat)
            })
            .collect()
    });
    &all.iter().find(|(l, _)| *l == lang).expect("every language has a catalogue").1
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut HashMap<String, String>) {
    for (k, v) in table {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            toml::Value::String(s) => {
                out.insert(key, s.clone());
            }
            other => {
                out.insert(key, other.to_string());
            }
        }
    }
}

/// Every key of a language, sorted.
pub fn keys(lang: Lang) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = catalogue(lang).keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_catalogues_have_exactly_the_same_keys() {
        let (zh, en) = (keys(Lang::ZhCn), keys(Lang::En));
        let only_zh: Vec<_> = zh.iter().filter(|k| !en.contains(k)).collect();
        let only_en: Vec<_> = en.iter().filter(|k| !zh.contains(k)).collect();
        assert!(only_zh.is_empty() && only_en.is_empty(), "only in zh-CN: {only_zh:?}; only in en: {only_en:?}");
        assert!(zh.len() > 50);
    }

    #[test]
    fn every_app_error_code_has_a_message() {
        for lang in Lang::ALL {
            for code in refundry_app::ErrorCode::ALL {
                let key = format!("error.{}", code.as_str());
                assert!(catalogue(*lang).contains_key(&key), "{} lacks {key}", lang.tag());
            }
        }
    }

    #[test]
    fn every_reason_status_brand_and_wallet_has_a_name() {
        for lang in Lang::ALL {
            for r in refundry_core::refund::RefundReason::ALL {
                assert!(catalogue(*lang).contains_key(&format!("reason.{}", r.as_str())), "{r:?}");
            }
            for b in refundry_core::sale::CardBrand::ALL {
                assert!(catalogue(*lang).contains_key(&format!("brand.{}", b.as_str())), "{b:?}");
            }
            for w in refundry_core::sale::Wallet::ALL {
                assert!(catalogue(*lang).contains_key(&format!("wallet.{}", w.as_str())), "{w:?}");
            }
            for s in refundry_core::refund::RefundStatus::ALL {
                assert!(catalogue(*lang).contains_key(&format!("status.{}", s.as_str())), "{s:?}");
            }
        }
    }

    /// Every message a template or page module asks for by a literal key exists.
    #[test]
    fn every_message_used_exists() {
        let dirs = [concat!(env!("CARGO_MANIFEST_DIR"), "/templates"), concat!(env!("CARGO_MANIFEST_DIR"), "/src")];
        let mut files = Vec::new();
        for dir in dirs {
            let mut stack = vec![std::path::PathBuf::from(dir)];
            while let Some(p) = stack.pop() {
                for entry in std::fs::read_dir(&p).unwrap() {
                    let path = entry.unwrap().path();
                    if path.is_dir() { stack.push(path) } else { files.push(path) }
                }
            }
        }
        let keys = keys(Lang::En);
        let mut missing = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for piece in text.split(".t(\"").skip(1) {
                let key = piece.split('"').next().unwrap_or("");
                if !key.is_empty() && !key.ends_with('.') && !keys.contains(&key) {
                    missing.push(format!("{}: {key}", file.display()));
                }
            }
        }
        assert!(missing.is_empty(), "messages missing: {missing:#?}");
    }

    #[test]
    fn accept_language_picks_the_first_language_we_speak() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_LANGUAGE, "fr-FR,en-US;q=0.8,zh;q=0.5".parse().unwrap());
        assert_eq!(Lang::from_accept_language(&h), Lang::En);
        h.insert(header::ACCEPT_LANGUAGE, "zh-CN,zh;q=0.9".parse().unwrap());
        assert_eq!(Lang::from_accept_language(&h), Lang::ZhCn);
        assert_eq!(Lang::from_accept_language(&HeaderMap::new()), Lang::ZhCn);
    }
}
