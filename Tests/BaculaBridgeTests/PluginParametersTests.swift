import BackupEngine
import BaculaBridge
import Foundation
import Testing
import TestSupport

@Suite("Plugin line parameters and config= files")
struct PluginParametersTests {
    @Test("config= adds the file's options the line does not give: top level, then the command's section; the line wins")
    func optionsFile() throws {
        try withTemporaryDirectory { directory in
            let path = "\(directory)/osbackup.yaml"
            try """
                os-cloud: production
                state: /var/lib/osbackup-b
                parallel: 3
                backup:
                  exclude-server: [bastion, "re:^ci-"]
                  unattached_volumes: true
                  level: full
                  nice: 10
                restore:
                  name-prefix: never-for-backups-
                """.write(toFile: path, atomically: true, encoding: .utf8)
            let line = try PluginParameters([("config", path), ("parallel", "2")])
            let merged = try line.merging(optionsFile: path, command: "backup")
            #expect(merged.value("cloud") == "production", "the CLI's os-cloud is the plugin's cloud")
            #expect(merged.value("parallel") == "2", "the line wins")
            #expect(merged.value("state") == "/var/lib/osbackup-b")
            #expect(merged.values("exclude_server") == ["bastion", "re:^ci-"])
            #expect(try merged.flag("unattached_volumes"))
            #expect(merged.value("nice") == "10")
            #expect(merged.value("level") == nil, "options only the CLI has are left out")
            #expect(merged.value("name_prefix") == nil, "another command's section is not read")
            let restore = try line.merging(optionsFile: path, command: "restore")
            #expect(restore.value("name_prefix") == "never-for-backups-")
        }
    }

    @Test("unknown keys, repeated single keys and bad booleans are refused by name")
    func refusals() {
        #expect(throws: BackupError.self) { try PluginParameters([("colour", "blue")]) }
        #expect(throws: BackupError.self) { try PluginParameters([("state", "/a"), ("state", "/b")]) }
        #expect((try? PluginParameters([("server", "a"), ("server", "b")]))?.values("server") == ["a", "b"])
        let error = #expect(throws: BackupError.self) { try PluginParameters([("force", "perhaps")]).flag("force") }
        #expect(error?.description.contains("force=perhaps is not a boolean") == true)
    }

    @Test("the Job resource's name is the job name without the run's suffix")
    func jobResourceName() throws {
        let job = try BaculaJobInfo(["JobId=3", "Level=I", "JobName=openstack-backup.2026-11-30_21.42.11_26"])
        #expect(job.jobResourceName == "openstack-backup")
        #expect(try BaculaJobInfo(["JobId=3", "Level=F", "JobName=plain"]).jobResourceName == "plain")
    }
}
