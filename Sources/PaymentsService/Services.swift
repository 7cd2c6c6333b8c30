import CallbackHTTP
import Foundation
import Hummingbird
import Logging
import PaymentFlow
import ServiceLifecycle
import Synchronization
import TwilioPayments
import TwilioSimulator

/// The in-process Twilio simulator's HTTP server on a loopback port; announces the API base URL
/// once it listens.
struct SimulatorService: Service, CustomStringConvertible {
    var description: String { "twilio-simulator" }
    let simulator: TwilioSimulator
    let announcement: Announcement<URL>

    func run() async throws {
        let app = simulator.makeApplication { port in
            announcement.announce(URL(string: "http://127.0.0.1:\(port)")!)
        }
        do {
            try await app.run()
        } catch {
            announcement.fail(.failed(.simulatorFailed(reason: String(describing: error))))
            throw error
        }
        announcement.fail(.failed(.stopped))
    }
}

/// The system's own callback server; announces its bound port (and, for a loopback public URL,
/// that URL) once it listens.
struct CallbackServerService: Service, CustomStringConvertible {
    var description: String { "callback-server" }
    let receiver: CallbackReceiver
    let listening: Announcement<Int>
    var loopbackURL: Announcement<String>? = nil
    var additionalRoutes: AdditionalRoutes? = nil

    func run() async throws {
        let app = receiver.makeApplication(additionalRoutes: additionalRoutes) { [listening, loopbackURL] port in
            listening.announce(port)
            loopbackURL?.announce("http://127.0.0.1:\(port)")
        }
        do {
            try await app.run()
        } catch {
            let failure = FlowStartFailure.failed(
                .callbackListenerFailed(
                    host: receiver.configuration.host, port: receiver.configuration.port,
                    reason: String(describing: error)))
            listening.fail(failure)
            loopbackURL?.fail(failure)
            throw error
        }
        listening.fail(.failed(.stopped))
        loopbackURL?.fail(.failed(.stopped))
    }
}

/// An ngrok tunnel to the callback server: opened once the server listens, its URL announced,
/// stopped (the child reaped) on graceful shutdown or cancellation.
struct TunnelService: Service, CustomStringConvertible {
    var description: String { "ngrok-tunnel" }
    let configuration: NgrokConfiguration
    let receiver: CallbackReceiver
    let listening: Announcement<Int>
    let publicBase: Announcement<String>
    let logger: Logger

    func run() async throws {
        let port: Int
        switch await listening.wait(upTo: .seconds(3600)) {
        case .success(let bound): port = bound
        case .failure(let failure):
            publicBase.fail(failure)
            return
        }
        var configuration = configuration
        configuration.port = port
        let tunnel: NgrokTunnel
        do {
            tunnel = try await NgrokTunnel.start(configuration, logger: logger)
        } catch {
            publicBase.fail(.failed(.tunnel(error)))
            throw error
        }
        receiver.setPublicBaseURL(tunnel.publicURL)
        publicBase.announce(tunnel.publicURL)
        // Until shutdown (graceful, or the group's cancellation); then the child goes, always.
        try? await gracefulShutdown()
        await tunnel.stop()
    }
}

/// Makes the coordinator once the Twilio API and the public URL are known, announces it, and
/// keeps the sessions tidy until shutdown: finished sessions past their retention go (and their
/// callback URLs with them); the calls of silent sessions are checked with Twilio.
struct FlowService: Service, CustomStringConvertible {
    var description: String { "payment-flow" }
    let configuration: PaymentsConfiguration
    let receiver: CallbackReceiver
    let sink: LateCoordinatorSink
    let apiBase: Announcement<URL>
    let publicBase: Announcement<String>
    let readiness: Announcement<PaymentCoordinator>
    let logger: Logger

    func run() async throws {
        let coordinator: PaymentCoordinator
        // A graceful shutdown during start-up ends the waits (a provided URL may never come).
        switch await cancelWhenGracefulShutdown({ await start() }) {
        case .success(let made): coordinator = made
        case .failure(let failure):
            // Only a part's own failure settles readiness here: a wait given up (cancelled by the
            // group because another part failed, or shut down) says nothing about the system;
            // PaymentsSystem.run settles it with the first part's failure once the group ends.
            if case .failed(let error) = failure {
                readiness.fail(failure)
                logger.error("the payment system could not start: \(error)")
            }
            return
        }
        sink.attach(coordinator)
        readiness.announce(coordinator)
        logger.info(
            "payment system ready",
            metadata: [
                "callbacks.public": "\(receiver.publicBaseURL ?? "?")",
                "callbacks.port": "\(receiver.boundPort.map(String.init) ?? "mounted")",
            ])
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                // Status reads answer from the coordinator's snapshot while it follows the feed.
                group.addTask { await coordinator.followChanges() }
                group.addTask {
                    await every(configuration.expiryInterval) {
                        do {
                            let expired = try await coordinator.expireFinished(
                                retention: configuration.finishedRetention)
                            if expired > 0 {
                                logger.debug("expired finished payment sessions", metadata: ["count": "\(expired)"])
                            }
                        } catch {
                            logger.warning(
                                "finished payment sessions not expired this round", metadata: ["reason": "\(error)"])
                        }
                    }
                }
                group.addTask {
                    await every(configuration.callCheckInterval) {
                        do {
                            let ended = try await coordinator.checkSilentCalls(silentFor: configuration.silentAfter)
                            if ended > 0 {
                                logger.info(
                                    "payment sessions ended because their call is over", metadata: ["count": "\(ended)"]
                                )
                            }
                        } catch {
                            logger.warning("silent calls not checked this round", metadata: ["reason": "\(error)"])
                        }
                    }
                }
            }
        }
    }

    private func start() async -> Result<PaymentCoordinator, FlowStartFailure> {
        let base: URL
        switch await apiBase.wait(upTo: .seconds(3600)) {
        case .success(let url): base = url
        case .failure(let failure): return .failure(failure)
        }
        if case .failure(let failure) = await publicBase.wait(upTo: .seconds(3600)) { return .failure(failure) }
        let credentials: TwilioCredentials
        switch configuration.twilio {
        case .live(let live, _):
            credentials = live
            if live.authToken == nil {
                logger.warning(
                    "no Auth Token: callbacks are authenticated only by their unguessable per-session URL, not by Twilio's signature"
                )
            }
        case .simulated(let simulator, _):
            credentials = simulator.credentials
            logger.info(
                "running against the built-in Twilio simulator", metadata: ["simulator.url": "\(base.absoluteString)"])
        }
        let api: TwilioPaymentsClient
        do {
            api = try TwilioPaymentsClient(credentials: credentials, baseURL: base)
        } catch {
            return .failure(.failed(.simulatorFailed(reason: error.description)))
        }
        return .success(
            PaymentCoordinator(
                api: api, store: configuration.store, feed: configuration.changeFeed,
                callbackURLs: ReceiverCallbackURLs(receiver: receiver), callbackKey: configuration.callbackKey,
                policy: configuration.policy, ledger: configuration.ledger, notices: configuration.notices))
    }
}

/// Runs `work` every `interval` until the task is cancelled.
private func every(_ interval: Duration, _ work: @Sendable () async -> Void) async {
    while (try? await Task.sleep(for: interval)) != nil {
        await work()
    }
}
