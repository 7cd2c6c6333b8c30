public import Hummingbird
public import NIOCore

/// The request context of a guarded listener: Hummingbird's, plus the connection's channel, so
/// that a long-lived response (an event stream) can notice its client leave, and a route can
/// tell the client's address.
public struct ListenerRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The client's connection.
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = CoreRequestContextStorage(source: source)
        channel = source.channel
    }

    /// The client's address (Hummingbird's tracing middleware and the audit trail read it).
    public var remoteAddress: SocketAddress? { channel.remoteAddress }
}
