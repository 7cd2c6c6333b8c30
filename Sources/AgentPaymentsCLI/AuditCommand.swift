public import ArgumentParser
import Foundation
import PaymentFlow
import PaymentsSettings

/// `agent-payments audit …`: the audit trail, for operators and assessors.
public struct AuditCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Check the audit trail.", subcommands: [AuditVerify.self],
        defaultSubcommand: AuditVerify.self)

    public init() {}
}

/// `agent-payments audit verify`: reads the whole trail and checks its hash chain; names the
/// first break (exit 1) or says how many records hold.
public struct AuditVerify: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract:
            "Check the audit trail's hash chain (a file of JSON lines, or the database's table); name the first break and exit 1, or say how many records hold."
    )

    @Option(
        help: ArgumentHelp(
            "A file of audit JSON lines (other lines, such as logs, are skipped). Default: AGENT_PAYMENTS_AUDIT when it names a file, else the database.",
            valueName: "PATH"))
    var file: String?

    @OptionGroup var database: DatabaseOptions

    public init() {}

    public func run() async throws {
        let host = try CommandHost.required()
        let named = host.environment[Setting.audit.name].flatMap {
            ["", "off", "stderr", "database"].contains($0) ? nil : $0
        }
        let path = file ?? named
        let checked: Int64
        let broken: AuditBreak?
        if let path {
            let text: String
            do {
                text = String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self)
            } catch {
                throw ValidationError("cannot read the audit file \(path): \(error.localizedDescription)")
            }
            var check = AuditChainCheck()
            var found: AuditBreak?
            for record in AuditLine.records(in: text) {
                found = check.next(record)
                if found != nil { break }
            }
            (checked, broken) = (check.checked, found)
        } else {
            var result: (checked: Int64, broken: AuditBreak?) = (0, nil)
            try await database.withDatabase(missing: Self.needsTrail) { database, _ in
                result = try await database.usable { try await database.audit.verify() }
            }
            (checked, broken) = result
        }
        if let broken {
            host.diagnostics("agent-payments: \(broken) (\(checked) records before it hold)\n")
            throw ExitCode(1)
        }
        host.output("ok: \(checked) audit records, chain intact\n")
    }

    static let needsTrail =
        "no audit trail to check: pass --file PATH, or set DATABASE_URL (or --database-url) for the database's"
}
