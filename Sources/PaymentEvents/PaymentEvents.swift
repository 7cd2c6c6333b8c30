/// PaymentEvents: payment events pushed to the voice app's own HTTP endpoints.
///
/// A voice agent's model runs only when the caller speaks or a tool returns, and voice
/// frameworks pass no MCP notifications to it; so what happens to a payment (the caller typed
/// the card number, the charge went through) is pushed to the voice app, which tells its agent.
///
/// - The events are the flow's ``PaymentFlow/PaymentNotice``s, rendered as JSON objects
///   (``WebhookPayload``), each with a unique id, the SIDs, the app's `reference`, the masked
///   status and the next step's sentence; never card data or a secret.
/// - They are signed as Standard Webhooks (``StandardWebhooks``): `webhook-id`,
///   `webhook-timestamp`, `webhook-signature` (`v1,` base64 HMAC-SHA256 of `id.timestamp.body`).
/// - ``WebhookDispatcher`` delivers them at least once, in order per payment, with retries
///   (exponential backoff, jitter, `Retry-After`) for a bounded time; one slow or dead endpoint
///   holds up neither another nor the payment flow.
/// - Targets are checked before every delivery (``WebhookTarget``): https (http only on
///   loopback), no private or link-local addresses unless allowed, no redirects followed.
public enum PaymentEventsModule {}
