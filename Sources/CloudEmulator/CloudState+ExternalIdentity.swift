import Foundation

extension CloudState {
    /// The records as they are now (for enrolment in an external Keystone).
    func snapshot() -> CloudRecords { records }

    /// Takes on the project and user ids of an external Keystone: every record that names a project or
    /// a user is rewritten, so the data is scoped by the ids in that Keystone's tokens. Idempotent: a
    /// second start against the same Keystone maps every id to itself. A password Keystone accepts instead
    /// of the seed's replaces it (for clouds.yaml). The emulator's own tokens are dropped.
    func adopt(_ map: ExternalIdentityMap) {
        func project(_ id: String) -> String { map.projectIDs[id] ?? id }
        func user(_ id: String) -> String { map.userIDs[id] ?? id }
        for index in records.projects.indices { records.projects[index].id = project(records.projects[index].id) }
        for index in records.users.indices {
            if let password = map.passwords[records.users[index].id] { records.users[index].password = password }
            records.users[index].id = user(records.users[index].id)
            records.users[index].defaultProjectID = records.users[index].defaultProjectID.map(project)
            records.users[index].roles = Dictionary(
                records.users[index].roles.map { (project($0.key), $0.value) }, uniquingKeysWith: { $0 + $1 })
        }
        for index in records.applicationCredentials.indices {
            records.applicationCredentials[index].projectID = project(records.applicationCredentials[index].projectID)
            records.applicationCredentials[index].userID = user(records.applicationCredentials[index].userID)
        }
        func remap<Record: OwnedRecord>(_ list: inout [Record]) {
            for index in list.indices {
                list[index].projectID = project(list[index].projectID)
                list[index].userID = user(list[index].userID)
            }
        }
        remap(&records.servers)
        remap(&records.volumes)
        remap(&records.snapshots)
        records.tokens = []
        save()
    }
}

/// A record owned by a project and made by a user.
protocol OwnedRecord {
    var projectID: String { get set }
    var userID: String { get set }
}

extension ServerRecord: OwnedRecord {}
extension VolumeRecord: OwnedRecord {}
extension SnapshotRecord: OwnedRecord {}
