import Foundation
public import TwilioPayments
public import TwilioSimulator

/// Per-call caller scripts for --simulate, from the JSON file named by
/// `AGENT_PAYMENTS_SIMULATOR_SCRIPT`: `{"CA…": {"payment-card-number": ["4111111111111112", "4111111111111111"],
/// "security-code": ["silence"], "completion": "decline"}}`. Entries are digits, `silence`,
/// `hang-up`, `hang-up-silently` (the call ends with no callback) or `star`; `completion` is
/// `succeed` or `decline`.
public enum SimulatorScripts {
    public static func load(path: String) throws(ConfigurationError) -> [CallSID: CallerScript] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .invalidScript(
                "AGENT_PAYMENTS_SIMULATOR_SCRIPT names \(path), which cannot be read: \(error.localizedDescription)")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: [String: Any]] else {
            throw .invalidScript("AGENT_PAYMENTS_SIMULATOR_SCRIPT must name a JSON object keyed by call SID")
        }
        var scripts: [CallSID: CallerScript] = [:]
        for (callText, entries) in object {
            guard let call = CallSID(callText) else { throw .invalidScript("\"\(callText)\" is not a call SID") }
            var script = CallerScript()
            for (key, value) in entries {
                if key == "completion" {
                    script.completion = (value as? String) == "decline" ? .decline() : .succeed
                    continue
                }
                guard let item = PaymentItem(rawValue: key), let attempts = value as? [String] else {
                    throw .invalidScript("unknown item \"\(key)\" for \(callText)")
                }
                script.entries[item] = attempts.map { attempt in
                    switch attempt {
                    case "silence": return .silence
                    case "hang-up": return .hangUp
                    case "hang-up-silently": return .hangUpSilently
                    case "star": return .pressStar
                    default: return .digits(attempt)
                    }
                }
            }
            scripts[call] = script
        }
        return scripts
    }
}
