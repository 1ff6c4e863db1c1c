//! A recipient's reply (issue 17 point 5): text and attachments, size-capped, built as a MIME
//! message by lettre, inspected like any message (the findings are audited, masked), and
//! delivered only to the original sender, through the default lane. The reply never goes to
//! an address the recipient chooses.

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Attachment, Body, Mailbox, MultiPart, SinglePart};

use super::access::{AccessError, Opened, Visit};
use super::service::{EventDetail, Portal, PortalError};

/// One file the recipient attached.
pub struct Upload {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Replied {
    Sent,
    /// Over `portal.max_reply_bytes`.
    TooBig,
    /// The default lane did not take it (try again).
    NotSent,
}

impl Portal {
    /// Sends the reply of an open visit to the item's sender.
    pub async fn reply(
        &self,
        visit: &Visit,
        opened: &Opened,
        text: &str,
        files: Vec<Upload>,
    ) -> Result<Replied, AccessError> {
        let (meta, original) = (&opened.meta, &opened.raw[..]);
        if !visit.open {
            return Err(AccessError::Gone);
        }
        let size = text.len() + files.iter().map(|f| f.bytes.len()).sum::<usize>();
        if size as u64 > self.config.max_reply_bytes {
            return Ok(Replied::TooBig);
        }
        let parsed = mail_parser::MessageParser::default().parse_headers(original);
        let subject = parsed
            .as_ref()
            .and_then(|m| m.subject())
            .map(|s| format!("Re: {s}"))
            .unwrap_or_else(|| format!("Antwoord / Reply ({})", visit.item));
        let corrupt = || AccessError::Portal(PortalError::Corrupt(visit.item.clone()));
        let from: Mailbox = format!(
            "\"{} via {}\" <{}>",
            visit.recipient.replace(['"', '\\'], ""),
            self.config.organisation.replace(['"', '\\'], ""),
            self.config.from
        )
        .parse()
        .map_err(|_| corrupt())?;
        let to: Mailbox = meta.sender.parse().map_err(|_| corrupt())?;
        let mut builder = lettre::Message::builder()
            .from(from)
            .to(to)
            .subject(subject)
            .message_id(Some(format!(
                "<{}.reply.{}@{}>",
                visit.item,
                crate::store::now_unix(),
                self.hostname
            )));
        if let Some(id) = parsed.as_ref().and_then(|m| m.message_id()) {
            builder = builder
                .in_reply_to(format!("<{id}>"))
                .references(format!("<{id}>"));
        }
        let note = format!(
            "Antwoord van <{}> via de beveiligde ophaalpagina (referentie {}).\n\
             Reply from <{}> through the secure pickup portal (reference {}).\n\n",
            visit.recipient, visit.item, visit.recipient, visit.item
        );
        let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(format!("{note}{text}")));
        let attached = files.len();
        for f in files {
            let kind = ContentType::parse(&f.content_type).unwrap_or_else(|_| {
                ContentType::parse("application/octet-stream").expect("literal")
            });
            // Always base64: lettre would send bytes below 128 as 7bit, NULs and bare line
            // ends included, which no MTA has to carry unchanged.
            let body = Body::new_with_encoding(f.bytes, ContentTransferEncoding::Base64)
                .map_err(|_| corrupt())?;
            parts = parts.singlepart(Attachment::new(f.name).body(body, kind));
        }
        let message = builder.multipart(parts).map_err(|_| corrupt())?.formatted();
        let inspector = self.inspector.clone();
        let raw = message.clone();
        let inspection = tokio::task::spawn_blocking(move || inspector.inspect(&raw))
            .await
            .ok();
        let detail = match &inspection {
            Some(i) => format!(
                "{} bytes, {attached} attachments; inspection: score {}, {}",
                message.len(),
                i.score,
                if i.detectors().is_empty() {
                    "no findings".to_string()
                } else {
                    i.detectors().join(", ")
                }
            ),
            None => format!(
                "{} bytes, {attached} attachments; not inspected",
                message.len()
            ),
        };
        if let Err(e) = self.send(&meta.sender, &message).await {
            tracing::warn!(portal = %visit.item, error = %e, "a portal reply could not be sent");
            return Ok(Replied::NotSent);
        }
        self.event(
            &visit.item,
            meta,
            "replied",
            EventDetail {
                detail: Some(detail),
                ..EventDetail::of(&visit.recipient)
            },
        )
        .await;
        Ok(Replied::Sent)
    }
}
