//! TXT records with meaning for mail security: the MTA-STS announcement (RFC 8461 §3.1) and
//! the NTA 7516 record. Pure parsing; the lookups live in `dns`.
//!
//! The NTA 7516 record is a hint of what a domain claims, never proof of anything: anyone can
//! publish it. It is shown with the evidence and may inform a policy, nothing more.

use serde::Serialize;

/// `_mta-sts.<domain>` TXT: `v=STSv1; id=<1-32 alphanumerics>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MtaStsRecord {
    pub id: String,
}

/// Parses the `_mta-sts` TXT records of a domain. RFC 8461: exactly one record starting with
/// `v=STSv1`; other TXT records are ignored; more than one STS record is an error.
pub fn mta_sts(records: &[String]) -> Result<Option<MtaStsRecord>, String> {
    let sts: Vec<&String> = records
        .iter()
        .filter(|r| r.trim_start().starts_with("v=STSv1"))
        .collect();
    match sts.as_slice() {
        [] => Ok(None),
        [one] => {
            let id = one
                .split(';')
                .map(str::trim)
                .find_map(|f| f.strip_prefix("id="))
                .ok_or_else(|| "v=STSv1 record without id".to_string())?;
            if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!("id {id:?} is not 1 to 32 letters and digits"));
            }
            Ok(Some(MtaStsRecord { id: id.to_string() }))
        }
        _ => Err(format!(
            "{} v=STSv1 records where RFC 8461 allows one",
            sts.len()
        )),
    }
}

/// The NTA 7516 record at a domain's apex, in either published format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nta7516Record {
    /// "NTA7516-1" (current format) or "NTA7516" (older).
    pub version: String,
    pub start: Option<String>,
    pub end: Option<String>,
    pub provider: Option<String>,
    /// (preference, host) from `ntamx=`; empty means "the normal MX hosts".
    pub mx: Vec<(u16, String)>,
}

/// Parses the first NTA 7516 record among a domain's TXT records.
///   current: `v=NTA7516-1;startdate=2019-06;enddate=2023-07;provider=X;ntamx=10 mx.example`
///   older:   `v=NTA7516;version:1;expire:2023-07` (fields written key:value)
pub fn nta7516(records: &[String]) -> Option<Nta7516Record> {
    let record = records
        .iter()
        .find(|r| r.trim_start().to_ascii_lowercase().starts_with("v=nta7516"))?;
    let mut fields = record.split(';').map(str::trim).filter(|f| !f.is_empty());
    let version = fields.next()?.split_once('=')?.1.trim().to_string();
    let mut out = Nta7516Record {
        version,
        start: None,
        end: None,
        provider: None,
        mx: Vec::new(),
    };
    for field in fields {
        let Some((key, value)) = field.split_once(['=', ':']) else {
            continue;
        };
        let value = value.trim().to_string();
        match key.trim().to_ascii_lowercase().as_str() {
            "startdate" => out.start = Some(value),
            "enddate" | "expire" => out.end = Some(value),
            "provider" => out.provider = Some(value),
            "ntamx" => {
                let mut parts = value.split_whitespace();
                if let (Some(pref), Some(host)) = (parts.next(), parts.next())
                    && let Ok(pref) = pref.parse()
                {
                    out.mx
                        .push((pref, host.trim_end_matches('.').to_ascii_lowercase()));
                }
            }
            _ => {}
        }
    }
    out.mx.sort();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn mta_sts_record() {
        assert_eq!(
            mta_sts(&v(&["v=spf1 -all", "v=STSv1; id=20240101T000000"])),
            Ok(Some(MtaStsRecord {
                id: "20240101T000000".into()
            }))
        );
        assert_eq!(mta_sts(&v(&["v=spf1 -all"])), Ok(None));
        assert!(mta_sts(&v(&["v=STSv1; id=a", "v=STSv1; id=b"])).is_err());
        assert!(mta_sts(&v(&["v=STSv1;"])).is_err());
        assert!(mta_sts(&v(&["v=STSv1; id=not-alnum!"])).is_err());
    }

    #[test]
    fn nta7516_both_formats() {
        let r = nta7516(&v(&[
            "v=spf1 mx -all",
            "v=NTA7516-1;startdate=2019-06;enddate=2027-07;provider=Zorgmail;ntamx=20 b.example.;ntamx=10 a.example",
        ]))
        .unwrap();
        assert_eq!(r.version, "NTA7516-1");
        assert_eq!(
            (r.start.as_deref(), r.end.as_deref()),
            (Some("2019-06"), Some("2027-07"))
        );
        assert_eq!(r.provider.as_deref(), Some("Zorgmail"));
        assert_eq!(
            r.mx,
            vec![(10, "a.example".into()), (20, "b.example".into())]
        );
        let old = nta7516(&v(&["v=NTA7516;version:1;expire:2023-07"])).unwrap();
        assert_eq!(
            (old.version.as_str(), old.end.as_deref()),
            ("NTA7516", Some("2023-07"))
        );
        assert_eq!(nta7516(&v(&["v=spf1 -all"])), None);
    }
}
