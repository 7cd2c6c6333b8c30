public import TwilioPayments

/// What each capture error means and how the agent helps the caller past it.
public enum ErrorGuidance {
    /// The error in plain words.
    public static func explanation(_ error: PaymentErrorType) -> String {
        switch error {
        case .inputTimeout: return "the caller did not press any key in time"
        case .invalidCardNumber: return "the card number was not valid"
        case .invalidCardType: return "this type of card is not accepted"
        case .invalidDate: return "the expiration date was not valid or the card has expired"
        case .invalidSecurityCode: return "the security code was not valid"
        case .invalidPostalCode: return "the postal code was not valid"
        case .invalidBankRoutingNumber: return "the bank routing number was not valid"
        case .invalidBankAccountNumber: return "the bank account number was not valid"
        case .invalidBankAccountType: return "the bank account type is not accepted"
        case .invalidCardNumberSecurityCodeCaptureSequence:
            return "the security code was asked for before the card number"
        case .inputMatchingFailed: return "the two entries did not match"
        case .sessionInProgress: return "another payment session is already running on this call"
        case .internalError: return "Twilio had an internal problem"
        case .other(let raw): return "Twilio reported \(raw)"
        }
    }

    /// What to tell the caller, in one or two sentences.
    public static func remedy(_ error: PaymentErrorType, item: PaymentItem?) -> String {
        let name = item?.spokenName ?? "information"
        switch error {
        case .inputTimeout:
            return
                "Check that the caller is ready and has the card at hand, then ask them to type the \(name) again without long pauses."
        case .invalidCardNumber:
            return "Ask the caller to check the long number on the front of the card and type all of its digits again."
        case .invalidCardType:
            return "Tell the caller this card type is not accepted and ask whether they have another card."
        case .invalidDate:
            return
                "Ask the caller to type the expiration date as four digits, month then year (MMYY), and to check the card has not expired."
        case .invalidSecurityCode:
            return
                "Ask the caller to type the 3-digit code on the back of the card (4 digits on the front for American Express)."
        case .invalidPostalCode:
            return "Ask the caller to type the postal code of the card's billing address."
        case .invalidBankRoutingNumber:
            return "Ask the caller to type the 9-digit routing number printed at the bottom left of a check."
        case .invalidBankAccountNumber:
            return "Ask the caller to check the account number and type it again."
        case .invalidBankAccountType:
            return "This account type is not accepted; ask whether the caller has another account."
        case .invalidCardNumberSecurityCodeCaptureSequence:
            return "Capture the card number first, then the security code."
        case .inputMatchingFailed:
            return "Ask the caller to type the \(name) again, carefully, the same way both times."
        case .sessionInProgress:
            return "Finish or cancel the running payment session before starting another."
        case .internalError, .other:
            return "Apologise to the caller and try the \(name) again; if it keeps failing, offer another way to pay."
        }
    }
}
