public import Foundation
import TwilioPayments

/// Why a stored session could not be read back: it was written by a newer format, or is not a
/// session at all. The store reports it as unavailable rather than guess.
public struct PaymentSessionStorageError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

extension PaymentSession {
    /// The version of ``storageJSON()``'s format. A reader refuses a newer one (a replica of an
    /// older build behind a newer one must not rewrite what it does not understand).
    public static let storageFormat = 3

    /// The session as JSON, for a store that keeps it outside this process: every field, with
    /// the item values masked again (``sanitized()``), keys sorted, dates as seconds since the
    /// reference date (exact: a read gives back an equal session).
    public func storageJSON() -> Data {
        let stored = StoredSession(sanitized())
        if let plain = stored.plainJSON() { return Data(plain) }
        return Self.foundationJSON(stored)
    }

    /// `JSONEncoder`'s writing of `stored`: the reference the plain writer is tested against, and
    /// the writer of strings that need escapes.
    static func foundationJSON(_ stored: StoredSession) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Every member is a string, number, boolean, array or object: encoding cannot fail.
        return (try? encoder.encode(stored)) ?? Data("{}".utf8)
    }

    /// The session ``storageJSON()`` wrote, with its values masked again on the way in.
    public init(storageJSON data: Data) throws(PaymentSessionStorageError) {
        let plain = data.withUnsafeBytes { bytes in
            StorageJSON.parse(bytes).flatMap { try? StoredSession(reading: $0) }
        }
        let stored: StoredSession
        if let plain { stored = plain } else { stored = try Self.foundationStored(data) }
        self = try stored.session().sanitized()
    }

    /// The session in `text` (a `jsonb` column as PostgreSQL gives it back), as
    /// ``init(storageJSON:)-(Data)`` reads it, without copying the text into `Data` first.
    public init(storageJSON text: String) throws(PaymentSessionStorageError) {
        var text = text
        let plain = text.withUTF8 { bytes in
            StorageJSON.parse(UnsafeRawBufferPointer(bytes)).flatMap { try? StoredSession(reading: $0) }
        }
        let stored: StoredSession
        if let plain { stored = plain } else { stored = try Self.foundationStored(Data(text.utf8)) }
        self = try stored.session().sanitized()
    }

    /// The session as `JSONEncoder` writes it (the reference ``storageJSON()`` is measured and
    /// tested against; the same bytes).
    @_spi(StorageReference) public func foundationStorageJSON() -> Data {
        Self.foundationJSON(StoredSession(sanitized()))
    }

    /// The session in `data` as `JSONDecoder` reads it (the reference ``init(storageJSON:)-(Data)``
    /// is measured and tested against).
    @_spi(StorageReference) public init(foundationStorageJSON data: Data) throws(PaymentSessionStorageError) {
        self = try Self.foundationStored(data).session().sanitized()
    }

    /// `JSONDecoder`'s reading of `data`: the reference the plain reader is tested against, and
    /// the reader (or refuser) of whatever it steps aside for.
    static func foundationStored(_ data: Data) throws(PaymentSessionStorageError) -> StoredSession {
        do {
            return try JSONDecoder().decode(StoredSession.self, from: data)
        } catch {
            throw PaymentSessionStorageError("a stored payment session is not readable: \(error)")
        }
    }
}

// MARK: - The stored shape

/// Field names are spelled out (and stay), so renaming a Swift property never breaks a store.
struct StoredSession: Codable {
    var format: Int
    var id: String
    var paymentSid: String?
    var callbackSecretHash: String
    var inFlight: [String: String]
    var callSid: String
    var options: StoredOptions
    var items: [String: StoredItem]
    var required: [String]
    var requiredFromTwilio: Bool
    var requiredReportedAt: Double?
    var unrecognizedRequired: [String]
    var phase: StoredPhase
    var cardType: String?
    var lastError: String?
    var lastRequestError: String?
    var createdAt: Double
    var updatedAt: Double
    var version: UInt64
    /// Format 2: who started the session, and how its charge was authorized.
    var owner: StoredOwner?
    var charge: StoredCharge?
    var reference: String?
    /// Format 3: the call's recordings paused for the payment. Written as format 2 when absent,
    /// so that a replica of an older build can still read every session that does not pause.
    var recordings: StoredRecordings?

    init(_ session: PaymentSession) {
        format = session.recordings == nil ? 2 : PaymentSession.storageFormat
        id = session.id
        paymentSid = session.paymentSID?.rawValue
        callbackSecretHash = session.callbackSecretHash
        inFlight = Dictionary(uniqueKeysWithValues: session.inFlight.map { ($0.key.storageName, $0.value) })
        callSid = session.callSID.rawValue
        options = StoredOptions(session.configuration.options)
        items = Dictionary(uniqueKeysWithValues: session.items.map { ($0.key.rawValue, StoredItem($0.value)) })
        required = session.required.map(\.rawValue)
        requiredFromTwilio = session.requiredFromTwilio
        requiredReportedAt = session.requiredReportedAt?.timeIntervalSinceReferenceDate
        unrecognizedRequired = session.unrecognizedRequired
        phase = StoredPhase(session.phase)
        cardType = session.cardType
        lastError = session.lastError?.rawValue
        lastRequestError = session.lastRequestError
        createdAt = session.createdAt.timeIntervalSinceReferenceDate
        updatedAt = session.updatedAt.timeIntervalSinceReferenceDate
        version = session.version
        owner = session.owner.map { StoredOwner(principal: $0.principal, tenant: $0.tenant) }
        charge = session.charge.map { StoredCharge(countedOn: $0.countedOn, fromAmountDue: $0.fromAmountDue) }
        reference = session.reference
        recordings = session.recordings.map {
            StoredRecordings(state: $0.state.rawValue, recordings: $0.recordings.map(\.rawValue), reason: $0.reason)
        }
    }

    func session() throws(PaymentSessionStorageError) -> PaymentSession {
        guard format <= PaymentSession.storageFormat else {
            throw PaymentSessionStorageError(
                "a stored payment session has format \(format); this build reads up to \(PaymentSession.storageFormat)")
        }
        guard let call = CallSID(callSid) else {
            throw PaymentSessionStorageError("a stored payment session has an invalid call SID")
        }
        var session = PaymentSession(
            callSID: call, configuration: PaymentConfiguration(options: try options.options()),
            at: Date(timeIntervalSinceReferenceDate: createdAt), id: id, callbackSecretHash: callbackSecretHash)
        if let paymentSid {
            guard let sid = PaymentSID(paymentSid) else {
                throw PaymentSessionStorageError("a stored payment session has an invalid payment SID")
            }
            session.paymentSID = sid
        }
        // In key order: of two damaged entries, the error names the same one whichever reader
        // built the dictionary (their iteration orders differ).
        for (name, key) in inFlight.sorted(by: { $0.key < $1.key }) {
            session.inFlight[try StoredOperation.operation(name)] = key
        }
        for (name, item) in items.sorted(by: { $0.key < $1.key }) {
            session.items[try StoredItem.item(name)] = try item.progress()
        }
        session.required = try required.map(StoredItem.item)
        session.requiredFromTwilio = requiredFromTwilio
        session.requiredReportedAt = requiredReportedAt.map(Date.init(timeIntervalSinceReferenceDate:))
        session.unrecognizedRequired = unrecognizedRequired
        session.phase = try phase.phase()
        session.cardType = cardType
        session.lastError = lastError.map(PaymentErrorType.init(rawValue:))
        session.lastRequestError = lastRequestError
        session.updatedAt = Date(timeIntervalSinceReferenceDate: updatedAt)
        session.version = version
        session.owner = owner.map { PaymentOwner(principal: $0.principal, tenant: $0.tenant) }
        session.charge = charge.map { ChargeAuthorization(countedOn: $0.countedOn, fromAmountDue: $0.fromAmountDue) }
        session.reference = reference
        if let recordings {
            guard let state = RecordingsPause.State(rawValue: recordings.state),
                case let sids = recordings.recordings.compactMap(RecordingSID.init),
                sids.count == recordings.recordings.count
            else {
                throw PaymentSessionStorageError("a stored payment session has unreadable recordings")
            }
            session.recordings = RecordingsPause(state: state, recordings: sids, reason: recordings.reason)
        }
        return session
    }
}

struct StoredRecordings: Codable {
    var state: String
    var recordings: [String]
    var reason: String?
}

struct StoredOwner: Codable {
    var principal: String
    var tenant: String?
}

struct StoredCharge: Codable {
    var countedOn: String?
    var fromAmountDue: Bool
}

extension PaymentOperation {
    /// The operation's name in stored sessions: `create`, `capture:<item>`, `complete`, `cancel`.
    public var storageName: String {
        switch self {
        case .create: return "create"
        case .capture(let item): return "capture:" + item.rawValue
        case .complete: return "complete"
        case .cancel: return "cancel"
        }
    }
}

enum StoredOperation {

    static func operation(_ name: String) throws(PaymentSessionStorageError) -> PaymentOperation {
        switch name {
        case "create": return .create
        case "complete": return .complete
        case "cancel": return .cancel
        default:
            guard name.hasPrefix("capture:") else {
                throw PaymentSessionStorageError("a stored payment session names an unknown operation")
            }
            return .capture(try StoredItem.item(String(name.dropFirst("capture:".count))))
        }
    }
}

struct StoredItem: Codable {
    var state: String
    var masked: String?
    var errorType: String?
    var failedAttempts: Int
    var requests: Int
    var attemptStart: Double?
    var lastPartialResult: Bool?

    init(_ progress: ItemProgress) {
        state = progress.state.kind.rawValue
        switch progress.state {
        case .capturing(let value), .captured(let value): masked = value
        case .failed(let error): errorType = error.rawValue
        case .notRequested, .requested: break
        }
        failedAttempts = progress.failedAttempts
        requests = progress.requests
        attemptStart = progress.attemptStart?.timeIntervalSinceReferenceDate
        lastPartialResult = progress.lastPartialResult
    }

    static func item(_ name: String) throws(PaymentSessionStorageError) -> PaymentItem {
        guard let item = PaymentItem(rawValue: name) else {
            throw PaymentSessionStorageError("a stored payment session names an unknown item")
        }
        return item
    }

    func progress() throws(PaymentSessionStorageError) -> ItemProgress {
        var progress = ItemProgress()
        switch ItemState.Kind(rawValue: state) {
        case .notRequested: progress.state = .notRequested
        case .requested: progress.state = .requested
        case .capturing: progress.state = .capturing(masked: masked)
        case .captured: progress.state = .captured(masked: masked)
        case .failed: progress.state = .failed(PaymentErrorType(rawValue: errorType ?? ""))
        case nil: throw PaymentSessionStorageError("a stored payment session has an unknown item state")
        }
        progress.failedAttempts = failedAttempts
        progress.requests = requests
        progress.attemptStart = attemptStart.map(Date.init(timeIntervalSinceReferenceDate:))
        progress.lastPartialResult = lastPartialResult
        return progress
    }
}

struct StoredPhase: Codable {
    var name: String
    var current: String?
    var result: String?
    var confirmationCode: String?
    var token: String?
    var profileId: String?
    var reason: String?
    var paymentError: String?
    var payErrorCode: Int?
    var connectorError: String?

    init(_ phase: PaymentPhase) {
        name = phase.name
        switch phase {
        case .starting, .completing, .cancelling: break
        case .active(let item): current = item?.rawValue
        case .completed(let outcome):
            result = outcome.result.rawValue
            confirmationCode = outcome.confirmationCode
            token = outcome.token
            profileId = outcome.profileID
        case .cancelled(let why): reason = why
        case .failed(let failure), .callEnded(let failure):
            result = failure.result?.rawValue
            reason = failure.reason
            paymentError = failure.paymentError
            payErrorCode = failure.payErrorCode
            connectorError = failure.connectorError
        }
    }

    func phase() throws(PaymentSessionStorageError) -> PaymentPhase {
        let failure = PaymentFailure(
            result: result.map(PaymentResult.init(rawValue:)), paymentError: paymentError, payErrorCode: payErrorCode,
            connectorError: connectorError, reason: reason ?? "")
        switch PaymentPhase.Kind(rawValue: name) {
        case .starting: return .starting
        case .active: return .active(current: try current.map(StoredItem.item))
        case .completing: return .completing
        case .cancelling: return .cancelling
        case .completed:
            return .completed(
                PaymentOutcome(
                    result: PaymentResult(rawValue: result ?? ""), confirmationCode: confirmationCode, token: token,
                    profileID: profileId))
        case .cancelled: return .cancelled(reason: reason ?? "")
        case .failed: return .failed(failure)
        case .callEnded: return .callEnded(failure)
        case nil: throw PaymentSessionStorageError("a stored payment session has an unknown phase")
        }
    }
}

struct StoredOptions: Codable {
    var chargeAmount: String?
    var currency: String?
    var description: String?
    var paymentConnector: String?
    var paymentMethod: PaymentMethod?
    var tokenType: TokenType?
    var securityCode: Bool?
    var postalCode: Bool?
    var minPostalCodeLength: Int?
    var validCardTypes: [CardType]?
    var timeout: Int?
    var bankAccountType: BankAccountType?
    var parameters: [String: StoredParameter]?
    var input: String?
    var confirmation: Bool?
    var requireMatchingInputs: [MatchableInput]?

    init(_ options: PaymentSessionOptions) {
        chargeAmount = options.chargeAmount
        currency = options.currency
        description = options.description
        paymentConnector = options.paymentConnector
        paymentMethod = options.paymentMethod
        tokenType = options.tokenType
        securityCode = options.securityCode
        postalCode = options.postalCode
        minPostalCodeLength = options.minPostalCodeLength
        validCardTypes = options.validCardTypes
        timeout = options.timeout
        bankAccountType = options.bankAccountType
        parameters = options.parameters?.mapValues(StoredParameter.init)
        input = options.input
        confirmation = options.confirmation
        requireMatchingInputs = options.requireMatchingInputs
    }

    func options() throws(PaymentSessionStorageError) -> PaymentSessionOptions {
        var parameters: [String: ConnectorParameter]?
        if let stored = self.parameters {
            parameters = [:]
            for (key, value) in stored { parameters?[key] = try value.parameter() }
        }
        return PaymentSessionOptions(
            chargeAmount: chargeAmount, currency: currency, description: description,
            paymentConnector: paymentConnector,
            paymentMethod: paymentMethod, tokenType: tokenType, securityCode: securityCode, postalCode: postalCode,
            minPostalCodeLength: minPostalCodeLength, validCardTypes: validCardTypes, timeout: timeout,
            bankAccountType: bankAccountType,
            parameters: parameters, confirmation: confirmation, requireMatchingInputs: requireMatchingInputs,
            input: input)
    }
}

/// A connector parameter as `{"string": "…"}`, `{"number": "12.50"}` (its decimal text) or
/// `{"bool": true}`.
struct StoredParameter: Codable {
    var string: String?
    var number: String?
    var bool: Bool?

    init(_ parameter: ConnectorParameter) {
        switch parameter {
        case .string(let text): string = text
        case .number(let text): number = text
        case .bool(let value): bool = value
        }
    }

    func parameter() throws(PaymentSessionStorageError) -> ConnectorParameter {
        if let string { return .string(string) }
        if let number { return .number(number) }
        if let bool { return .bool(bool) }
        throw PaymentSessionStorageError("a stored payment session has an empty connector parameter")
    }
}
