public import OpenStackClient

/// The project a restore into the cloud creates its volumes and server in: the one asked for, else the
/// one the restored servers came from (their `.conf`s), else the credentials' own.
public enum RestoreProject {
    /// `explicit`, else the project the plan's servers came from when their `.conf`s say so and agree
    /// (nil: the credentials' project). Volumes of several projects without `explicit` are refused.
    public static func wanted(explicit: String?, plan: RestorePlan, option: String) throws(BackupError) -> String? {
        if let explicit { return explicit }
        let projects = Set(plan.volumes.compactMap { $0.configuration?.server?.projectID })
        guard projects.count <= 1 else {
            throw BackupError(
                .configuration, resource: "restore",
                "the volumes selected come from several projects (\(projects.sorted().joined(separator: ", ")))",
                hint: "restore one project at a time, or give \(option)")
        }
        return projects.first
    }

    /// `configuration` scoped to `project` when it is a password login; as it is otherwise (an
    /// application credential keeps its own project, which ``requireScope(_:project:option:)`` checks).
    public static func scoping(_ configuration: CloudConfiguration, to project: String?) -> CloudConfiguration {
        guard let project else { return configuration }
        return configuration.scoped(toProjectID: project) ?? configuration
    }

    /// Throws unless the session is scoped to `project` (nil: any).
    public static func requireScope(_ services: CloudServices, project: String?, option: String) throws(BackupError) {
        guard let project, services.projectID != project else { return }
        throw BackupError(
            .configuration, resource: "project \(project)",
            "the credentials are scoped to project \(services.projectID ?? "(none)") and cannot be re-scoped (an application credential)",
            hint: "use credentials of project \(project), or give \(option)\(services.projectID ?? "ID") to restore there")
    }
}
