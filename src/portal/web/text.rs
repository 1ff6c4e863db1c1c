//! The portal's words, in Dutch (the default) and English. Every page takes its text from
//! here, so a page never mixes the two.

pub use crate::wire::web::Lang;

/// The portal's text of `key` in `lang`.
pub fn t(lang: Lang, key: &str) -> &'static str {
    let (nl, en) = match key {
        "switch" => ("English", "Nederlands"),
        "portal" => ("Beveiligde berichten", "Secure messages"),
        "index.title" => ("Beveiligd bericht ophalen", "Pick up a secure message"),
        "index.text" => (
            "Open de link uit de e-mail die u over uw bericht kreeg. Deze pagina vraagt \
                 nooit om een wachtwoord.",
            "Open the link in the e-mail you received about your message. This page never \
                 asks for a password.",
        ),
        "landing.title" => (
            "Er staat een beveiligd bericht voor u klaar",
            "A secure message is waiting for you",
        ),
        "landing.from" => ("Van", "From"),
        "landing.sent" => ("Verstuurd op", "Sent on"),
        "landing.until" => ("Te lezen tot en met", "Readable until"),
        "landing.sms" => (
            "Om te bewijzen dat u de ontvanger bent, sturen wij een code per sms naar uw \
                 nummer eindigend op",
            "To prove you are the recipient, we send a code by text message to your \
                 number ending in",
        ),
        "landing.email" => (
            "Om het bericht te openen sturen wij een code naar uw e-mailadres.",
            "To open the message we send a code to your e-mail address.",
        ),
        "landing.access" => (
            "U heeft de toegangscode nodig die de afzender u zelf (bijvoorbeeld \
                 telefonisch) geeft.",
            "You need the access code the sender gives you (by phone, for example).",
        ),
        "landing.button.send" => ("Stuur mij de code", "Send me the code"),
        "landing.button.continue" => ("Verder", "Continue"),
        "code.title" => ("Voer uw code in", "Enter your code"),
        "code.sent" => ("We hebben een code gestuurd.", "We have sent you a code."),
        "code.label" => ("Code", "Code"),
        "code.access.label" => ("Toegangscode", "Access code"),
        "code.button" => ("Openen", "Open"),
        "code.resend" => ("Stuur een nieuwe code", "Send a new code"),
        "code.wrong" => (
            "Deze code klopt niet. Pogingen over:",
            "That code is not right. Tries left:",
        ),
        "code.expired" => (
            "Deze code is verlopen of te vaak geprobeerd. Vraag een nieuwe code aan.",
            "This code has expired or was tried too often. Ask for a new code.",
        ),
        "code.toomany" => (
            "U heeft het afgelopen uur al drie codes gekregen. Een nieuwe code kan vanaf",
            "You have had three codes in the last hour. A new code is possible from",
        ),
        "code.failed" => (
            "De code kon nu niet worden verstuurd. Probeer het over enkele minuten opnieuw.",
            "The code could not be sent just now. Please try again in a few minutes.",
        ),
        "code.busy" => (
            "Een ogenblik, probeer het opnieuw.",
            "One moment, please try again.",
        ),
        "locked.title" => ("Toegang geblokkeerd", "Access locked"),
        "locked.text" => (
            "Er zijn te veel foute codes ingevoerd. De afzender is hiervan op de hoogte \
                 gebracht; neem contact op met de afzender.",
            "Too many wrong codes were entered. The sender has been told; please contact \
                 the sender.",
        ),
        "gone.title" => ("Bericht niet beschikbaar", "Message not available"),
        "gone.text" => (
            "Dit bericht is verlopen of ingetrokken, of de link is niet volledig. Neem \
                 contact op met de afzender.",
            "This message has expired or was withdrawn, or the link is incomplete. Please \
                 contact the sender.",
        ),
        "session.title" => ("Sessie verlopen", "Session expired"),
        "session.text" => (
            "Open de link uit uw e-mail opnieuw.",
            "Please open the link from your e-mail again.",
        ),
        "message.title" => ("Uw bericht", "Your message"),
        "message.subject" => ("Onderwerp", "Subject"),
        "message.attachments" => ("Bijlagen", "Attachments"),
        "message.original" => ("Het hele bericht (.eml)", "The whole message (.eml)"),
        "message.download" => ("Downloaden", "Download"),
        "message.reply" => ("Beantwoorden", "Reply"),
        "message.reply.text" => ("Uw antwoord", "Your reply"),
        "message.reply.files" => ("Bijlagen (optioneel)", "Attachments (optional)"),
        "message.reply.button" => ("Antwoord versturen", "Send reply"),
        "message.reply.sent" => (
            "Uw antwoord is beveiligd verstuurd naar de afzender.",
            "Your reply was sent securely to the sender.",
        ),
        "message.reply.failed" => (
            "Uw antwoord kon niet worden verstuurd.",
            "Your reply could not be sent.",
        ),
        "message.reply.toobig" => (
            "Uw antwoord is te groot; verstuur minder of kleinere bijlagen.",
            "Your reply is too large; send fewer or smaller attachments.",
        ),
        "message.logout" => ("Afmelden", "Log out"),
        "logout.title" => ("U bent afgemeld", "You are logged out"),
        "complete.title" => ("Ontvanger instellen", "Set up the recipient"),
        "complete.text" => (
            "Van deze ontvangers is geen mobiel nummer bekend. Geef het nummer op, of kies \
                 een toegangscode (minstens 6 letters of cijfers) die u de ontvanger zelf \
                 geeft, bijvoorbeeld telefonisch. Daarna gaat de melding uit.",
            "No mobile number is known for these recipients. Give the number, or choose \
                 an access code (at least 6 letters or digits) you pass on yourself, by phone \
                 for example. Then the recipient is notified.",
        ),
        "complete.phone" => ("Mobiel nummer", "Mobile number"),
        "complete.code" => ("of toegangscode", "or access code"),
        "complete.button" => ("Melding versturen", "Send notification"),
        "complete.done" => (
            "De ontvanger is ingelicht.",
            "The recipient has been notified.",
        ),
        "complete.none" => (
            "Alle ontvangers zijn ingelicht.",
            "Every recipient has been notified.",
        ),
        "complete.invalid" => (
            "Geef een geldig mobiel nummer (+31612345678) of een toegangscode van 6 tot 32 \
                 letters of cijfers.",
            "Give a valid mobile number (+31612345678) or an access code of 6 to 32 \
                 letters or digits.",
        ),
        "complete.notsent" => (
            "De melding kon nu niet worden verstuurd; probeer het opnieuw.",
            "The notification could not be sent just now; please try again.",
        ),
        "error.title" => ("Er ging iets mis", "Something went wrong"),
        "error.text" => (
            "Probeer het over enkele minuten opnieuw.",
            "Please try again in a few minutes.",
        ),
        "csrf.title" => ("Formulier verlopen", "Form expired"),
        "csrf.text" => (
            "Dit formulier is verlopen. Ga terug en probeer het opnieuw.",
            "This form has expired. Go back and try again.",
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
            include_str!("read.rs"),
            include_str!("complete.rs"),
        ]
        .concat();
        let (n, missing) = crate::wire::web::missing_words(&src, super::t);
        assert!(missing.is_empty(), "no text for {missing:?}");
        assert!(n > 20, "the pages use the table ({n} keys found)");
    }
}
