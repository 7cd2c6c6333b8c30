import CallbackHTTP
import Foundation
import Hummingbird
import Logging
import PaymentFlow
import ServiceLifecycle
import Synchronization
import TwilioPayments
import TwilioSimulator

/// The in-process Twilio simulator's HTTP server on a loopback port; routes the client to it
/// once it listens.
struct SimulatorService: Service, CustomStringConvertible {
    var description: String { "twilio-simulator" }
    let simulator: TwilioSimulator
    let route: SimulatorRoute
    let startup: Startup
    let logger: Logger

    func run() async throws {
        let app = simulator.makeApplication { port in
            route.listening(on: port)
            logger.info(
                "running against the built-in Twilio simulator", metadata: ["simulator.url": "http://127.0.0.1:\(port)"]
            )
            startup.reached(.simulator)
        }
        // The simulated callers type and their callbacks leave as children of this service: when
        // the simulator's listener has stopped, they are stopped too.
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await simulator.runCallers() }
            defer { group.cancelAll() }
            do {
                try await app.run()
            } catch {
                route.failed(String(describing: error))
                startup.fail(.simulatorFailed(reason: String(describing: error)))
                throw error
            }
        }
    }
}

/// An ngrok tunnel to the host's listener: opened once the server listens, its URL made the
/// public URL, stopped (the child reaped) on graceful shutdown or cancellation.
struct TunnelService: Service, CustomStringConvertible {
    var description: String { "ngrok-tunnel" }
    let configuration: NgrokConfiguration
    let receiver: CallbackReceiver
    let listening: Announcement<Int>
    let startup: Startup
    let logger: Logger

    func run() async throws {
        let port: Int
        switch await listening.wait(upTo: .seconds(3600)) {
        case .success(let bound): port = bound
        case .failure: return
        }
        var configuration = configuration
        configuration.port = port
        let tunnel: NgrokTunnel
        do {
            tunnel = try await NgrokTunnel.start(configuration, logger: logger)
        } catch {
            startup.fail(.tunnel(error))
            throw error
        }
        receiver.setPublicBaseURL(tunnel.publicURL)
        startup.reached(.publicURL)
        // Until shutdown (graceful, or the group's cancellation); then the child goes, always.
        try? await gracefulShutdown()
        await tunnel.stop()
    }
}

/// Keeps the sessions tidy until shutdown: status reads follow the feed; finished sessions past
/// their retention go (and their callback URLs with them); the calls of silent sessions are
/// checked with Twilio; stranded starts are settled. Logs once when the system is ready.
struct MaintenanceService: Service, CustomStringConvertible {
    var description: String { "payment-flow" }
    let configuration: PaymentsConfiguration
    let coordinator: PaymentCoordinator
    let receiver: CallbackReceiver
    let listening: Announcement<Int>
    let startup: Startup
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    switch await startup.done.wait(upTo: .seconds(3600)) {
                    case .success:
                        logger.info(
                            "payment system ready",
                            metadata: [
                                "callbacks.public": "\(receiver.publicBaseURL ?? "?")",
                                "callbacks.port": "\(listening.value.map(String.init) ?? "-")",
                            ])
                    case .failure(.failed(let error)):
                        if error != .stopped { logger.error("the payment system could not start: \(error)") }
                    case .failure:
                        break
                    }
                }
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
                // A start whose replica died before Twilio answered is settled by whoever looks first.
                let strandedRound = min(max(configuration.strandedStartAfter / 4, .milliseconds(250)), .seconds(5))
                group.addTask {
                    await every(strandedRound) {
                        do {
                            let settled = try await coordinator.recoverStrandedStarts()
                            if settled > 0 {
                                logger.warning(
                                    "stranded payment starts settled (their replica died before Twilio answered)",
                                    metadata: ["count": "\(settled)"])
                            }
                        } catch {
                            logger.warning("stranded starts not checked this round", metadata: ["reason": "\(error)"])
                        }
                    }
                }
            }
        }
    }
}

/// Runs `work` every `interval` until the task is cancelled.
private func every(_ interval: Duration, _ work: @Sendable () async -> Void) async {
    while (try? await Task.sleep(for: interval)) != nil {
        await work()
    }
}
