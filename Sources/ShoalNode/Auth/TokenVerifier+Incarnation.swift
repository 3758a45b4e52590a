import ShoalModel

extension TokenVerifier {
    /// Throws `unauthorized` unless a database token (`id`) is for the incarnation of the database
    /// held under its name now. A database deleted and created again under the same name is a new
    /// incarnation, with a new catalog id (`settings.databaseID`), that no token of the old one opens,
    /// whether or not that token was rotated away or revoked before the deletion.
    ///
    /// - A token with `did` must name the settings' id. Settings without an id (written by an
    ///   operator, or by a control plane from before incarnation ids) accept any.
    /// - A token without `did` was issued before incarnation ids existed. For compatibility it keeps
    ///   working where the settings carry no id, so existing deployments keep working; where they
    ///   carry one, it is accepted only if it was issued (`iat`) at or after the incarnation was
    ///   created (`settings.createdAt`). A name has one incarnation at a time, so a token issued since
    ///   then was issued for this one, and a token issued before for an earlier one.
    ///
    /// Group tokens (`gid`) name their group's incarnation as `gdid`: a group deleted and created
    /// again under the same name has a new id, and the old group's tokens open none of its databases.
    /// Group tokens without `gdid` (issued before group incarnations) are accepted as before.
    func checkIncarnation(_ claims: Claims, of namespace: Namespace, settings: DatabaseSettings) throws {
        if claims.id == nil, let gdid = claims.gdid, let group = settings.groupID, gdid != group {
            throw NodeError.unauthorized(
                "the token is for another incarnation of group \(claims.gid ?? "") than this database is in: the "
                    + "group was deleted and created again under that name; ask for a token for the group as it is now")
        }
        guard claims.id == namespace.description, let current = settings.databaseID else { return }
        if let did = claims.did {
            guard did == current else { throw Self.otherIncarnation(namespace) }
            return
        }
        let issued = Int64(((claims.iat ?? 0) * 1000).rounded())
        guard let createdAt = settings.createdAt, issued >= createdAt else { throw Self.otherIncarnation(namespace) }
    }

    private static func otherIncarnation(_ namespace: Namespace) -> NodeError {
        NodeError.unauthorized(
            "the token is for another incarnation of database \(namespace) than this node holds: the database "
                + "was deleted and created again under that name; ask for a token for the database as it is now")
    }
}
