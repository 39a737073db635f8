//! The back office's areas, in the order of the navigation bar, with the
//! scopes that open each. A page checks its own entry, so the bar and the
//! page can never disagree. An area not built yet stays out of the bar.

use refundry_app::Actor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Home,
    Counter,
    Approvals,
    Sales,
    Refunds,
    Dashboard,
    Disputes,
    Corrections,
    Audit,
    Settings,
}

pub struct Entry {
    pub area: Area,
    /// The message key of its name.
    pub label: &'static str,
    pub href: &'static str,
    /// Any one of these lets a person in.
    pub scopes: &'static [&'static str],
    /// The access key (Alt+key in most browsers).
    pub key: Option<char>,
    /// Shown in the bar: false until the area's pages exist.
    pub built: bool,
}

const STAFF: &[&str] = &["sales:write", "refunds:write", "refunds:approve", "reports:read", "disputes:write"];

pub const ENTRIES: &[Entry] = &[
    Entry { area: Area::Home, label: "nav.home", href: "/", scopes: STAFF, key: Some('h'), built: true },
    Entry {
        area: Area::Counter,
        label: "nav.counter",
        href: "/counter",
        scopes: &["refunds:write"],
        key: Some('c'),
        built: true,
    },
    Entry {
        area: Area::Approvals,
        label: "nav.approvals",
        href: "/approvals",
        scopes: &["refunds:approve"],
        key: Some('a'),
        built: true,
    },
    Entry { area: Area::Sales, label: "nav.sales", href: "/sales", scopes: STAFF, key: Some('l'), built: true },
    Entry { area: Area::Refunds, label: "nav.refunds", href: "/refunds", scopes: STAFF, key: Some('r'), built: true },
    Entry {
        area: Area::Dashboard,
        label: "nav.dashboard",
        href: "/dashboard",
        scopes: &["reports:read"],
        key: Some('d'),
        built: true,
    },
    Entry {
        area: Area::Disputes,
        label: "nav.disputes",
        href: "/disputes",
        scopes: &["disputes:write"],
        key: None,
        built: true,
    },
    Entry {
        area: Area::Corrections,
        label: "corrections.nav",
        href: "/corrections",
        scopes: &["refunds:write", "refunds:approve"],
        key: None,
        built: true,
    },
    // the scope of the audit API (`GET /v1/audit-events`)
    Entry { area: Area::Audit, label: "nav.audit", href: "/audit", scopes: &["reports:read"], key: None, built: true },
    Entry {
        area: Area::Settings,
        label: "nav.settings",
        href: "/settings",
        scopes: &["admin"],
        key: None,
        built: true,
    },
];

pub fn entry(area: Area) -> &'static Entry {
    ENTRIES.iter().find(|e| e.area == area).expect("every area has an entry")
}

/// Whether the actor may open the area.
pub fn may(actor: &Actor, area: Area) -> bool {
    entry(area).scopes.iter().any(|s| actor.may(s))
}

/// One link of the bar as a page shows it.
#[derive(Debug, Clone)]
pub struct Link {
    pub label: &'static str,
    pub href: &'static str,
    pub key: String,
    pub active: bool,
}

/// The bar for this person on this page.
pub fn bar(actor: &Actor, current: Area, lang: crate::i18n::Lang) -> Vec<Link> {
    ENTRIES
        .iter()
        .filter(|e| e.built && may(actor, e.area))
        .map(|e| Link {
            label: lang.t(e.label),
            href: e.href,
            key: e.key.map(String::from).unwrap_or_default(),
            active: e.area == current,
        })
        .collect()
}
