import Foundation
import Logging

extension Node {
    /// Deletes a database at once, whatever holds it, and returns whether files were removed here.
    /// From the first step every request for it is refused (404, saying it was deleted); its parked
    /// streams are closed (their transactions rolled back, their leases given back) and their batons
    /// answer that the database was deleted; long-polls on it are woken; requests still running are
    /// waited for up to `deletionDrainTimeout`; then its directory goes to the trash in one rename
    /// and is removed, so a database created again under the name starts from nothing.
    ///
    /// Idempotent, so a control plane's retries converge: a database this node does not hold is
    /// deleted already (false). `databaseID` names the incarnation to delete (the catalog's id of the
    /// database); a directory whose settings name another one (created again since) is left alone
    /// (false). Without it, whatever is held under the name is deleted. When requests still hold the
    /// database past the timeout, this throws `unavailable` and the database stays refused until a
    /// later call finishes the deletion.
    public func delete(_ namespace: Namespace, databaseID: String? = nil) async throws -> Bool {
        // Its last commits reach the store first: an undelete gets its final state.
        await shipBeforeDeletion(namespace, databaseID: databaseID)
        guard try await store.beginDeletion(namespace, databaseID: databaseID) else {
            logger.info(
                "database.delete.nothing_here",
                metadata: ["db.namespace": "\(namespace)", "db.id": "\(databaseID ?? "none")"])
            return false
        }
        guard await drain(namespace) else {
            logger.warning("database.delete.still_in_use", metadata: ["db.namespace": "\(namespace)"])
            throw NodeError.unavailable(
                "database \(namespace) is deleted and refuses every new request, but requests that were "
                    + "running still hold it; send the delete again to finish removing its files")
        }
        try await store.finishDeletion(namespace, databaseID: databaseID)
        logger.info("database.deleted", metadata: ["db.namespace": "\(namespace)", "db.id": "\(databaseID ?? "none")"])
        return true
    }

    /// Closes a database that refuses new requests (being deleted or restored): its parked streams
    /// are closed, its long-polls woken, and requests still running are waited for up to
    /// `deletionDrainTimeout`. Returns false if some still hold it then.
    func drain(_ namespace: Namespace) async -> Bool {
        let deadline = ContinuousClock.now + configuration.deletionDrainTimeout
        var interrupted = false
        while true {
            for stream in streams.remove(namespace: namespace) {
                await close(stream)
            }
            if await store.closeIfUnused(namespace) { return true }
            if !interrupted {
                await store.interruptWaits(namespace)
                interrupted = true
            }
            guard ContinuousClock.now < deadline, !Task.isCancelled else { return false }
            // A poll interval: requests that hold the database end on their own (statements have a
            // time limit), and nothing signals when the last lease goes.
            try? await Task.sleep(for: .milliseconds(10))
        }
    }
}
