public import Logging
public import PaymentFlow

extension WebhookDispatcher {
    /// A dispatcher for the configured endpoints: each attempt signed as Standard Webhooks with
    /// its endpoint's secret, each target checked (``WebhookTarget``) before each attempt, events
    /// given up after ``WebhookSettings/maximumAge``. With `outbox`, deliveries come from it
    /// (leased for ``WebhookSettings/lease``), shared by every replica.
    public convenience init(
        settings: WebhookSettings, maximumPending: Int = 10_000, outbox: (any PaymentOutbox)? = nil,
        logger: Logger = Logger(label: "agent-payments.webhooks")
    ) {
        let destinations = settings.endpoints.map { endpoint in
            Destination(name: endpoint.name, url: endpoint.url, accepts: { endpoint.accepts($0) }) {
                id, timestamp, body in
                StandardWebhooks.headers(secret: endpoint.secret, id: id, timestamp: timestamp, body: body)
            }
        }
        let allowPrivate = settings.allowPrivateNetworks
        self.init(
            destinations: destinations,
            retry: RetryPolicy(initialDelay: settings.firstRetryDelay, maximumAge: settings.maximumAge),
            maximumPending: maximumPending,
            outbox: outbox.map { OutboxDelivery(outbox: $0, lease: settings.lease) },
            checkTarget: { url in await WebhookTarget.resolve(url, allowPrivateNetworks: allowPrivate).mapError { $0 }
            },
            logger: logger)
    }
}
