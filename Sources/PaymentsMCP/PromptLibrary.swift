public import PaymentFlow
import TwilioPayments

/// The guidance texts behind the server's MCP prompts: complete instructions for a voice agent
/// (naming this server's tools), tailored to a session's state when one is given.
public enum PromptLibrary {
    private static let neverAloud = """
        Never ask the caller to say card or bank digits aloud, and never repeat digits back: the caller types them on the \
        phone keypad, Twilio captures them securely, and you only ever see masked values such as xxxxxxxxxxxx1111. \
        If the caller starts reading digits aloud, stop them politely and ask them to use the keypad instead.
        """

    /// The text of `prompt`, for `session` when there is one.
    public static func text(
        _ prompt: GuidanceTopic, session: PaymentSession?, waitSeconds: Double = PaymentsMCP.defaultMaximumWaitSeconds
    ) -> String {
        var parts: [String] = []
        switch prompt {
        case .startCapture:
            parts.append(
                """
                You are about to take a payment on this call. First make sure the caller wants to pay now and has their \
                \(session?.configuration.paymentMethod == .achDebit ? "bank details (routing and account number)" : "card") at hand. \
                Tell them: "I'll now connect you to our secure payment system. You'll enter your details on your phone's \
                keypad; I won't hear or see them." Then call startPaymentCapture with the call SID \
                (and the amount, if this is a charge). If the caller hesitates, explain that the \
                details go straight to the payment processor and are never stored or seen by the agent; offer to wait while \
                they fetch the card.
                """)
        case .cardNumber:
            parts.append(
                """
                Ask the caller to type the long card number on the front of the card using the keypad, then press the pound \
                (#) key. Call captureCardNumber at the same moment. While they type, stay quiet; the status shows the digits \
                arriving as x's. If they ask where to find it: it is the 15 or 16 digits on the front of the card. When the \
                number is complete, the status shows the masked number (last four digits) and the card type; you may confirm \
                "a Visa ending in 1111".
                """)
        case .securityCode:
            parts.append(
                """
                Ask the caller to type the security code, then press pound (#): the 3 digits on the back of the card, or 4 \
                digits on the front for American Express. Call captureSecurityCode. The status only ever shows x's for it; \
                never read it back or ask for it aloud. The card number must be captured first.
                """)
        case .expirationDate:
            parts.append(
                """
                Ask the caller to type the card's expiration date as four digits, month then year (for example 0 8 2 7 for \
                August 2027), then press pound (#). Call captureExpirationDate. If they are unsure, it is printed on the front \
                of the card as MM/YY.
                """)
        case .postalCode:
            parts.append(
                """
                Ask the caller to type the postal (ZIP) code of the card's billing address on the keypad, then press pound \
                (#). Call capturePostalCode.
                """)
        case .bankAccount:
            parts.append(
                """
                For a bank (ACH) payment you need two numbers, typed on the keypad and followed by pound (#): first the \
                9-digit routing number (bottom left of a check) with captureBankRoutingNumber, then the account number with \
                captureBankAccountNumber. The account number is shown masked; never repeat it.
                """)
        case .finishCapture:
            parts.append(
                """
                All the required details have been captured. Tell the caller what will happen \
                ("I'll now submit the payment" or "I'll now save your card"), get their go-ahead, then call \
                completePaymentCapture. While it processes, tell them it takes a moment. Do not call it while an item is still \
                being typed or missing: the server will refuse and name what is missing.
                """)
        case .completion:
            parts.append(
                """
                The payment has been processed. Thank the caller and confirm the outcome in one sentence; you may give the \
                confirmation code if there is one, and the card type and last four digits. Do not read out a token. Then \
                return to the rest of the conversation.
                """)
        case .error:
            parts.append(
                """
                Something went wrong with the payment. Stay calm and apologetic, explain in plain words what happened \
                (without technical codes), and offer the remedy: usually typing the item again, trying another card, or \
                another way to pay. Items can be re-captured any number of times while the session is active; a finished or \
                cancelled session needs a new startPaymentCapture.
                """)
        }
        parts.append(neverAloud)
        if let session { parts.append(stateSummary(for: prompt, session: session, waitSeconds: waitSeconds)) }
        return parts.joined(separator: "\n\n")
    }

    /// The session-specific paragraph appended to a prompt.
    static func stateSummary(for prompt: GuidanceTopic, session: PaymentSession, waitSeconds: Double) -> String {
        var lines = [
            "Current state of payment \(session.paymentSID?.rawValue ?? "(starting)") on call \(session.callSID): \(session.phase.name)."
        ]
        let captured = PaymentItem.allCases.compactMap { item -> String? in
            guard case .captured(let masked) = session.state(item) else { return nil }
            return "\(item.spokenName) \(masked ?? "(captured)")"
        }
        if !captured.isEmpty { lines.append("Captured: \(captured.joined(separator: ", ")).") }
        if let card = session.cardType { lines.append("Card type: \(card).") }
        let missing = session.missingItems.map(\.spokenName)
        if !missing.isEmpty, !session.phase.isFinished {
            lines.append("Still needed: \(missing.joined(separator: ", ")).")
        }
        if prompt == .error {
            for item in PaymentItem.allCases {
                if case .failed(let error) = session.state(item) {
                    let attempts = session.progress(item).failedAttempts
                    lines.append(
                        "The \(item.spokenName) failed \(attempts) time\(attempts == 1 ? "" : "s"): \(ErrorGuidance.explanation(error)). "
                            + ErrorGuidance.remedy(error, item: item))
                }
            }
            if case .callEnded(let failure) = session.phase {
                lines.append("The call has ended (\(failure.reason)); nothing more can be captured on it.")
            }
            if case .failed(let failure) = session.phase {
                lines.append("The session failed: \(failure.reason).")
                if let code = failure.payErrorCode, let entry = TwilioErrorCatalog.entries[code] {
                    lines.append("Error \(code): \(entry.meaning); \(entry.remedy).")
                }
            }
            if let requestError = session.lastRequestError { lines.append("Last request error: \(requestError).") }
        }
        lines.append("Next step: \(MCPNextStep(session.nextStep, waitSeconds: waitSeconds).instruction)")
        return lines.joined(separator: "\n")
    }
}
