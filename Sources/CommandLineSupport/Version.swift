/// The release this build is, written in this one place: every binary prints it with `--version`,
/// and tools/package.sh names the tarball and the .deb after it (it asks the built `repeaterd`).
public enum RepeaterVersion {
    public static let current = "0.9.0"
}
