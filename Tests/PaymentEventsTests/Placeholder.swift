import Testing
@testable import PaymentEvents
