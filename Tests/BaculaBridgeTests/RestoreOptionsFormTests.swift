import BackupEngine
import BaculaBridge
import Testing

@Suite("bconsole's Plugin Options: the form and the filled text")
struct RestoreOptionsFormTests {
    @Test("the form is Bacula's plugin configuration text: a header, then prompt, default and type per option")
    func form() {
        let text = RestoreOptionsForm.formText
        #expect(text.hasPrefix("# Plugin configuration file\n# Version 1\n"))
        #expect(text.contains("OptPrompt=\"New server's name\"\nOptDefault=\"original\"\nname=@STR@\n"))
        #expect(text.contains("new_server=@BOOL@\n") && text.contains("in_place=@BOOL@\n") && text.contains("force=@BOOL@\n"))
        let keys = text.split(separator: "\n").filter { !$0.hasPrefix("Opt") && !$0.hasPrefix("#") }.map { String($0.prefix { $0 != "=" }) }
        #expect(keys == RestoreOptionsForm.items.map(\.key))
        #expect(keys.allSatisfy { PluginParameters.known.contains($0) }, "every option is a key the backend knows")
        #expect(RestoreOptionsForm.items.count <= 32, "the Director reads at most 32 items")
        #expect(text.utf8.count < 1000, "larger objects are stored compressed, at a length that may hit the fault below: \(text.utf8.count) bytes")
        #expect(text.utf8.count % 3 != 1, "the 9.6.7 Director reads such a length back from SQLite as empty")
    }

    @Test("filled text as the Director writes it: comments skipped, quotes and escapes undone, networks split")
    func parse() throws {
        let filled = """
            # Plugin configuration file
            # Version 1
            # Boot a new server (Where empty or /)
            new_server=yes

            # Name of the new server
            name=" web \\"one\\" \\\\ restored "

            network="net-a, net-b"

            in_place=NO

            """
        let entries = try RestoreOptionsForm.parse(filled)
        #expect(entries.map { "\($0.key)=\($0.value)" } == ["new_server=yes", #"name=web "one" \ restored"#, "network=net-a", "network=net-b", "in_place=no"])
    }

    @Test("the options win over the Plugin line's same keys; the line's other keys stay")
    func overriding() throws {
        let line = try PluginParameters([("cloud", "prod"), ("name", "from-line"), ("network", "old-a"), ("network", "old-b")])
        let merged = try line.overriding(with: [("name", "restored"), ("network", "new")])
        #expect(merged.value("cloud") == "prod")
        #expect(merged.value("name") == "restored")
        #expect(merged.values("network") == ["new"])
    }

    @Test("unknown options, repeated ones, bad booleans, lines without '=' and open quotes are named", arguments: [
        ("colour=\"blue\"", "unknown option 'colour'"),
        ("name=\"a\"\nname=\"b\"", "'name' is given twice"),
        ("force=perhaps", "force=perhaps is not yes or no"),
        ("just words", "is not key=value"),
        ("name=\"open", "without its closing quote"),
        ("name=\"a\" b", "text after the closing quote"),
    ])
    func refusals(text: String, expected: String) {
        #expect {
            _ = try RestoreOptionsForm.parse(text)
        } throws: { error in
            "\(error)".contains(expected) && "\(error)".contains("Plugin Options")
        }
    }
}
