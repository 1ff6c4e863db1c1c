//! Whose domain a recipient is in (DESIGN §5).

use std::collections::{HashMap, HashSet};

pub use crate::terms::{RecipientClass, domain_of};

use crate::config::{Config, DomainClass};

const SHIPPED_PERSONAL: &str = include_str!("personal_domains.txt");

/// A recipient domain's class as it counts now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// As configured (or the personal list, or unmanaged).
    pub listed: RecipientClass,
    /// What it counts as: `listed`, unless lapsed.
    pub class: RecipientClass,
    /// A managed or partner domain whose ownership is not proven (now).
    pub lapsed: bool,
}

/// The one place for the lapsed rule (DESIGN §5, the Jeugdzorg case): a managed or partner
/// domain whose ownership proof does not hold may belong to someone else now, so it counts as
/// unmanaged. The pipeline and `sluis check-domain` both ask here.
pub fn standing(listed: RecipientClass, proven: bool) -> Standing {
    let lapsed = matches!(listed, RecipientClass::Managed | RecipientClass::Partner) && !proven;
    Standing {
        listed,
        class: if lapsed {
            RecipientClass::Unmanaged
        } else {
            listed
        },
        lapsed,
    }
}

pub struct Classifier {
    listed: HashMap<String, DomainClass>,
    personal: HashSet<String>,
}

impl Classifier {
    pub fn new(config: &Config) -> Classifier {
        let listed = config
            .domains
            .iter()
            .map(|d| (d.name.to_ascii_lowercase(), d.class))
            .collect();
        let removed: HashSet<String> = config
            .recipients
            .not_personal_domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect();
        let personal = SHIPPED_PERSONAL
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .chain(
                config
                    .recipients
                    .personal_domains
                    .iter()
                    .map(|d| d.to_ascii_lowercase()),
            )
            .filter(|d| !removed.contains(d))
            .collect();
        Classifier { listed, personal }
    }

    /// The configured class of a domain (exact match: a subdomain is not covered).
    pub fn class_of_domain(&self, domain: &str) -> RecipientClass {
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        match self.listed.get(&d) {
            Some(DomainClass::Managed) => RecipientClass::Managed,
            Some(DomainClass::Partner) => RecipientClass::Partner,
            None if self.personal.contains(&d) => RecipientClass::Personal,
            None => RecipientClass::Unmanaged,
        }
    }

    /// Whether the domain is listed as managed or partner (and so needs a proof).
    pub fn is_listed(&self, domain: &str) -> bool {
        matches!(
            self.class_of_domain(domain),
            RecipientClass::Managed | RecipientClass::Partner
        )
    }

    pub fn is_managed(&self, domain: &str) -> bool {
        self.class_of_domain(domain) == RecipientClass::Managed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DomainClass, DomainConfig};

    #[test]
    fn classes_from_config_and_shipped_list() {
        let mut c = Config::default();
        c.domains.push(DomainConfig {
            name: "zorg.example".into(),
            class: DomainClass::Managed,
            token: None,
            pinned_ns: vec![],
            tls_pins: vec![],
            tls_ca_file: None,
        });
        c.recipients
            .personal_domains
            .push("eigen-isp.example".into());
        c.recipients.not_personal_domains.push("xs4all.nl".into());
        let k = Classifier::new(&c);
        assert_eq!(k.class_of_domain("Zorg.Example."), RecipientClass::Managed);
        assert_eq!(
            k.class_of_domain("sub.zorg.example"),
            RecipientClass::Unmanaged
        );
        assert_eq!(k.class_of_domain("gmail.com"), RecipientClass::Personal);
        assert_eq!(k.class_of_domain("kpnmail.nl"), RecipientClass::Personal);
        assert_eq!(
            k.class_of_domain("eigen-isp.example"),
            RecipientClass::Personal
        );
        assert_eq!(k.class_of_domain("xs4all.nl"), RecipientClass::Unmanaged);
        assert_eq!(domain_of("A@Gmail.COM"), "gmail.com");
        assert_eq!(domain_of(""), "");
        assert_eq!(domain_of("postmaster"), "");
    }
}
