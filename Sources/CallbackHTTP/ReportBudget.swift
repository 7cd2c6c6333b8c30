import Foundation
import Synchronization

/// At most `perSecond` reports a second; the rest are counted, and the next report admitted
/// carries their number, so a flood of refusals cannot flood what records them.
final class ReportBudget: Sendable {
    private let perSecond: Int
    private let state = Mutex<(second: Int, used: Int, skipped: Int)>((0, 0, 0))

    init(perSecond: Int) {
        self.perSecond = perSecond
    }

    /// `nil` when this second's reports are spent (the report is counted as skipped); else how
    /// many were skipped since the last one admitted.
    func admit(now: Date = Date()) -> Int? {
        let second = Int(now.timeIntervalSince1970)
        return state.withLock { state in
            if state.second != second { (state.second, state.used) = (second, 0) }
            guard state.used < perSecond else {
                state.skipped += 1
                return nil
            }
            state.used += 1
            defer { state.skipped = 0 }
            return state.skipped
        }
    }
}
