//! The reviewers' pages' words, in Dutch (the default) and English. Every page takes its
//! text from here, so a page never mixes the two.

use crate::wire::web::Lang;

/// The text of `key` in `lang` ("?" for a key that is not here: a test keeps that from
/// happening).
pub fn t(lang: Lang, key: &str) -> &'static str {
    let (nl, en) = match key {
        "switch" => ("English", "Nederlands"),
        "app" => ("Quarantaine", "Quarantine"),
        "menu" => ("Account en taal", "Account and language"),
        "logout" => ("Afmelden", "Log out"),
        "login.title" => ("Aanmelden", "Log in"),
        "login.name" => ("Gebruikersnaam", "User name"),
        "login.password" => ("Wachtwoord", "Password"),
        "login.code" => (
            "Code uit uw authenticator-app",
            "Code from your authenticator app",
        ),
        "login.submit" => ("Aanmelden", "Log in"),
        "login.wrong" => (
            "Gebruikersnaam, wachtwoord of code klopt niet.",
            "User name, password or code is wrong.",
        ),
        "login.reused" => (
            "Deze code is al gebruikt. Wacht op de volgende code.",
            "This code was used already. Wait for the next one.",
        ),
        "login.locked" => (
            "Te veel mislukte pogingen voor dit account. Probeer het over 15 minuten opnieuw.",
            "Too many failed attempts for this account. Try again in 15 minutes.",
        ),
        "login.local" => ("Of met een lokaal account", "Or with a local account"),
        "oidc.login" => ("Aanmelden met", "Log in with"),
        "oidc.failed" => ("Aanmelden mislukt", "Login failed"),
        "oidc.refused" => (
            "Aanmelden is niet gelukt, of uw account heeft geen rol in Sluis. Vraag uw beheerder om toegang.",
            "The login did not succeed, or your account has no role in Sluis. Ask your administrator for access.",
        ),
        "oidc.unavailable" => (
            "De aanmeldserver antwoordt nu niet. Probeer het over enkele minuten opnieuw.",
            "The login server does not answer right now. Try again in a few minutes.",
        ),
        "oidc.welcome" => ("Aangemeld", "Signed in"),
        "oidc.signed" => ("U bent aangemeld als", "You are signed in as"),
        "oidc.continue" => ("Verder naar de quarantaine", "Continue to the quarantine"),
        "audit.title" => ("Auditlog", "Audit log"),
        "audit.chain" => ("Keten van het auditlog", "The audit log's chain"),
        "audit.verify" => ("Nu controleren", "Verify now"),
        "audit.intact" => ("Intact", "Intact"),
        "audit.damaged" => ("BESCHADIGD", "DAMAGED"),
        "audit.unverified" => (
            "Nog niet gecontroleerd sinds de start.",
            "Not verified since the start.",
        ),
        "audit.transaction" => (
            "Transactie of quarantaine-id",
            "Transaction or quarantine id",
        ),
        "audit.recipient" => ("Ontvanger", "Recipient"),
        "audit.decision" => ("Besluit of handeling", "Decision or action"),
        "audit.from" => ("Vanaf (datum)", "From (date)"),
        "audit.to" => ("Tot en met (datum)", "To (date)"),
        "audit.search" => ("Zoeken", "Search"),
        "audit.export" => (
            "Deze selectie downloaden als CSV",
            "Download this selection as CSV",
        ),
        "audit.records" => ("regels", "records"),
        "audit.time" => ("Tijd", "Time"),
        "audit.event" => ("Soort", "Kind"),
        "audit.reviewer" => ("Beoordelaar", "Reviewer"),
        "audit.baddate" => ("Een datum is JJJJ-MM-DD.", "A date is YYYY-MM-DD."),
        "nav.audit" => ("Auditlog", "Audit log"),
        "nav.quarantine" => ("Quarantaine", "Quarantine"),
        "sender.title" => ("Uw vastgehouden bericht", "Your held message"),
        "sender.reference" => ("Kenmerk", "Reference"),
        "sender.held" => ("Niet verstuurd aan", "Not sent to"),
        "sender.invalid" => ("Deze link is niet geldig.", "This link is not valid."),
        "sender.expired" => (
            "Deze link is verlopen. Neem contact op met uw privacy- of securityfunctionaris.",
            "This link has expired. Contact your privacy or security officer.",
        ),
        "sender.decided" => (
            "Over dit bericht is al besloten; de link werkt niet meer.",
            "This message has been decided; the link no longer works.",
        ),
        "sender.report" => (
            "Dit bericht bevat geen patiëntgegevens",
            "This message holds no patient data",
        ),
        "sender.comment" => ("Toelichting", "Explanation"),
        "sender.report.button" => ("Melden", "Report"),
        "sender.nocomment" => ("Geef een toelichting.", "Give an explanation."),
        "sender.reported" => (
            "U heeft gemeld dat dit bericht geen patiëntgegevens bevat. Een beoordelaar kijkt ernaar.",
            "You reported that this message holds no patient data. A reviewer will look at it.",
        ),
        "sender.thanks" => (
            "Dank u. Uw melding is vastgelegd; een beoordelaar kijkt ernaar.",
            "Thank you. Your report was recorded; a reviewer will look at it.",
        ),
        "sender.override" => ("Toch versturen", "Send it anyway"),
        "sender.override.text" => (
            "Uw organisatie staat toe dat u dit bericht toch verstuurt, met een onderbouwing die wordt vastgelegd. Het gaat alleen via een verbinding die het vereiste niveau haalt.",
            "Your organisation lets you send this message anyway, with a justification that is recorded. It goes only over a connection that meets the required level.",
        ),
        "sender.justification" => (
            "Onderbouwing (wordt vastgelegd)",
            "Justification (recorded)",
        ),
        "sender.override.button" => ("Toch versturen", "Send anyway"),
        "sender.override.no" => (
            "Voor dit bericht staat uw organisatie dat niet toe.",
            "Your organisation does not allow that for this message.",
        ),
        "sender.nojustification" => ("Geef een onderbouwing.", "Give a justification."),
        "sender.sent" => (
            "Aangenomen voor aflevering door:",
            "Accepted for delivery by:",
        ),
        "item.reports" => (
            "De afzender meldt: geen patiëntgegevens",
            "The sender reports: no patient data",
        ),
        "portal.title" => (
            "Via de beveiligde ophaalportal",
            "Via the secure pickup portal",
        ),
        "portal.button" => (
            "Via de ophaalportal versturen",
            "Send via the pickup portal",
        ),
        "portal.none" => (
            "Er is geen ophaalportal ingesteld.",
            "There is no pickup portal configured.",
        ),
        "portal.nothing" => (
            "Er staat geen ontvanger meer vast.",
            "No recipient is held any more.",
        ),
        "portal.sealed" => (
            "Versleuteld in de ophaalportal gezet als",
            "Sealed into the pickup portal as",
        ),
        "portal.notified" => ("bericht gestuurd", "notified"),
        "portal.waiting" => (
            "wacht op het nummer of de toegangscode van de afzender",
            "waits for the sender's number or access code",
        ),
        "portal.failed" => (
            "bericht niet verstuurd; blijft vastgehouden",
            "not notified; stays held",
        ),
        "portal.offer" => (
            "De ontvangende server haalt het vereiste niveau niet. U kunt het bericht wel via de beveiligde ophaalportal laten ophalen.",
            "The receiving server cannot meet the required level. You can have the message picked up through the secure portal instead.",
        ),
        "forbidden.title" => ("Geen toegang", "Forbidden"),
        "forbidden.text" => (
            "Uw rol geeft geen toegang tot deze handeling.",
            "Your role does not allow this action.",
        ),
        "csrf.title" => ("Formulier verlopen", "Form expired"),
        "csrf.text" => (
            "Dit formulier is verlopen. Ga terug, laad de pagina opnieuw en probeer het nog eens.",
            "This form has expired. Go back, reload the page and try again.",
        ),
        "notfound.title" => ("Niet gevonden", "Not found"),
        "notfound.text" => ("Deze pagina bestaat niet.", "This page does not exist."),
        "error.title" => ("Er ging iets mis", "Something went wrong"),
        "error.text" => (
            "Probeer het over enkele minuten opnieuw.",
            "Please try again in a few minutes.",
        ),
        "list.title" => ("Vastgehouden berichten", "Held messages"),
        "list.caption" => ("Nieuwste eerst", "Newest first"),
        "list.any" => ("(alle)", "(any)"),
        "list.rule" => ("Regel", "Rule"),
        "list.class" => ("Soort ontvanger", "Recipient class"),
        "list.detector" => ("Gevonden gegeven", "Detector"),
        "list.domain" => ("Domein van de afzender", "Sender domain"),
        "list.older" => ("Langer vastgehouden dan", "Held longer than"),
        "list.filter" => ("Filteren", "Filter"),
        "list.page" => ("Pagina", "Page"),
        "list.items" => ("berichten", "messages"),
        "list.prev" => ("Vorige pagina", "Previous page"),
        "list.next" => ("Volgende pagina", "Next page"),
        "list.none" => ("Geen berichten.", "No messages."),
        "list.held" => ("Vastgehouden op", "Held at"),
        "list.sender" => ("Afzender", "Sender"),
        "list.recipients" => ("Ontvangers", "Recipients"),
        "list.findings" => ("Bevindingen", "Findings"),
        "item.title" => ("Bericht", "Message"),
        "item.gone" => (
            "Dit bericht is er niet (meer): vrijgegeven, afgewezen of verlopen.",
            "This message is not (or no longer) here: released, rejected or expired.",
        ),
        "item.refused" => ("Niet uitgevoerd", "Not done"),
        "item.settled" => ("Al afgehandeld", "Settled already"),
        "item.held" => ("Vastgehouden op", "Held at"),
        "item.client" => ("Aangeleverd door", "Submitted by"),
        "item.transaction" => ("Transactie", "Transaction"),
        "item.size" => ("Grootte (bytes)", "Size (bytes)"),
        "item.score" => ("score", "score"),
        "item.findings" => ("Bevindingen (gemaskeerd)", "Findings (masked)"),
        "item.recipients" => ("Ontvangers", "Recipients"),
        "item.reasons" => ("Waarom", "Why"),
        "item.require" => ("Vrijgeven vereist", "Release requires"),
        "item.posture" => (
            "Beveiliging van de ontvangende server",
            "Receiving server's security",
        ),
        "item.assessed" => ("vastgesteld op", "assessed at"),
        "item.preview" => ("Inhoud", "Content"),
        "item.attachments" => ("Bijlagen", "Attachments"),
        "item.masked" => (
            "Alle cijfers zijn gemaskeerd. Het origineel tonen is een aparte handeling die wordt vastgelegd.",
            "Every digit is masked. Showing the original is a separate action, which is recorded.",
        ),
        "item.actions" => ("Handelingen", "Actions"),
        "item.reason" => ("Reden (wordt vastgelegd)", "Reason (recorded)"),
        "item.noreason" => (
            "Geef een reden op (verplicht volgens NEN 7513).",
            "Give a reason (required by NEN 7513).",
        ),
        "item.back" => ("Terug naar het bericht", "Back to the message"),
        "item.tolist" => ("Terug naar de lijst", "Back to the list"),
        "reveal.title" => ("Origineel tonen", "Show the original"),
        "reveal.button" => ("Origineel tonen", "Show the original"),
        "reveal.audited" => (
            "Het tonen van dit origineel is vastgelegd met uw naam en reden.",
            "Showing this original was recorded with your name and reason.",
        ),
        "reveal.headers" => ("Kopregels", "Headers"),
        "reveal.text" => ("Tekst", "Text"),
        "reveal.cut" => (
            "De tekst is ingekort; het volledige bericht staat in de quarantaine.",
            "The text was shortened; the whole message is in the quarantine.",
        ),
        "release.title" => ("Vrijgeven", "Release"),
        "release.button" => ("Vrijgeven", "Release"),
        "release.accepted" => (
            "aangenomen voor aflevering door lane",
            "accepted for delivery by lane",
        ),
        "release.failed" => ("niet aangenomen door lane", "not accepted by lane"),
        "release.level" => ("met niveau", "with level"),
        "release.pending" => (
            "Aangenomen is nog niet afgeleverd: het bericht blijft als 'vrijgegeven, in afwachting' staan tot het afleverbericht binnen is.",
            "Accepted is not yet delivered: the item stays as 'released, pending' until the delivery report arrives.",
        ),
        "release.still" => ("Nog vastgehouden:", "Still held:"),
        "reject.title" => ("Afwijzen", "Reject"),
        "reject.button" => ("Afwijzen", "Reject"),
        "reject.done" => (
            "Afgewezen: dit bericht wordt nooit afgeleverd.",
            "Rejected: this message will never be delivered.",
        ),
        _ => ("?", "?"),
    };
    lang.pick(nl, en)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_key_a_page_uses_has_both_languages() {
        let src = [
            include_str!("pages.rs"),
            include_str!("item.rs"),
            include_str!("act.rs"),
            include_str!("session.rs"),
            include_str!("oidc.rs"),
            include_str!("audit.rs"),
            include_str!("sender.rs"),
            include_str!("via_portal.rs"),
        ]
        .concat();
        let (n, missing) = crate::wire::web::missing_words(&src, super::t);
        assert!(missing.is_empty(), "no text for {missing:?}");
        assert!(n > 40, "the pages use the table ({n} keys found)");
    }
}
