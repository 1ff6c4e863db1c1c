//! The portal's mail (issue 17 point 3): the recipient's notification and the sender's
//! notices. A notification names the sender, the organisation, the date, the expiry, a
//! reference, the portal's address and one link; never the subject (unless
//! `portal.show_subject`), the body, an attachment's name or any identifier; no HTML, no form,
//! no attachment. All go through the default lane, from `portal.from`.

use std::time::{Duration, UNIX_EPOCH};

use super::item::{Auth, Meta};
use super::seal::LinkSecret;
use super::service::Portal;
use crate::relay::received::rfc5322_now;

/// `2026-12-30` as the page's language writes a date: `30-12-2026` (nl) or `2026-12-30` (en).
pub fn date(unix: u64, lang: &str) -> String {
    let t = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string();
    let (y, m, d) = (&t[0..4], &t[5..7], &t[8..10]);
    if lang == "en" {
        format!("{y}-{m}-{d}")
    } else {
        format!("{d}-{m}-{y}")
    }
}

/// A header value in RFC 2047 form when it is not plain ASCII.
fn encoded(value: &str) -> String {
    let clean: String = value.chars().filter(|c| !c.is_control()).collect();
    if clean.is_ascii() {
        clean
    } else {
        format!(
            "=?utf-8?b?{}?=",
            data_encoding::BASE64.encode(clean.as_bytes())
        )
    }
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl Portal {
    pub(super) fn headers(&self, to: &str, subject: &str, id: &str, what: &str) -> String {
        let from = crate::wire::address::mailbox(&self.config.from);
        format!(
            "From: {} <{from}>\r\nTo: <{}>\r\nSubject: {}\r\nDate: {}\r\n\
             Message-ID: <{id}.{what}.{}@{}>\r\nAuto-Submitted: auto-generated\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n",
            encoded(&self.config.organisation),
            crate::wire::address::mailbox(to),
            encoded(subject),
            rfc5322_now(),
            crate::store::now_unix(),
            self.hostname,
        )
    }

    /// The link a recipient follows.
    pub fn link(&self, id: &str, link: &LinkSecret) -> String {
        format!("{}/r/{id}/{}", self.base(), link.0)
    }

    pub fn base(&self) -> &str {
        self.config.base_url.trim_end_matches('/')
    }

    /// The notification for one recipient.
    pub fn notification(&self, id: &str, meta: &Meta, to: &str, link: &LinkSecret) -> Vec<u8> {
        let org = one_line(&self.config.organisation);
        let sender = one_line(&meta.sender_name);
        let (created, expires) = (
            meta.created.get(..10).unwrap_or("").to_string(),
            self.expiry_of(meta),
        );
        let created_nl = created.split('-').rev().collect::<Vec<_>>().join("-");
        let how = meta.grantee(to).map(|g| &g.auth);
        let (how_nl, how_en) = match how {
            Some(Auth::Sms { hint, .. }) => (
                format!("een code die wij per sms sturen naar uw nummer eindigend op {hint}"),
                format!("a code we send by text message to your number ending in {hint}"),
            ),
            Some(Auth::AccessCode { .. }) => (
                "de toegangscode die de afzender u zelf geeft (bijvoorbeeld telefonisch)".into(),
                "the access code the sender gives you (by phone, for example)".into(),
            ),
            _ => (
                "een code die wij naar dit e-mailadres sturen".into(),
                "a code we send to this e-mail address".into(),
            ),
        };
        let subject_line = |lang: &str| match &meta.subject {
            Some(s) if lang == "nl" => format!("Onderwerp: {}\r\n", one_line(s)),
            Some(s) => format!("Subject: {}\r\n", one_line(s)),
            None => String::new(),
        };
        let mut m = self.headers(
            to,
            &format!("Beveiligd bericht van {org} / Secure message from {org}"),
            id,
            "notification",
        );
        m.push_str(&format!(
            "{sender} van {org} heeft u op {created_nl} een beveiligd bericht gestuurd.\r\n\
             {}U kunt het lezen tot en met {}.\r\n\r\n\
             Open het bericht via deze link:\r\n{}\r\n\r\n\
             Om het te openen heeft u {how_nl} nodig.\r\n\
             Vertrouwt u deze e-mail niet? Typ dan zelf {} in uw browser en\r\n\
             neem contact op met {org}. Referentie: {id}\r\n\r\n\
             -- English --\r\n\r\n\
             {sender} of {org} sent you a secure message on {created}.\r\n\
             {}You can read it until {}.\r\n\r\n\
             Open the message with this link:\r\n{}\r\n\r\n\
             To open it you need {how_en}.\r\n\
             Not sure this e-mail is genuine? Type {} into your browser yourself\r\n\
             and contact {org}. Reference: {id}\r\n",
            subject_line("nl"),
            date(expires, "nl"),
            self.link(id, link),
            self.base(),
            subject_line("en"),
            date(expires, "en"),
            self.link(id, link),
            self.base(),
        ));
        m.into_bytes()
    }

    fn expiry_of(&self, meta: &Meta) -> u64 {
        let created = humantime::parse_rfc3339(&meta.created)
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .unwrap_or_else(crate::store::now_unix);
        created + self.config.retention.as_secs()
    }

    /// Sends one message of the portal's through the default lane.
    pub async fn send(&self, to: &str, message: &[u8]) -> Result<(), String> {
        let lane = self.lanes.default_lane();
        crate::relay::dsn::send_as(&lane, &self.hostname, &self.config.from, to, message).await
    }

    /// The sender's notice: which recipients get their message through the portal, and the
    /// completion link when some wait for a number or an access code.
    pub fn sender_notice(
        &self,
        id: &str,
        meta: &Meta,
        notified: &[String],
        failed: &[String],
        completion: Option<&LinkSecret>,
    ) -> Vec<u8> {
        let mut m = self.headers(
            &meta.sender,
            "Uw bericht gaat via beveiligde ophaalpagina / Your message goes via secure pickup",
            id,
            "sent",
        );
        m.push_str(&format!(
            "Uw bericht (referentie {id}) bevat vertrouwelijke gegevens en is niet per gewone\r\n\
             e-mail verstuurd, maar via de beveiligde ophaalpagina van {}.\r\n\
             Your message (reference {id}) holds confidential data: it was not sent by plain\r\n\
             e-mail but through the secure pickup portal.\r\n\r\n",
            one_line(&self.config.organisation)
        ));
        for r in notified {
            m.push_str(&format!(
                "  <{r}>: bericht klaargezet, ontvanger ingelicht / notified\r\n"
            ));
        }
        for r in failed {
            m.push_str(&format!(
                "  <{r}>: kon niet worden ingelicht, stuur opnieuw / could not be notified, \
                 send again\r\n"
            ));
        }
        let pending: Vec<&str> = meta
            .recipients
            .iter()
            .filter(|g| matches!(g.auth, Auth::Pending { .. }))
            .map(|g| g.address.as_str())
            .collect();
        if let (Some(c), false) = (completion, pending.is_empty()) {
            for r in &pending {
                m.push_str(&format!("  <{r}>: wacht op u / waits for you\r\n"));
            }
            m.push_str(&format!(
                "\r\nVan deze ontvangers is geen mobiel nummer bekend. Geef via deze link het\r\n\
                 nummer op of kies een toegangscode die u de ontvanger zelf (telefonisch)\r\n\
                 geeft; pas dan gaat de melding uit. De link werkt tot {}.\r\n\
                 No mobile number is known for these recipients. Use this link to give it, or\r\n\
                 to choose an access code you pass on yourself (by phone); only then is the\r\n\
                 recipient notified. The link works until {}.\r\n\r\n{}/c/{id}/{}\r\n",
                date(meta.completion_expires.unwrap_or_default(), "nl"),
                date(meta.completion_expires.unwrap_or_default(), "en"),
                self.base(),
                c.0
            ));
        }
        m.into_bytes()
    }

    /// Tells the sender something happened to one recipient's copy (read, locked).
    pub async fn tell_sender(&self, id: &str, meta: &Meta, recipient: &str, what: &'static str) {
        let (nl, en) = match what {
            "read" => ("heeft het bericht geopend", "opened the message"),
            _ => (
                "is geblokkeerd na 10 foute codes; neem contact op met de ontvanger",
                "was locked out after 10 wrong codes; please contact the recipient",
            ),
        };
        let mut m = self.headers(
            &meta.sender,
            &format!("Beveiligd bericht {id}: {en}"),
            id,
            what,
        );
        m.push_str(&format!(
            "<{recipient}> {nl} (referentie {id}).\r\n<{recipient}> {en} (reference {id}).\r\n"
        ));
        if let Err(e) = self.send(&meta.sender, m.as_bytes()).await {
            tracing::warn!(portal = %id, error = %e, "could not send the sender a portal notice");
        }
    }
}

/// An item expired before every recipient could be notified: the sender hears of it.
pub async fn tell_sender_unfinished(portal: &Portal, id: &str, meta: &Meta) {
    let mut m = portal.headers(
        &meta.sender,
        &format!("Beveiligd bericht {id} verlopen / expired"),
        id,
        "expired",
    );
    m.push_str(&format!(
        "Uw bericht (referentie {id}) is verlopen voordat alle ontvangers konden worden\r\n\
         ingelicht; het is verwijderd. Stuur het zo nodig opnieuw.\r\n\
         Your message (reference {id}) expired before every recipient could be notified;\r\n\
         it has been deleted. Send it again if needed.\r\n"
    ));
    for g in meta.recipients.iter().filter(|g| !g.notified) {
        m.push_str(&format!("  <{}>\r\n", g.address));
    }
    if let Err(e) = portal.send(&meta.sender, m.as_bytes()).await {
        tracing::warn!(portal = %id, error = %e, "could not tell the sender an item expired");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_and_encoded_words() {
        assert_eq!(super::date(1_798_675_200, "nl"), "31-12-2026");
        assert_eq!(super::date(1_798_675_200, "en"), "2026-12-31");
        assert_eq!(super::encoded("Plain"), "Plain");
        assert_eq!(super::encoded("Zorg\u{eb}"), "=?utf-8?b?Wm9yZ8Or?=");
    }
}
